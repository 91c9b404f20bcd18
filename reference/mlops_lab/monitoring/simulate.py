"""A trigger policy measured over many windows: false alarms, power and time to detect.

    python -m mlops_lab.monitoring.simulate          # the reference policy, in about 20 s

A policy is only as good as its behaviour over many windows, most of them clean: "does it
trigger on this drifted window" says nothing about how often it cries wolf. This module streams
windows through a policy, one window a minute of simulated time, the way the monitor does, and
counts what happened. Drift is computed with `fast_drift`: Evidently's own choice of test and
threshold for a reference above 1,000 rows (normed Wasserstein for numeric columns, Jensen-Shannon
for categorical ones and numeric ones with at most 5 values; drift from 0.1), with the statistics
of monitoring.stats: the same numbers about forty times faster than an Evidently report (9 ms
against 0.4 s a window).
`make bench` (mlops_lab.bench.drift) runs the same streams through Evidently itself.

Whose code runs: `part` maps a reference module name to the module that plays it (the learner's
stats and policy under `--impl exercises`; see mlops_lab.labs.impl.part_of).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from mlops_lab.data.generator import generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle.train import Fitted, fit, reference_sample
from mlops_lab.monitoring.drift import ColumnDrift, DriftResult
from mlops_lab.monitoring.importance import feature_importance
from mlops_lab.monitoring.window import Estimate, WindowVerdict
from mlops_lab.parts import Part
from mlops_lab.settings import Settings

STATS = "mlops_lab.monitoring.stats"
DISTANCE_THRESHOLD = 0.1  # Evidently's default for its distances
SMALL_REFERENCE = 1_000  # at or below this, Evidently switches to p-values (see monitoring.drift)
FEW_VALUES = 5  # a numeric column with at most this many values is compared as categories
START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=1)


def fast_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    share_threshold: float = 0.5,
    part: Part = importlib.import_module,
) -> DriftResult:
    """The DriftResult Evidently's defaults give for a reference above 1,000 rows, computed with
    the drift statistics of `part("mlops_lab.monitoring.stats")`. NaNs are dropped per column."""
    if len(reference) <= SMALL_REFERENCE:
        raise ValueError(
            f"fast_drift follows Evidently's choice for a reference above {SMALL_REFERENCE} rows "
            f"(distances); this one has {len(reference)}: use monitoring.drift.detect_drift"
        )
    if current.empty:
        raise ValueError("the current window is empty: drift needs at least one row")
    stats = part(STATS)
    drifts = []
    for column in SCHEMA.names if columns is None else columns:
        numeric = column in SCHEMA.names and SCHEMA[column].kind == "numeric"
        ref, cur = _present(reference[column], numeric), _present(current[column], numeric)
        if numeric and len(np.unique(np.concatenate([ref, cur]))) > FEW_VALUES:
            method, statistic = "Wasserstein distance (normed)", stats.wasserstein_normed(ref, cur)
        else:
            method, statistic = "Jensen-Shannon distance", stats.jensen_shannon(ref, cur, numeric=numeric)
        drifted = bool(statistic >= DISTANCE_THRESHOLD)
        drifts.append(ColumnDrift(column, drifted, method, float(statistic), DISTANCE_THRESHOLD, "distance"))
    share = sum(d.drifted for d in drifts) / len(drifts)
    return DriftResult(
        columns=tuple(drifts),
        share_drifted=share,
        dataset_drift=share >= share_threshold,
        share_threshold=share_threshold,
        reference_rows=len(reference),
        current_rows=len(current),
    )


def _present(column: pd.Series, numeric: bool) -> np.ndarray:
    """The column's values without NaNs, as a plain numpy array (pandas' Arrow-backed strings
    cost ten times more to count)."""
    values = column.to_numpy(dtype=float if numeric else object)
    return values[~pd.isna(values)]


class Champion(NamedTuple):
    fitted: Fitted  # the model, its threshold and its holdout metrics
    reference: pd.DataFrame  # what windows are compared with (lifecycle.train.reference_sample)
    importance: dict[str, float]  # its permutation importance on the reference


def champion(settings: Settings, rows: int = 20_000, seed: int = 1) -> Champion:
    """A champion fitted in this process on baseline rows, with no registry, and the monitor's
    view of it: what a simulation (and lab 4's scenarios) streams windows against."""
    fitted = fit(settings, generate("baseline", rows, seed=seed))
    reference = reference_sample(fitted)
    return Champion(fitted, reference, feature_importance(fitted.pipeline, reference))


def verdict_of(drift: DriftResult, importance: dict[str, float], rows: int | None = None) -> WindowVerdict:
    """A window verdict carrying only what a trigger policy reads: rows, drift and importance."""
    n = drift.current_rows if rows is None else rows
    no_estimate = Estimate(float("nan"), float("nan"), None, None)
    return WindowVerdict(n, drift, None, dict(importance), (), None, no_estimate, threshold=0.5)


def windows_of(frame: pd.DataFrame, rows: int) -> list[pd.DataFrame]:
    """Consecutive, non-overlapping windows of `rows` rows (a partial tail is dropped)."""
    return [frame.iloc[i * rows : (i + 1) * rows].reset_index(drop=True) for i in range(len(frame) // rows)]


def shifted(frame: pd.DataFrame, column: str, sds: float, reference: pd.DataFrame) -> pd.DataFrame:
    """`frame` with `column` moved by `sds` of the reference's standard deviations."""
    out = frame.copy()
    moved = out[column] + sds * float(reference[column].std())
    if pd.api.types.is_integer_dtype(reference[column]):
        moved = moved.round().astype(reference[column].dtype)
    out[column] = moved
    return out


@dataclass
class Stream:
    """What a policy did over a stream of windows."""

    windows: int = 0
    triggers: list[int] = field(default_factory=list)  # window numbers (0-based) that triggered
    trigger_times: list[datetime] = field(default_factory=list)
    dataset_drift: int = 0  # windows Evidently's default (>= 50% of columns) calls drifted
    any_column: int = 0  # windows where a naive "any column drifted" rule would alarm
    counted: int = 0  # windows that counted towards a trigger (drift where it matters)
    columns_flagged: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    @property
    def first_trigger(self) -> int | None:
        return self.triggers[0] if self.triggers else None

    def summary(self) -> dict[str, Any]:
        n = max(self.windows, 1)
        return {
            "windows": self.windows,
            "triggers": len(self.triggers),
            "first_trigger": self.first_trigger,
            "dataset_drift_rate": self.dataset_drift / n,
            "any_column_rate": self.any_column / n,
            "counted_rate": self.counted / n,
            "columns_flagged": dict(sorted(self.columns_flagged.items())),
        }


def stream(
    policy: Any,
    verdicts: Iterable[WindowVerdict],
    *,
    state: Any | None = None,
    start: datetime = START,
    step: timedelta = STEP,
    part: Part = importlib.import_module,
) -> tuple[Stream, Any]:
    """Feed each verdict to `policy.decide`, one `step` apart from `start`; return what happened
    and the policy's last state. `state` None starts from the policy module's fresh PolicyState."""
    if state is None:
        state = part("mlops_lab.monitoring.policy").PolicyState()
    out, now = Stream(), start
    for number, verdict in enumerate(verdicts):
        decision, state = policy.decide(state, verdict, now)
        out.windows += 1
        out.reasons.append(decision.reason)
        if decision.trigger:
            out.triggers.append(number)
            out.trigger_times.append(now)
        if verdict.drift is not None:
            drifted = verdict.drift.drifted_columns
            out.dataset_drift += verdict.drift.dataset_drift
            out.any_column += bool(drifted)
            for column in drifted:
                out.columns_flagged[column] = out.columns_flagged.get(column, 0) + 1
        out.counted += bool(decision.drifted_where_it_matters)
        now += step
    return out, state


def _main() -> None:
    from mlops_lab.data.generator import features_only
    from mlops_lab.lifecycle.model import Hyperparams, build_pipeline
    from mlops_lab.monitoring.policy import TriggerPolicy

    np.seterr(all="ignore")
    train = generate("baseline", 20_000, seed=1)
    model = build_pipeline(Hyperparams()).fit(train[SCHEMA.names], train[SCHEMA.label])
    reference = features_only(generate("baseline", 5_000, seed=2))
    importance = feature_importance(model, reference)
    policy = TriggerPolicy()
    clean = windows_of(features_only(generate("baseline", 500 * 500, seed=3)), 500)
    null, _ = stream(policy, (verdict_of(fast_drift(reference, w), importance) for w in clean))
    print(f"no drift, {null.windows} windows: {null.summary()}")
    top = max((c for c in SCHEMA.numeric), key=lambda c: importance[c])
    moved = [shifted(w, top, 0.5, reference) for w in clean[:50]]
    power, _ = stream(policy, (verdict_of(fast_drift(reference, w), importance) for w in moved))
    k = policy.consecutive_windows
    print(f"0.5 SD shift of {top}: first trigger at window {power.first_trigger} (K={k})")


if __name__ == "__main__":
    _main()
