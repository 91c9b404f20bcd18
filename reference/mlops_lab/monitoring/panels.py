"""The PromQL behind the panels on-call opens first, as code: one function per panel.

    python -m mlops_lab.monitoring.panels        # print each panel's title and query

The top row of reference/observability/grafana/mlops-lab.json uses exactly these queries
(tests/unit/test_observability.py checks), and the lab scenarios and notebook send them to a
real Prometheus. What each answers:

  burn_rate       how many times faster than sustainable each variant spends its error budget,
                  from the router's counters: what clients saw, whichever server answered.
                  1 spends the budget exactly over the SLO period; the fast-burn page is at 14.4.
  drift_share     the share of the last hour during which the monitor's latest window drifted
                  where it matters (features carrying the champion's importance), not the
                  instant 0/1, which flickers with every window.
  precision_ratio realized precision / the champion's offline precision: 1 is as promised, the
                  drop alert pages under 0.8. Only where enough labels arrived to mean something.

A value that does not exist stays out or NaN, never 0: a variant without traffic has no burn
rate (0/0), and a precision with nothing flagged is undefined. A 0 would read "healthy".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

ROUTER_REQUESTS = "mlops_router_requests_total"  # {variant, outcome: ok|error|fallback|shadow}
ERROR_OUTCOME = "error"
# The availability SLO of rules/serving.yml: 99.9% of prediction requests are not errors, so
# the error budget is 0.1% (the alerts there divide by 0.001, as burn_rate does).
AVAILABILITY_OBJECTIVE = 0.999
DRIFT_DETECTED = "mlops_drift_detected"  # 1 when the last window drifted where it matters
REALIZED_PRECISION = "mlops_realized_precision"
EXPECTED_PRECISION = "mlops_expected_precision"
LABELLED_ROWS = "mlops_realized_labelled_rows"

BURN_RATE_TITLE = "Error budget burn rate per variant (router, 1h)"
DRIFT_TITLE = "Drift where it matters: share of the last hour"
PRECISION_TITLE = "Realized / expected precision (enough labels only)"


def burn_rate(window: str = "1h", objective: float = AVAILABILITY_OBJECTIVE) -> str:
    """Per variant: the error ratio of the router's requests over `window`, divided by the error
    budget 1 - objective. One series per variant, labelled {variant}."""
    # Sum the rates first, then divide: a ratio per router replica (or an average of ratios)
    # weighs a quiet replica like a busy one. rate() per series also survives a restart
    # (a counter reset); a sum of raw counters would see the restart as a huge drop.
    requests = f"sum by (variant) (rate({ROUTER_REQUESTS}[{window}]))"
    errors = f'sum by (variant) (rate({ROUTER_REQUESTS}{{outcome="{ERROR_OUTCOME}"}}[{window}]))'
    # A variant that never failed has no error series at all (the router creates a label set on
    # its first use): `or 0 * requests` gives it a 0, where the bare ratio would give nothing.
    # Fallbacks are stable answering for a failed canary: a success of stable's, and the
    # canary's failure is counted as its error already. Shadow requests are the canary's too.
    budget = f"{1 - objective:.10g}"  # 0.001, not 0.0010000000000000009
    return f"(\n  {errors}\n  or 0 * {requests}\n)\n/ {requests}\n/ {budget}"


def drift_share(window: str = "1h") -> str:
    """Per monitor: the share of `window` during which its latest window had drifted where it
    matters (0 to 1), from the 0/1 gauge DRIFT_DETECTED."""
    # Averaging a 0/1 gauge over time gives the share of its samples at 1: here, of the time.
    # Windows are a fixed number of rows, so at a steady rate it is also the share of windows.
    return f"avg_over_time({DRIFT_DETECTED}[{window}])"


def precision_ratio(min_labelled: int = 200) -> str:
    """Per monitor: realized precision / expected (offline) precision, only while at least
    `min_labelled` labelled rows stand behind the realized one."""
    # NaN (nothing flagged among the labelled rows, or no offline precision logged) stays NaN,
    # which Grafana draws as a gap; a precision of 0, the worst case, must stay visible.
    return f"{REALIZED_PRECISION} / {EXPECTED_PRECISION}\nand {LABELLED_ROWS} >= {min_labelled}"


class Panels(Mapping[str, str]):
    """Panel title -> its PromQL, read from the functions each time it is looked up (so that the
    module whose functions they are decides, and a learner's module whose functions are not
    written yet still imports)."""

    def __init__(self, queries: Mapping[str, Callable[[], str]]) -> None:
        self._queries = dict(queries)

    def __getitem__(self, title: str) -> str:
        return self._queries[title]()

    def __iter__(self) -> Iterator[str]:
        return iter(self._queries)

    def __len__(self) -> int:
        return len(self._queries)


PANELS = Panels({BURN_RATE_TITLE: burn_rate, DRIFT_TITLE: drift_share, PRECISION_TITLE: precision_ratio})


if __name__ == "__main__":
    for title, expr in PANELS.items():
        print(f"# {title}\n{expr}\n")
