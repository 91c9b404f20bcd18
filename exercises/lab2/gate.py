"""Lab 2, exercise `evaluation-gate`: may this challenger replace the champion?

    make lab-2        grade it          make hint-2      one more hint
    Reference: reference/mlops_lab/lifecycle/gate.py     Docs: docs/labs/lab-2-lifecycle.md

`evaluate` (written) scores both models on the *same* holdout, the challenger's (the freshest
data), each at its own decision threshold, checks the recall floor and the latency budget, and
turns the checks into a verdict that passes only when every check passes. You write the two
checks that need a contract or a second model:

  schema_check      the challenger's signature accepts exactly the columns serving sends
  champion_checks   the challenger against the champion: overall PR-AUC, then per channel

What they work with:

    Check(name, passed, detail)   one line of the verdict; `detail` is what a person reads
    Scored(scores, metrics)       one model on the holdout: `scores` is a numpy array with the
                                  fraud score of every holdout row, in the holdout's row order;
                                  `metrics` is {"pr_auc": ..., "recall": ..., ...} at its threshold
    holdout                       a DataFrame: the SCHEMA.names columns and SCHEMA.label
                                  ("is_fraud", 0/1); SLICE_COLUMN is "channel", one of
                                  "card_present", "contactless", "online"

The first model has no champion: `evaluate` then calls only `schema_check`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import gate as reference
from mlops_lab.lifecycle.gate import SLICE_COLUMN, SLICE_MIN_FRAUDS, Check, GateVerdict, Scored, score
from mlops_lab.settings import Settings


def schema_check(signature_columns: Sequence[str]) -> Check:
    """The "schema" check of a model whose signature takes `signature_columns`."""
    # TODO(lab-2): a Check named "schema" that passes when the signature takes every column of
    # SCHEMA.names and nothing else, in any order. When it fails, its detail names every missing
    # and every extra column, whatever the metrics say.
    # Think about: a model that needs a column serving does not send breaks at the first
    # request; why refuse a model that only *adds* one?
    raise NotImplementedError("TODO(lab-2): the schema check")


def champion_checks(
    settings: Settings, holdout: pd.DataFrame, challenger: Scored, champion: Scored
) -> list[Check]:
    """The checks that compare the challenger with the champion on the same `holdout`."""
    # TODO(lab-2): two checks.
    #  - "pr_auc": passes when the challenger's PR-AUC is at least the champion's minus
    #    settings.gate_pr_auc_margin (an equal challenger passes, even with a margin of 0);
    #    the detail gives both values.
    #  - "slices": for each value of holdout[SLICE_COLUMN], the PR-AUC of each model on that
    #    slice's rows (sklearn's average_precision_score(labels, scores)); it fails when the
    #    challenger's largest loss (champion's minus challenger's) exceeds
    #    settings.gate_slice_margin, and its detail names that slice. A slice with fewer than
    #    SLICE_MIN_FRAUDS frauds, or without a legitimate row, is not judged; when no slice is
    #    judged, leave the "slices" check out.
    #  The scores are given: score nothing again, and never compare numbers from different rows.
    #  Think about: why can a challenger that is better overall still be refused?
    raise NotImplementedError("TODO(lab-2): the champion comparisons")


# The reference's evaluate (scoring, recall, latency, the verdict), with your two checks.
evaluate = partial(reference.evaluate, schema_check=schema_check, champion_checks=champion_checks)
