"""Lab 4, exercise `dashboard-queries`: the PromQL behind the panels on-call opens first.

    make lab-4        grade it          make hint-4      one more hint
    Reference: reference/mlops_lab/monitoring/panels.py     Docs: docs/labs/lab-4-observability.md

Paged at night, an on-call engineer opens three panels before anything else: is a variant
burning its error budget, is the data drifting where it matters, and is the model still as
precise as it was offline. Each is one PromQL query; the top row of the Grafana dashboard
(reference/observability/grafana/mlops-lab.json) and the lab scenarios run exactly what your
functions return. You write:

  burn_rate        per variant: the router's error ratio over `window` / the error budget
  drift_share      per monitor: the share of `window` its latest window drifted where it matters
  precision_ratio  per monitor: realized / expected precision, only on enough labelled rows

The grader evaluates your queries with promtool (Prometheus' own engine) on series it writes:
two router replicas, a canary that never failed, a variant without traffic, a router restart,
undefined precisions. `python -m mlops_lab.monitoring.panels` prints the reference's queries;
to try yours on a live system, paste them into Prometheus' /graph page (mlops-lab up).

What they work with (names the code exports; the reference's, imported below):

    mlops_router_requests_total{variant, outcome}   a counter per router replica (job "router",
        its instance): outcome "ok", "error" (the client or the judge saw a failure), "fallback"
        (stable answered for a failed canary: a success of stable's), "shadow" (a mirrored
        request the canary answered). A label set exists from the first request it counts.
    mlops_drift_detected        1 when the monitor's last window drifted where it matters
    mlops_drift_share_drifted   the share of columns that drifted (important or not)
    mlops_realized_precision, mlops_realized_labelled_rows   on labelled recent predictions;
        the precision is NaN when nothing labelled was flagged
    mlops_expected_precision    the champion's offline (holdout) precision; NaN if not logged
    AVAILABILITY_OBJECTIVE      0.999, the SLO of rules/serving.yml (its alerts divide by 0.001)
    Panels, PANELS              title -> query, read from the functions below when looked up
"""

from __future__ import annotations

from mlops_lab.monitoring.panels import (
    AVAILABILITY_OBJECTIVE,
    BURN_RATE_TITLE,
    DRIFT_DETECTED,
    DRIFT_TITLE,
    ERROR_OUTCOME,
    EXPECTED_PRECISION,
    LABELLED_ROWS,
    PRECISION_TITLE,
    REALIZED_PRECISION,
    ROUTER_REQUESTS,
    Panels,
)


def burn_rate(window: str = "1h", objective: float = AVAILABILITY_OBJECTIVE) -> str:
    """Per variant: the error ratio of the router's requests over `window`, divided by the error
    budget 1 - objective. One series per variant, labelled {variant}."""
    # TODO(lab-4): the PromQL text. Requests per second of a variant: the rate of every
    #  mlops_router_requests_total series of that variant (all outcomes, all router replicas),
    #  summed by variant; errors per second: the same for outcome="error". Ratio, then / budget.
    #  - Sum first, divide after: a ratio per replica is not the variant's ratio.
    #  - A variant that never failed has no error series at all: its burn rate is 0, not
    #    nothing (`or` with a 0 built from a series that does exist: 0 * requests).
    #  - A variant without traffic in the window has no burn rate: 0/0 is NaN, leave it so.
    #  - The budget is 1 - objective; format it so the query reads 0.001, not 0.0010000000000000009.
    #  Think about: why does a router restart not break rate(), and what would sum-then-rate do?
    raise NotImplementedError("TODO(lab-4): the burn rate per variant")


def drift_share(window: str = "1h") -> str:
    """Per monitor: the share of `window` during which its latest window had drifted where it
    matters (0 to 1), from the 0/1 gauge DRIFT_DETECTED."""
    # TODO(lab-4): the PromQL text: one number per monitor series, between 0 and 1.
    #  Think about: why not the share of columns that drifted, and why not the gauge itself?
    raise NotImplementedError("TODO(lab-4): the share of the window that drifted where it matters")


def precision_ratio(min_labelled: int = 200) -> str:
    """Per monitor: realized precision / expected (offline) precision, only while at least
    `min_labelled` labelled rows stand behind the realized one."""
    # TODO(lab-4): the PromQL text: realized / expected, kept only where the labelled rows are
    #  at least min_labelled. One series per monitor, with the gauges' job and instance labels.
    #  A realized precision of 0 must stay visible; an undefined one (NaN) must not turn into a
    #  number.
    #  Think about: a comparison drops NaN, and `> 0` would drop something else too: what?
    raise NotImplementedError("TODO(lab-4): realized over expected precision, on enough labels")


PANELS = Panels({BURN_RATE_TITLE: burn_rate, DRIFT_TITLE: drift_share, PRECISION_TITLE: precision_ratio})
