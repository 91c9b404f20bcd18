"""Lab 6, exercise `fast-features`: profile, then vectorise the feature job.

    make lab-6        grade it          make hint-6      one more hint
    Reference: reference/mlops_lab/data/features.py     Docs: docs/labs/lab-6-coding.md

The feature job (`mlops-lab data features --input tx.parquet --output features.parquet`) adds
to every transaction of a log five features of its card's history: the transactions before it
on the same card, never itself, never a later one (a feature must be computable at the moment
the transaction is scored):

  card_txns_1h             how many of them in the hour before (exactly an hour ago included)
  card_amount_1h           their total amount (0.0 when there are none)
  card_seconds_since_last  seconds since the card's previous transaction (NaN for its first)
  card_amount_z            (amount - mean) / std of all the card's earlier amounts, the sample
                           std (ddof=1); NaN with fewer than two earlier amounts, and NaN when
                           they are all the same (a subscription: std 0, never inf)
  card_online_share        the share of all the card's earlier transactions that were online
                           (channel == "online"); NaN for its first

card_features_slow is the definition: correct, and a loop over the rows that filters the whole
log again for each one. `mlops-lab data features --profile` shows where its time goes. You write
card_features: the same output at least 20x faster, measured against card_features_slow in the
same run (the reference is a few hundred times faster).

What they work with:

    event_times(frame)       each row's time as int64 nanoseconds (the ts column, or the row
                             order when there is none); raises BadData for a broken log: call
                             it first, as card_features_slow does
    card_features_slow(frame) -> the expected output, for any frame you want to compare on
    FEATURES                 the five column names, in the order the output adds them
    WINDOW_NS                an hour in nanoseconds, the unit of event_times
    ENTITY                   "card_id"
    numpy                    np.lexsort / np.argsort(kind="stable"), np.cumsum, np.searchsorted
    pandas                   groupby(...).cumsum() / .cumcount() / .shift() / .diff() / .cummin(),
                             groupby(...).rolling("1h", on=..., closed="both"), .expanding()
"""

from __future__ import annotations

import pandas as pd

from mlops_lab.data.features import FEATURES, TIME, WINDOW_NS, card_features_slow, event_times
from mlops_lab.data.schema import ENTITY

__all__ = ["ENTITY", "FEATURES", "TIME", "WINDOW_NS", "card_features", "card_features_slow", "event_times"]


def card_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The log with FEATURES added: the same output as card_features_slow(frame), in O(n log n)."""
    # TODO(lab-6): vectorise card_features_slow. Run `mlops-lab data features --profile` first:
    #  the slow version filters the whole log once per row (n x n); do the work once instead.
    #  - times = event_times(frame) first (it checks the log). "Before" means: an earlier time,
    #    or the same time and an earlier row of the log (ties in time keep the log's order).
    #  - Sort once, by card, then time, then position in the log, with a stable sort. Within a
    #    card's run of sorted rows, each feature is a cumulative count or sum up to the row
    #    before (cumsum minus the row itself, or a shift), or a difference with the previous row.
    #  - The hour window: the first row of the card at or after `t - WINDOW_NS` (a searchsorted,
    #    or pandas' groupby rolling("1h", closed="both") minus the row itself).
    #  - The z-score: the sample std (ddof=1) of the earlier amounts; NaN where fewer than two,
    #    and NaN (not inf, not a huge number from rounding) where they are all equal.
    #  - Return a copy of `frame` (never modify the caller's frame) with the five FEATURES
    #    columns added in that order: card_txns_1h int64, the others float64; the rows in the
    #    caller's order with the caller's index (undo the sort).
    #  Think about: why must the features of a row use only the card's earlier transactions, when
    #  the later ones are right there in the file?
    raise NotImplementedError("TODO(lab-6): the card features, vectorised")
