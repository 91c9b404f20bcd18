"""Evaluating one monitoring window against the champion's training reference.

    python -m mlops_lab.monitoring.window    # the champion's reference, if a registry is reachable

`evaluate_window` gathers everything the monitor knows about one window into a `WindowVerdict`:
  - feature drift (Evidently, through monitoring.drift) and the importance those drifted
    columns carry for the champion, which is what the trigger policy weighs;
  - score drift: the window's served scores against the reference sample's scores;
  - data quality from `SCHEMA.problems` (Evidently drops NaNs, so a failed upstream join that
    blanks a column would look like "no drift"), and `unit_changes` (a median x20 away from the
    reference's: cents for dollars, valid numbers that drift enormously): an alarm, which holds
    the retraining trigger;
  - realized precision/recall on the rows whose delayed labels have arrived (joined by
    request_id), and a label-free estimate from the scores, which covers the label delay
    because a logistic regression's scores are calibrated probabilities (both computed by
    monitoring.performance).
`load_reference` fetches what the comparison needs from MLflow for the current champion.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from mlops_lab.data.schema import SCHEMA
from mlops_lab.monitoring.drift import SCORE_COLUMN, ColumnDrift, DriftResult, detect_drift, score_drift
from mlops_lab.monitoring.importance import feature_importance
from mlops_lab.monitoring.performance import Estimate, Realized
from mlops_lab.parts import Part
from mlops_lab.pipeline.validate import UNIT_RATIO
from mlops_lab.settings import Settings

PERFORMANCE = "mlops_lab.monitoring.performance"


@dataclass(frozen=True)
class WindowVerdict:
    rows: int
    drift: DriftResult | None  # None when the window cannot be compared (see data_quality)
    score: ColumnDrift | None
    importance: dict[str, float]  # the champion's feature importance, summing to 1
    data_quality: tuple[str, ...]  # SCHEMA.problems and unit_changes: an alarm; it holds the trigger
    realized: Realized | None  # None until enough labels of this window have arrived
    estimate: Estimate
    threshold: float

    @property
    def drifted_importance(self) -> float:
        """How much of the model's input moved: the importance of each drifted column, weighted
        by its severity (in full from twice its threshold; see ColumnDrift.severity). Weighting
        keeps noise-level flags on two mid-importance columns from adding up to a trigger, and
        lets one strongly drifted important column count on its own."""
        if self.drift is None:
            return 0.0
        return float(sum(self.importance.get(c.column, 0.0) * c.severity for c in self.drift.columns))

    @property
    def data_quality_alarm(self) -> bool:
        return bool(self.data_quality)

    def summary(self) -> str:
        drift = self.drift.summary() if self.drift is not None else "drift not computed"
        parts = [f"{self.rows} rows", drift, f"drifted importance {self.drifted_importance:.0%}"]
        if self.score is not None:
            parts.append(self.score.describe())
        if self.data_quality:
            parts.append("DATA QUALITY: " + "; ".join(self.data_quality))
        return " | ".join(parts)


class Reference(NamedTuple):
    frame: pd.DataFrame  # the training reference sample: schema features + "score"
    importance: dict[str, float]
    threshold: float
    version: str


def evaluate_window(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    importance: dict[str, float],
    labels: pd.DataFrame | None,
    threshold: float,
    *,
    max_null_fraction: float = 0.01,
    min_label_coverage: float = 0.0,
    html_path: Path | None = None,
    part: Part = importlib.import_module,
) -> WindowVerdict:
    """Everything the monitor knows about `current` (stored predictions: features, "score",
    optionally "decision" and "request_id") compared with the champion's `reference`.

    `labels` has request_id and label (Store.labels_frame()); rows of other windows are ignored.
    Realized performance is None until `min_label_coverage` of the window is labelled.
    `html_path`, when given, receives Evidently's HTML report of the feature drift. `part` says
    whose monitoring.performance computes realized and estimated performance (the learner's with
    `mlops-lab monitor --impl exercises`).
    Raises ValueError when `current` is empty or has no score column.
    """
    if current.empty:
        raise ValueError("the window is empty")
    if SCORE_COLUMN not in current.columns:
        raise ValueError(f"the window has no {SCORE_COLUMN!r} column (stored predictions carry one)")
    performance = part(PERFORMANCE)
    problems = (
        *SCHEMA.problems(current, max_null_fraction=max_null_fraction),
        *unit_changes(reference, current),
    )
    drift: DriftResult | None
    try:
        drift = detect_drift(reference, current, html_path=html_path)
    except ValueError as err:  # missing columns, text in a numeric column, an all-null column
        drift, problems = None, (*problems, f"drift not computed: {err}")
    window_scores = current[SCORE_COLUMN].to_numpy(dtype=float)
    score = None
    if SCORE_COLUMN in reference.columns:
        score = score_drift(reference[SCORE_COLUMN], window_scores)
    # What was actually decided when the window carries it (the threshold may have moved mid-window).
    if "decision" in current.columns:
        flagged = current["decision"].to_numpy(dtype=bool)
    else:
        flagged = window_scores >= threshold
    measured = None
    if labels is not None and not labels.empty:
        if "request_id" not in current.columns:
            raise ValueError("labels were given but the window has no request_id to join them on")
        decisions = pd.DataFrame({"request_id": current["request_id"].to_numpy(), "flagged": flagged})
        measured = performance.realized(decisions, labels, min_coverage=min_label_coverage)
    return WindowVerdict(
        rows=len(current),
        drift=drift,
        score=score,
        importance=dict(importance),
        data_quality=problems,
        realized=measured,
        estimate=performance.estimate(window_scores, flagged),
        threshold=threshold,
    )


def unit_changes(reference: pd.DataFrame, current: pd.DataFrame, ratio: float = UNIT_RATIO) -> list[str]:
    """Numeric features whose median moved by `ratio` or more either way: a unit change upstream
    (cents for dollars), not drift. Valid numbers in range, so the schema cannot see it; Evidently
    sees an enormous drift, which the trigger policy must not "fix" by retraining on the bug."""
    out = []
    for name in SCHEMA.numeric:
        if name not in reference.columns or name not in current.columns:
            continue
        try:
            before = float(np.nanmedian(reference[name].to_numpy(dtype=float)))
            after = float(np.nanmedian(current[name].to_numpy(dtype=float)))
        except (TypeError, ValueError):  # text in a numeric column: SCHEMA.problems says so
            continue
        if before > 0 and after > 0 and max(after / before, before / after) >= ratio:
            out.append(
                f"{name}: median {after:,.2f} vs {before:,.2f} in the reference "
                f"(x{after / before:.3g}: a unit change upstream?)"
            )
    return out


def realized_of(outcomes: pd.DataFrame, part: Part = importlib.import_module) -> Realized | None:
    """Realized precision/recall of labelled predictions (request_id, decision, label), e.g.
    Store.labelled_predictions: the monitor's trailing view, wider than one window. Its rows are
    the labelled ones only, so its coverage is 1 by construction."""
    if outcomes.empty:
        return None
    decisions = pd.DataFrame(
        {"request_id": outcomes["request_id"], "flagged": outcomes["decision"].to_numpy(dtype=bool)}
    )
    return part(PERFORMANCE).realized(decisions, outcomes[["request_id", "label"]])


def load_reference(settings: Settings) -> Reference:
    """The champion's reference sample, feature importance, decision threshold and version.

    Raises LookupError when no version holds the champion alias.
    """
    # Imported here: MLflow costs seconds to import, which code that only evaluates windows (the
    # policy simulations, the lab 4 graders) should not pay.
    from mlops_lab.lifecycle.tracking import CHAMPION, client_for, version_by_alias
    from mlops_lab.lifecycle.train import REFERENCE_ARTIFACT, load_model, load_run_frame, threshold_of

    client = client_for(settings)
    mv = version_by_alias(client, settings.model_name, CHAMPION)
    if mv is None:
        raise LookupError(f"no @{CHAMPION} for {settings.model_name}: train and promote a version first")
    version = str(mv.version)
    frame = load_run_frame(settings, str(mv.run_id), REFERENCE_ARTIFACT)
    importance = feature_importance(load_model(settings, version), frame, seed=settings.seed)
    return Reference(frame, importance, threshold_of(dict(mv.tags or {})), version)


def _main() -> None:
    from mlops_lab.settings import get_settings

    ref = load_reference(get_settings())
    print(f"champion v{ref.version}: {len(ref.frame)} reference rows, threshold {ref.threshold:.4f}")
    for name, share in sorted(ref.importance.items(), key=lambda kv: -kv[1]):
        print(f"  {name:24} {share:6.1%}")


if __name__ == "__main__":
    _main()
