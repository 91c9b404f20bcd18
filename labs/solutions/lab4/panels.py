"""A solution of lab 4's `dashboard-queries` (exercises/lab4/panels.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab4/dashboard-queries.toml applied to it (a check must fail on each).
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
    # rate() per series, then sum by variant: rate() sees each replica's counter reset on its
    # own, and the sum weighs a busy replica more than a quiet one (a ratio of sums, not a mean
    # of ratios). Every outcome is a request: fallbacks are stable's successes.
    total = f"sum by (variant) (rate({ROUTER_REQUESTS}[{window}]))"
    failed = f'sum by (variant) (rate({ROUTER_REQUESTS}{{outcome="{ERROR_OUTCOME}"}}[{window}]))'
    # No error series yet means no errors: 0 * total is a 0 for each variant that has traffic.
    # For a variant without traffic it is 0 too, and 0 / 0 stays NaN: no burn rate, as it should.
    errors = f"({failed} or 0 * {total})"
    # round(): 1 - 0.999 is 0.0010000000000000009 in floating point; the panel should read 0.001.
    budget = round(1 - objective, 9)
    return f"{errors} / {total} / {budget:g}"


def drift_share(window: str = "1h") -> str:
    """Per monitor: the share of `window` during which its latest window had drifted where it
    matters (0 to 1), from the 0/1 gauge DRIFT_DETECTED."""
    # The mean of a 0/1 gauge over time is the share of the time it was 1. drift_detected, not
    # the share of drifted columns: unimportant columns drift all the time and mean nothing.
    return f"avg_over_time({DRIFT_DETECTED}[{window}])"


def precision_ratio(min_labelled: int = 200) -> str:
    """Per monitor: realized precision / expected (offline) precision, only while at least
    `min_labelled` labelled rows stand behind the realized one."""
    # `and` keeps the ratio where the labelled-rows comparison has a sample, i.e. where it holds.
    # No filter on the ratio itself: 0 is the worst precision there is and must show, and NaN
    # (nothing flagged) stays NaN, a gap in Grafana.
    ratio = f"{REALIZED_PRECISION} / {EXPECTED_PRECISION}"
    return f"{ratio} and {LABELLED_ROWS} >= {min_labelled}"


PANELS = Panels({BURN_RATE_TITLE: burn_rate, DRIFT_TITLE: drift_share, PRECISION_TITLE: precision_ratio})
