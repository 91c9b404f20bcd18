"""Lab 4, exercise `delayed-labels`: realized performance from late labels, and the estimate meanwhile.

    make lab-4        grade it          make hint-4      one more hint
    Reference: reference/mlops_lab/monitoring/performance.py     Docs: docs/labs/lab-4-observability.md

A fraud label is a chargeback: it arrives hours to weeks after the prediction, sometimes twice,
sometimes corrected. The monitor reports two views of each window of predictions: the realized
precision and recall on the rows whose label has arrived, and a label-free estimate from the
model's calibrated scores, there from the first minute. You write:

  latest_labels   one label per request: the latest delivery (a correction wins)
  realized        precision/recall on the labelled rows of a window, or None until enough of
                  the window is labelled (min_coverage)
  estimate        what calibrated scores expect: E[fraud | score] = score

The grader scores generated traffic with a real model and feeds it labels with real delays,
then shows you where the two views part ways: a fraud wave (prior_shift) and a new fraud
tactic (concept_drift).

What they work with:

    decisions   a DataFrame with request_id and flagged (bool): one row per prediction of the
                window (what the model decided)
    labels      a DataFrame with request_id, label (1 = fraud, 0 = not) and usually ts (when the
                label arrived); re-delivered, corrected, in no particular order, and holding the
                labels of other windows' requests too (the whole labels table)
    Realized(labelled, coverage, positives, flagged, precision, recall)
                labelled: rows of the window with a label; coverage: labelled / rows of the
                window; positives, flagged: among the labelled rows; precision, recall: float,
                or None where undefined
    Estimate(positive_rate, flagged_rate, precision, recall)
                positive_rate: the expected fraud rate (mean score); flagged_rate: the share
                flagged; precision, recall: float, or None where undefined
"""

from __future__ import annotations

import numpy.typing as npt
import pandas as pd

from mlops_lab.monitoring.performance import Estimate, Realized

__all__ = ["Estimate", "Realized", "estimate", "latest_labels", "realized"]


def latest_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """One row per request_id (columns request_id and label): its latest delivery, by ts (the
    arrival time) when the frame has it, else the later row."""
    # TODO(lab-4): a request's label can come more than once. Sort by ts when there is a ts
    #  column (a stable sort keeps equal times in their row order), then keep one row per
    #  request_id: DataFrame.drop_duplicates(subset=..., keep=...).
    #  Think about: the first delivery or the last? A chargeback can be reversed when the
    #  merchant proves the sale, and a purchase first reported clean can be disputed weeks later.
    raise NotImplementedError("TODO(lab-4): one label per request, the latest delivery")


def realized(
    decisions: pd.DataFrame, labels: pd.DataFrame | None, *, min_coverage: float = 0.0
) -> Realized | None:
    """Realized precision and recall of a window: `decisions` (request_id, flagged) against the
    `labels` that have arrived. None when no prediction of the window is labelled, or when less
    than `min_coverage` of the window's predictions are."""
    # TODO(lab-4): join latest_labels(labels) to the decisions on request_id, keeping only the
    #  predictions that have a label. coverage = those rows / the window's predictions; return
    #  None when no labels were given, none matched, or coverage < min_coverage. Then count
    #  over the labelled rows: positives (label 1), flagged, and caught (both):
    #  precision = caught / flagged, recall = caught / positives, None when dividing by 0.
    #  Think about: why is a prediction whose label has not arrived not a legitimate purchase?
    #  And what would realized precision say about a window that is 5% labelled?
    raise NotImplementedError("TODO(lab-4): realized precision and recall on the labelled rows")


def estimate(scores: npt.ArrayLike, flagged: npt.ArrayLike) -> Estimate:
    """The label-free estimate of a window from its scores (calibrated probabilities of fraud)
    and what was flagged. Raises ValueError for no scores, or not one flag per score."""
    # TODO(lab-4): a calibrated score p means the row is a fraud with probability p, so the
    #  expected number of frauds among any rows is the sum of their scores. positive_rate: the
    #  mean score; flagged_rate: the share flagged; precision: expected frauds among the
    #  flagged / rows flagged (None when none was flagged); recall: expected frauds among the
    #  flagged / expected frauds in the window (None when that is 0).
    #  Think about: the estimate exists before any label. Which change in the world can it
    #  not see, by construction?
    raise NotImplementedError("TODO(lab-4): the estimate from calibrated scores")
