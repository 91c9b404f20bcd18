"""Prometheus metrics of the drift monitor, on a registry of its own (no global state).

    curl -s 127.0.0.1:8003/metrics | grep ^mlops_

Names are shared with reference/observability (rules/ml.yml, grafana/mlops-lab.json); change
them together. A value that is undefined (precision with nothing flagged, an expected precision
the champion's run did not log) is NaN: Prometheus comparisons with NaN are false, so an alert
never fires on a number that does not exist.
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge

from mlops_lab.data.schema import SCHEMA
from mlops_lab.monitoring.policy import Decision
from mlops_lab.monitoring.window import Realized, WindowVerdict

RETRAIN_RESULTS = ("success", "failed", "skipped")


def _value(x: float | None) -> float:
    return math.nan if x is None else float(x)


class MonitorMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.windows = Counter("mlops_monitor_windows_total", "Windows evaluated", registry=r)
        self.errors = Counter(
            "mlops_monitor_errors_total", "Monitor ticks that failed (logged; the loop goes on)", registry=r
        )
        self.skipped_rows = Counter(
            "mlops_monitor_skipped_rows_total",
            "Predictions skipped because the monitor fell more than its lag limit behind",
            registry=r,
        )
        self.window_rows = Gauge("mlops_monitor_window_rows", "Rows per window (a setting)", registry=r)
        self.share_drifted = Gauge(
            "mlops_drift_share_drifted",
            "Share of the feature columns that drifted in the last window",
            registry=r,
        )
        self.importance_share = Gauge(
            "mlops_drift_importance_share",
            "Share of the champion's feature importance carried by the drifted columns (last window)",
            registry=r,
        )
        self.drift_detected = Gauge(
            "mlops_drift_detected", "1 when the last window drifted on features that matter", registry=r
        )
        self.consecutive = Gauge(
            "mlops_drift_consecutive_windows",
            "Drifted-where-it-matters windows in a row (the trigger policy's count)",
            registry=r,
        )
        self.feature_drift = Gauge(
            "mlops_feature_drift", "1 when the feature drifted in the last window", ["feature"], registry=r
        )
        self.score_drift = Gauge(
            "mlops_score_drift", "1 when the score distribution drifted in the last window", registry=r
        )
        self.score_statistic = Gauge(
            "mlops_score_drift_statistic", "Statistic of the score drift test (last window)", registry=r
        )
        self.data_quality = Gauge(
            "mlops_data_quality_alarm", "1 when the last window had data-quality problems", registry=r
        )
        self.realized_precision = Gauge(
            "mlops_realized_precision", "Precision on labelled recent predictions (trailing span)", registry=r
        )
        self.realized_recall = Gauge(
            "mlops_realized_recall", "Recall on labelled recent predictions (trailing span)", registry=r
        )
        self.realized_labelled = Gauge(
            "mlops_realized_labelled_rows", "Recent predictions whose label has arrived", registry=r
        )
        self.realized_positives = Gauge(
            "mlops_realized_positive_rows",
            "Recent labelled predictions that are frauds (what realized recall is measured on)",
            registry=r,
        )
        self.expected_recall = Gauge(
            "mlops_expected_recall",
            "The champion's offline (holdout) recall at its decision threshold",
            registry=r,
        )
        self.expected_precision = Gauge(
            "mlops_expected_precision",
            "The champion's offline (holdout) precision at its decision threshold",
            registry=r,
        )
        self.estimated_precision = Gauge(
            "mlops_estimated_precision", "Label-free precision estimate from calibrated scores", registry=r
        )
        self.estimated_recall = Gauge(
            "mlops_estimated_recall", "Label-free recall estimate from calibrated scores", registry=r
        )
        self.retrain_triggers = Counter(
            "mlops_retrain_triggers_total", "Retraining runs the monitor triggered", registry=r
        )
        self.retrain_runs = Counter(
            "mlops_retrain_runs_total", "Outcomes of triggered retraining runs", ["result"], registry=r
        )
        self.last_window_ts = Gauge(
            "mlops_monitor_last_window_timestamp_seconds", "When the last window was evaluated", registry=r
        )
        self.champion_info = Gauge(
            "mlops_monitor_champion_info",
            "1 for the champion version the monitor compares with",
            ["version"],
            registry=r,
        )
        for result in RETRAIN_RESULTS:  # every series exists from the start, so increase() sees the first
            self.retrain_runs.labels(result)
        for name in SCHEMA.names:
            self.feature_drift.labels(name)
        for gauge in (
            self.realized_precision,
            self.realized_recall,
            self.expected_precision,
            self.expected_recall,
        ):
            gauge.set(math.nan)
        for gauge in (self.estimated_precision, self.estimated_recall, self.score_statistic):
            gauge.set(math.nan)

    def champion(self, version: str, expected_precision: float | None, expected_recall: float | None) -> None:
        self.champion_info.clear()
        self.champion_info.labels(version).set(1)
        self.expected_precision.set(_value(expected_precision))
        self.expected_recall.set(_value(expected_recall))

    def window(self, verdict: WindowVerdict, decision: Decision, consecutive: int, ts: float) -> None:
        self.windows.inc()
        drifted = set(verdict.drift.drifted_columns) if verdict.drift is not None else set()
        self.share_drifted.set(verdict.drift.share_drifted if verdict.drift is not None else math.nan)
        self.importance_share.set(verdict.drifted_importance)
        self.drift_detected.set(int(decision.drifted_where_it_matters))
        self.consecutive.set(consecutive)
        for name in SCHEMA.names:
            self.feature_drift.labels(name).set(int(name in drifted))
        self.score_drift.set(int(verdict.score is not None and verdict.score.drifted))
        self.score_statistic.set(verdict.score.statistic if verdict.score is not None else math.nan)
        self.data_quality.set(int(verdict.data_quality_alarm))
        self.estimated_precision.set(_value(verdict.estimate.precision))
        self.estimated_recall.set(_value(verdict.estimate.recall))
        self.last_window_ts.set(ts)

    def realized(self, realized: Realized | None) -> None:
        self.realized_labelled.set(realized.labelled if realized is not None else 0)
        self.realized_positives.set(realized.positives if realized is not None else 0)
        self.realized_precision.set(_value(realized.precision if realized is not None else None))
        self.realized_recall.set(_value(realized.recall if realized is not None else None))
