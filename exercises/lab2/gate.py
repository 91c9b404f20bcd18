"""Lab 2, exercise `evaluation-gate`: may this challenger replace the champion?

    make lab-2        grade it          make hint-2      one more hint
    Reference: reference/mlops_lab/lifecycle/gate.py     Docs: docs/labs/lab-2-lifecycle.md

Both models are scored on the *same* holdout, each with its own decision threshold. The gate
passes only if every check passes (recall and latency are written; you write the other three):

  schema       the challenger's signature accepts exactly the serving schema's columns
  pr_auc       challenger PR-AUC >= champion PR-AUC - settings.gate_pr_auc_margin
  recall       recall at the challenger's threshold >= the floor
  slices       per channel, PR-AUC does not fall more than gate_slice_margin below the champion's
  latency      single-row p50, scored as the server scores, within the budget

The first model has no champion: only the checks that need none apply.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle.gate import SLICE_COLUMN, Check, GateVerdict, _worst_slice  # written
from mlops_lab.settings import Settings


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

    if signature_columns is not None:
        # TODO(lab-2): the "schema" check: passes when signature_columns has every column of
        # SCHEMA.names and nothing else; its detail names the missing and the extra columns.
        raise NotImplementedError("TODO(lab-2): the schema check")

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
        # TODO(lab-2): score the champion on the same x (fraud_model.scores), take its metrics
        # (fraud_model.metrics(y, scores, champion_threshold)) into `old`, then add
        #  - "pr_auc": new["pr_auc"] >= old["pr_auc"] - settings.gate_pr_auc_margin
        #  - "slices": _worst_slice(holdout, y, new_scores, old_scores) gives (channel, drop) or
        #    None; it fails when drop > settings.gate_slice_margin
        raise NotImplementedError("TODO(lab-2): the champion comparisons")
    return GateVerdict(all(c.passed for c in checks), tuple(checks), new, old)
