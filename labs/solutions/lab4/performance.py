"""A solution of lab 4's `delayed-labels` (exercises/lab4/performance.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab4/delayed-labels.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlops_lab.monitoring.performance import Estimate, Realized


def latest_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """One label per request_id: request_id and label of its latest delivery (by ts, the
    arrival time, when the frame has it; else the later row)."""
    if "ts" in labels.columns:
        # The rows come in no promised order (a SELECT without ORDER BY): arrival order is ts.
        # A stable sort leaves deliveries with the same ts in their row order.
        labels = labels.sort_values("ts", kind="stable")
    # The last delivery wins: a later message about the same request is a correction (a
    # chargeback reversed after the merchant proved the sale, a dispute filed weeks later),
    # and a re-delivery of the same label changes nothing either way.
    latest = labels.drop_duplicates(subset="request_id", keep="last")
    return latest[["request_id", "label"]].reset_index(drop=True)


def realized(
    decisions: pd.DataFrame, labels: pd.DataFrame | None, *, min_coverage: float = 0.0
) -> Realized | None:
    """Realized precision/recall of a window: its decisions (request_id, flagged) against the
    labels that have arrived. None when nothing is labelled or coverage < min_coverage."""
    if labels is None or labels.empty or decisions.empty:
        return None
    one_each = latest_labels(labels)
    # Inner join: a prediction without a label is unknown, not "not fraud"; labels of other
    # windows' requests find no partner and drop out here.
    joined = decisions[["request_id", "flagged"]].merge(one_each, on="request_id", how="inner")
    # Coverage is over the window's predictions: how much of *this window* we can see.
    coverage = len(joined) / len(decisions)
    if joined.empty or coverage < min_coverage:
        # An unmatured window is not measured: its first labels are a small (and, with real
        # chargebacks, fraud-heavy) sample, and a number from it would look like a real drop.
        return None
    fraud = joined["label"].to_numpy(dtype=int) == 1
    hit = joined["flagged"].to_numpy(dtype=bool)
    caught = int((fraud & hit).sum())
    n_flagged = int(hit.sum())
    n_fraud = int(fraud.sum())
    return Realized(
        labelled=len(joined),
        coverage=coverage,
        positives=n_fraud,
        flagged=n_flagged,
        # Undefined ratios are None, not 0: "no flagged row" is not "every flag was wrong".
        precision=caught / n_flagged if n_flagged else None,
        recall=caught / n_fraud if n_fraud else None,
    )


def estimate(scores: npt.ArrayLike, flagged: npt.ArrayLike) -> Estimate:
    """What calibrated scores expect, with no label: E[fraud | score] = score."""
    p = np.asarray(scores, dtype=float)
    hit = np.asarray(flagged, dtype=bool)
    if p.size == 0 or p.shape != hit.shape:
        raise ValueError(f"expected one flag per score and at least one score, got {hit.size} and {p.size}")
    # Each row is a fraud with probability p: the expected number of frauds in any set of rows
    # is the sum of their scores (linearity of expectation), never a count of scores above 0.5.
    expected_frauds = p.sum()
    expected_caught = p[hit].sum()
    return Estimate(
        positive_rate=float(p.mean()),
        flagged_rate=float(hit.mean()),
        precision=float(expected_caught / hit.sum()) if hit.any() else None,
        recall=float(expected_caught / expected_frauds) if expected_frauds > 0 else None,
    )
