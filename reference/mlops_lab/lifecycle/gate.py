"""The offline evaluation gate: may this challenger replace the champion?

    python -c "from mlops_lab.lifecycle.gate import evaluate; help(evaluate)"

Both models are scored on the *same* holdout (the challenger's, which is the freshest data),
each with its own decision threshold. The gate passes only if every check passes:

  schema       the challenger's signature accepts exactly the serving schema's columns
  pr_auc       challenger PR-AUC >= champion PR-AUC - margin
  recall       recall at the challenger's threshold >= the floor
  slices       per channel, PR-AUC does not fall more than the slice margin below the champion's
  latency      single-row p50, scored as the server scores, within the budget

The first model has no champion: only the checks that need none apply.

`evaluate` scores both models (`score`, a `Scored` each) and checks recall and latency; the
schema check is `schema_check`, the comparisons with the champion are `champion_checks`. Lab 2's
evaluation-gate exercise is those two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.settings import Settings

SLICE_COLUMN = "channel"
# A slice with fewer frauds than this is not judged: its PR-AUC would be noise.
SLICE_MIN_FRAUDS = 5


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    checks: tuple[Check, ...]
    challenger: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]

    def summary(self) -> str:
        return "PASS" if self.passed else "FAIL (" + "; ".join(self.reasons) + ")"


@dataclass(frozen=True)
class Scored:
    """One model scored on the gate's holdout, at its own decision threshold.

    scores   its fraud score of every holdout row, in the holdout's row order (a numpy array)
    metrics  `model.metrics` of those scores: pr_auc, roc_auc, recall, precision, flagged_rate
    """

    scores: np.ndarray
    metrics: dict[str, float]


class ChampionChecks(Protocol):
    def __call__(
        self, settings: Settings, holdout: pd.DataFrame, challenger: Scored, champion: Scored
    ) -> list[Check]: ...


def score(model: Any, threshold: float, holdout: pd.DataFrame) -> Scored:
    """Score `model` on `holdout` (its SCHEMA.names columns) and measure it against the labels."""
    scores = fraud_model.scores(model, holdout[SCHEMA.names])
    return Scored(scores, fraud_model.metrics(holdout[SCHEMA.label].to_numpy(), scores, threshold))


# --8<-- [start:schema_check]
def schema_check(signature_columns: Sequence[str]) -> Check:
    """ "schema": the model's signature accepts exactly the columns serving sends (SCHEMA.names)."""
    missing = sorted(set(SCHEMA.names) - set(signature_columns))
    extra = sorted(set(signature_columns) - set(SCHEMA.names))
    ok = not missing and not extra
    return Check("schema", ok, "matches the serving schema" if ok else f"missing {missing}, extra {extra}")


# --8<-- [end:schema_check]


# --8<-- [start:champion_checks]
def champion_checks(
    settings: Settings, holdout: pd.DataFrame, challenger: Scored, champion: Scored
) -> list[Check]:
    """The checks that compare the two models on the same holdout: "pr_auc", then "slices"."""
    floor = champion.metrics["pr_auc"] - settings.gate_pr_auc_margin
    checks = [
        Check(
            "pr_auc",
            challenger.metrics["pr_auc"] >= floor,
            f"challenger {challenger.metrics['pr_auc']:.3f} vs champion {champion.metrics['pr_auc']:.3f} "
            f"(margin {settings.gate_pr_auc_margin})",
        )
    ]
    worst = worst_slice(holdout, challenger.scores, champion.scores)
    if worst is not None:
        name, drop = worst
        checks.append(
            Check(
                "slices",
                drop <= settings.gate_slice_margin,
                f"largest per-{SLICE_COLUMN} PR-AUC drop {drop:+.3f} on {name!r} "
                f"(margin {settings.gate_slice_margin})",
            )
        )
    return checks


def worst_slice(
    holdout: pd.DataFrame, new_scores: np.ndarray, old_scores: np.ndarray
) -> tuple[str, float] | None:
    """The slice where the challenger loses most PR-AUC against the champion, and that loss.

    Only slices with both classes and at least SLICE_MIN_FRAUDS frauds count: PR-AUC on a handful
    of frauds is noise. None when no slice counts.
    """
    y = holdout[SCHEMA.label].to_numpy()
    values = holdout[SLICE_COLUMN].astype(str).to_numpy()
    worst: tuple[str, float] | None = None
    for value in sorted(set(values)):
        mask = values == value
        if len(np.unique(y[mask])) < 2 or y[mask].sum() < SLICE_MIN_FRAUDS:
            continue
        drop = float(
            average_precision_score(y[mask], old_scores[mask])
            - average_precision_score(y[mask], new_scores[mask])
        )
        if worst is None or drop > worst[1]:
            worst = (value, drop)
    return worst


# --8<-- [end:champion_checks]


def evaluate(
    settings: Settings,
    challenger: Any,
    challenger_threshold: float,
    holdout: pd.DataFrame,
    champion: Any | None = None,
    champion_threshold: float = 0.5,
    signature_columns: list[str] | None = None,
    *,
    schema_check: Callable[[Sequence[str]], Check] = schema_check,
    champion_checks: ChampionChecks = champion_checks,
) -> GateVerdict:
    """The verdict on `challenger`, both models scored on `holdout`, each at its own threshold.

    `schema_check` and `champion_checks` are the checks that need a contract or a second model
    (lab 2 passes the learner's own); recall and latency are checked here.
    """
    new = score(challenger, challenger_threshold, holdout)
    checks: list[Check] = []
    if signature_columns is not None:
        checks.append(schema_check(signature_columns))
    recall = new.metrics["recall"]
    checks.append(
        Check(
            "recall",
            recall >= settings.gate_min_recall,
            f"recall {recall:.3f} (floor {settings.gate_min_recall:.3f})",
        )
    )
    latency = fraud_model.single_row_latency_ms(challenger, holdout[SCHEMA.names])
    checks.append(
        Check(
            "latency",
            latency["p50_ms"] <= settings.gate_latency_budget_ms,
            f"single-row p50 {latency['p50_ms']:.3f} ms (budget {settings.gate_latency_budget_ms} ms)",
        )
    )
    old: dict[str, float] = {}
    if champion is not None:
        old_model = score(champion, champion_threshold, holdout)
        old = dict(old_model.metrics)
        checks.extend(champion_checks(settings, holdout, new, old_model))
    reported = {**new.metrics, "latency_p50_ms": latency["p50_ms"]}
    return GateVerdict(all(c.passed for c in checks), tuple(checks), reported, old)
