"""A solution of lab 4's `alert-rules` (exercises/lab4/alerts.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab4/alert-rules.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

from typing import Any

from mlops_lab.monitoring.alerts import (
    EXPECTED_PRECISION,
    GROUP,
    LABELLED_ROWS,
    MONITOR_DOWN,
    MONITOR_JOB,
    PERFORMANCE_DROP,
    REALIZED_PRECISION,
    Rule,
    TestCase,
    case,
    fires,
    precision,
    quiet,
    series,
)


def performance_drop_alert(ratio: float = 0.8, min_labelled: int = 200, for_: str = "10m") -> Rule:
    """Pages when realized precision stays under `ratio` x the expected one, on enough labels."""
    # `<` drops NaN by itself: a precision with nothing flagged, or no offline precision, never
    # compares true. `and` keeps the precision series only where the labelled rows are enough.
    below = f"{REALIZED_PRECISION} < {ratio} * {EXPECTED_PRECISION}"
    enough_labels = f"{LABELLED_ROWS} >= {min_labelled}"
    return {
        "alert": PERFORMANCE_DROP,
        "expr": f"{below} and {enough_labels}",
        # A realized precision moves with each batch of late labels: page on a drop that holds.
        "for": for_,
        "labels": {"severity": "page"},
        "annotations": {
            "summary": f"Realized precision is under {ratio}x the champion's offline precision",
            "description": (
                f"For {for_}, precision on recent predictions whose labels arrived (at least "
                f"{min_labelled} of them) has been under {ratio}x the precision the champion showed on "
                "its holdout. Look at: drift where it matters (mlops_drift_importance_share), the "
                "label-free estimate (mlops_estimated_precision), the last promotion. Do: retrain on "
                "recent labelled data (mlops-lab retrain), or roll back (mlops-lab registry rollback)."
            ),
        },
    }


def monitor_down_alert(job: str = MONITOR_JOB, for_: str = "5m") -> Rule:
    """Pages when Prometheus gets nothing from the monitor: scrapes fail, or the target is gone."""
    # up == 0: the target is listed but does not answer. A target gone from discovery has no up
    # series at all, and `up == 0` on nothing is nothing: absent() is what sees it.
    scrape_fails = f'up{{job="{job}"}} == 0'
    target_gone = f'absent(up{{job="{job}"}})'
    return {
        "alert": MONITOR_DOWN,
        "expr": f"{scrape_fails} or {target_gone}",
        # A restart takes seconds; five minutes of nothing is an outage.
        "for": for_,
        "labels": {"severity": "page"},
        "annotations": {
            "summary": "The drift monitor is down or gone: every ML alert is blind",
            "description": (
                f"Prometheus has had nothing from job {job} for {for_}: the target does not answer, or "
                "it is not discovered at all. The drift, performance and data-quality alerts read its "
                "metrics, so they cannot fire meanwhile. Look at: Prometheus' /targets page, the "
                "monitor's log and /readyz. Do: restart it (mlops-lab up); it resumes from its cursor."
            ),
        },
    }


def rule_group() -> dict[str, Any]:
    """The rule group Prometheus loads (rules/ml-signals.yml), with the default parameters."""
    return {"name": GROUP, "rules": [performance_drop_alert(), monitor_down_alert()]}


def rule_tests() -> list[TestCase]:
    """promtool test cases for rule_group(): each alert fires when it must and stays quiet when
    it must not, including the mistakes a rule is most likely to have."""
    drop, down = performance_drop_alert(), monitor_down_alert()
    monitor = {"job": MONITOR_JOB, "instance": "m:8003"}
    # Half the expected precision on 500 labels. Quiet at 9m: without that check, a rule with no
    # `for` would pass.
    held_drop = case(
        precision("0.1", "0.2", "500", instance="dropped"),
        [quiet(drop, "9m"), fires(drop, "11m", job=MONITOR_JOB, instance="dropped")],
    )
    # The same drop on 150 labels: noise, quiet (a rule without the guard pages here).
    few_labels = case(precision("0.1", "0.2", "150", instance="few"), [quiet(drop, "11m")])
    # Nothing flagged: precision NaN, with plenty of labels (so only the NaN keeps it quiet).
    nan_precision = case(precision("NaN", "0.2", "500", instance="nan"), [quiet(drop, "11m")])
    # 0.9x the expected precision is within the band.
    within_band = case(precision("0.18", "0.2", "500", instance="band"), [quiet(drop, "11m")])
    # The monitor stops answering at 2m: pages 5 minutes later.
    scrape_fails = case([series("up", "1 1 0+0x10", **monitor)], [fires(down, "8m", **monitor)])
    # The target disappears at 2m (a stale marker, then no up at all): only absent() sees it,
    # and its alert carries only the job, the one label absent() can know.
    target_gone = case([series("up", "1 1 stale", **monitor)], [fires(down, "8m", job=MONITOR_JOB)])
    # Up and answering: quiet, even while another job is down.
    monitor_up = case(
        [series("up", "1+0x10", **monitor), series("up", "0+0x10", job="router", instance="r:8000")],
        [quiet(down, "8m")],
    )
    return [
        held_drop,
        few_labels,
        nan_precision,
        within_band,
        scrape_fails,
        target_gone,
        monitor_up,
    ]
