"""A solution of lab 2's `evaluation-gate` (exercises/lab2/gate.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab2/evaluation-gate.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import gate as reference
from mlops_lab.lifecycle.gate import SLICE_COLUMN, SLICE_MIN_FRAUDS, Check, Scored
from mlops_lab.settings import Settings


def schema_check(signature_columns: Sequence[str]) -> Check:
    """The "schema" check of a model whose signature takes `signature_columns`."""
    # Sets, not lists: the order of a signature's columns means nothing to serving. Both
    # differences count: a missing column breaks the first request, an extra one means the model
    # was fitted on something serving will never send (it gets a default, silently).
    missing = sorted(set(SCHEMA.names) - set(signature_columns))
    extra = sorted(set(signature_columns) - set(SCHEMA.names))
    ok = not missing and not extra
    # Sorted, so that the same mismatch reads the same on every run.
    return Check("schema", ok, "matches the serving schema" if ok else f"missing {missing}, extra {extra}")


def champion_checks(
    settings: Settings, holdout: pd.DataFrame, challenger: Scored, champion: Scored
) -> list[Check]:
    """The checks that compare the challenger with the champion on the same `holdout`."""
    new, old = challenger.metrics["pr_auc"], champion.metrics["pr_auc"]
    # The margin lowers the bar: a challenger a little worse may still replace the champion
    # (fresher data), and an equal one always may (>=, not >).
    floor = old - settings.gate_pr_auc_margin
    checks = [
        Check(
            "pr_auc",
            new >= floor,
            f"challenger {new:.3f} vs champion {old:.3f} (margin {settings.gate_pr_auc_margin})",
        )
    ]
    # Labels and both score arrays follow the holdout's row order: one positional mask selects the
    # same rows in all three (never the index labels, which a split leaves shuffled).
    labels = holdout[SCHEMA.label].to_numpy()
    values = holdout[SLICE_COLUMN].astype(str).to_numpy()
    worst: tuple[str, float] | None = None
    for value in sorted(set(values)):
        mask = values == value
        y = labels[mask]
        # A PR-AUC on a handful of frauds, or on a slice with no legitimate row, is noise.
        if y.sum() < SLICE_MIN_FRAUDS or len(np.unique(y)) < 2:
            continue
        loss = float(
            average_precision_score(y, champion.scores[mask])
            - average_precision_score(y, challenger.scores[mask])
        )
        # The largest loss decides: better overall can still mean blind on one channel.
        if worst is None or loss > worst[1]:
            worst = (value, loss)
    if worst is not None:  # no slice judged: no "slices" check, rather than a pass on nothing
        name, loss = worst
        checks.append(
            Check(
                "slices",
                loss <= settings.gate_slice_margin,
                f"largest per-{SLICE_COLUMN} PR-AUC loss {loss:+.3f} on {name!r} "
                f"(margin {settings.gate_slice_margin})",
            )
        )
    return checks


# The reference's evaluate (scoring, recall, latency, the verdict), with your two checks.
evaluate = partial(reference.evaluate, schema_check=schema_check, champion_checks=champion_checks)
