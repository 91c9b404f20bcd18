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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.settings import Settings

SLICE_COLUMN = "channel"


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


def evaluate(
    settings: Settings,
    challenger: Any,
    challenger_threshold: float,
    holdout: pd.DataFrame,
    champion: Any | None = None,
    champion_threshold: float = 0.5,
    signature_columns: list[str] | None = None,
) -> GateVerdict:
    x, y = holdout[SCHEMA.names], holdout[SCHEMA.label].to_numpy()
    new_scores = fraud_model.scores(challenger, x)
    new = fraud_model.metrics(y, new_scores, challenger_threshold)
    checks: list[Check] = []

    # --8<-- [start:schema_check]
    if signature_columns is not None:
        missing = sorted(set(SCHEMA.names) - set(signature_columns))
        extra = sorted(set(signature_columns) - set(SCHEMA.names))
        ok = not missing and not extra
        checks.append(
            Check("schema", ok, "matches the serving schema" if ok else f"missing {missing}, extra {extra}")
        )
    # --8<-- [end:schema_check]

    checks.append(
        Check(
            "recall",
            new["recall"] >= settings.gate_min_recall,
            f"recall {new['recall']:.3f} (floor {settings.gate_min_recall:.3f})",
        )
    )
    latency = fraud_model.single_row_latency_ms(challenger, x)
    new["latency_p50_ms"] = latency["p50_ms"]
    checks.append(
        Check(
            "latency",
            latency["p50_ms"] <= settings.gate_latency_budget_ms,
            f"single-row p50 {latency['p50_ms']:.3f} ms (budget {settings.gate_latency_budget_ms} ms)",
        )
    )

    old: dict[str, float] = {}
    if champion is not None:
        old_scores = fraud_model.scores(champion, x)
        old = fraud_model.metrics(y, old_scores, champion_threshold)
        floor = old["pr_auc"] - settings.gate_pr_auc_margin
        checks.append(
            Check(
                "pr_auc",
                new["pr_auc"] >= floor,
                f"challenger {new['pr_auc']:.3f} vs champion {old['pr_auc']:.3f} "
                f"(margin {settings.gate_pr_auc_margin})",
            )
        )
        worst = _worst_slice(holdout, y, new_scores, old_scores)
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
    return GateVerdict(all(c.passed for c in checks), tuple(checks), new, old)


def _worst_slice(
    holdout: pd.DataFrame, y: np.ndarray, new_scores: np.ndarray, old_scores: np.ndarray
) -> tuple[str, float] | None:
    """The slice where the challenger loses most PR-AUC against the champion.

    Only slices with both classes count.
    """
    worst: tuple[str, float] | None = None
    for value in sorted(holdout[SLICE_COLUMN].astype(str).unique()):
        mask = (holdout[SLICE_COLUMN].astype(str) == value).to_numpy()
        if len(np.unique(y[mask])) < 2 or y[mask].sum() < 5:
            continue
        drop = float(
            average_precision_score(y[mask], old_scores[mask])
            - average_precision_score(y[mask], new_scores[mask])
        )
        if worst is None or drop > worst[1]:
            worst = (value, drop)
    return worst
