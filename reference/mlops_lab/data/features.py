"""Per-card features of a transaction log: the feature job, written twice.

    python -m mlops_lab.data.features       # time both versions on a generated log
    mlops-lab data features --input var/data/tx.parquet --output var/data/features.parquet
    mlops-lab data features --profile       # where the slow version spends its time

Fraud is a property of a card's history as much as of one transaction: five purchases in an
hour, an amount far above what the card usually spends, the first online purchase of a card
that was only ever used in shops. For every transaction (a row of the log), looking only at the
same card's *earlier* transactions (its history; never the transaction itself, never a later
one: a feature must be computable at the moment the transaction is scored):

  card_txns_1h             how many transactions in the hour before (an hour ago included)
  card_amount_1h           their total amount
  card_seconds_since_last  seconds since the card's previous transaction (NaN: the first)
  card_amount_z            (amount - mean) / std of the card's earlier amounts, the sample
                           std (ddof=1); NaN with fewer than two earlier amounts or when they
                           are all the same (a subscription: a std of 0)
  card_online_share        the share of the earlier transactions that were online (NaN: the first)

"Earlier" is the log's clock (`event_times`): the `ts` column when the log has one, else the
row order (a generated file is in arrival order). Two transactions of a card at the same time
are ordered as they appear in the log: the first is in the second's history.

`card_features_slow` is the version a data scientist writes first (a loop over the rows, the
whole log filtered again for each one: O(n^2)); it is the definition. `card_features` is the
version the job runs: sort once, then cumulative sums and one merge for the window, O(n log n),
the same output. `python -m mlops_lab.data.features` measures the gap.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from mlops_lab.data.schema import ENTITY
from mlops_lab.errors import BadData

TIME = "ts"  # the log's clock when it has one (the prediction log's column)
WINDOW_NS = 3_600 * 10**9  # an hour, in the unit of event_times
FEATURES = (
    "card_txns_1h",
    "card_amount_1h",
    "card_seconds_since_last",
    "card_amount_z",
    "card_online_share",
)
_NEEDS = (ENTITY, "amount", "channel")
_DTYPES = {name: np.float64 for name in FEATURES} | {"card_txns_1h": np.int64}


def event_times(frame: pd.DataFrame) -> np.ndarray:
    """Each row's time as int64 nanoseconds since the epoch, after checking the log.

    The `ts` column (datetimes, naive or with a time zone) when there is one; else row i is at
    i seconds: a log without a clock is in arrival order. Raises BadData naming what is wrong
    (a missing column, a missing amount or time): features of a broken log would be silently wrong.
    """
    missing = [c for c in _NEEDS if c not in frame.columns]
    if missing:
        raise BadData(f"the transaction log has no column {', '.join(missing)}")
    for column in (ENTITY, "amount"):
        if frame[column].isna().any():
            raise BadData(
                f"the transaction log has {int(frame[column].isna().sum())} missing {column} values"
            )
    if TIME not in frame.columns:
        return np.arange(len(frame), dtype=np.int64) * 10**9
    ts = pd.to_datetime(frame[TIME], utc=True)  # a naive time is read as UTC; an aware one converted
    if ts.isna().any():
        raise BadData(f"the transaction log has {int(ts.isna().sum())} missing times in {TIME}")
    return ts.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view(np.int64)


def _with_features(frame: pd.DataFrame, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """A copy of the log (its index and row order) with the feature columns added: the caller's
    frame is never modified."""
    out = frame.copy()
    for name in FEATURES:
        out[name] = columns[name]
    return out


def card_features_slow(frame: pd.DataFrame) -> pd.DataFrame:
    """The log with FEATURES added, one row at a time: the definition, and slow on purpose.

    For each row, the whole log is filtered again for the same card's earlier rows: n filters of
    n rows. Correct, and about a second for a thousand rows; on a million rows each filter takes
    some 30 ms, so the loop would take hours. Kept as the definition the fast version is tested
    against.
    """
    times = event_times(frame)
    log = frame.reset_index(drop=True)  # positions: "earlier in the log" breaks ties in time
    position = np.arange(len(log))
    online = log["channel"] == "online"
    counts, sums, since, zscores, shares = [], [], [], [], []
    for i, (_, row) in enumerate(log.iterrows()):
        now = times[i]
        earlier = (times < now) | ((times == now) & (position < i))
        history = log[(log[ENTITY] == row[ENTITY]) & earlier]
        hist_times = times[history.index]
        recent = history[hist_times >= now - WINDOW_NS]
        counts.append(len(recent))
        sums.append(float(recent["amount"].sum()))
        since.append((now - hist_times.max()) / 1e9 if len(history) else np.nan)
        amounts = history["amount"]
        if len(amounts) < 2 or amounts.min() == amounts.max():
            zscores.append(np.nan)  # no spread to measure against: a z-score would be 0/0 or x/0
        else:
            zscores.append((row["amount"] - amounts.mean()) / amounts.std(ddof=1))
        shares.append(float(online[history.index].mean()) if len(history) else np.nan)
    return _with_features(
        frame,
        {
            "card_txns_1h": np.asarray(counts, dtype=np.int64),
            "card_amount_1h": np.asarray(sums, dtype=np.float64),
            "card_seconds_since_last": np.asarray(since, dtype=np.float64),
            "card_amount_z": np.asarray(zscores, dtype=np.float64),
            "card_online_share": np.asarray(shares, dtype=np.float64),
        },
    )


def _window_starts(cards: np.ndarray, times: np.ndarray) -> np.ndarray:
    """For each row of a log sorted by (card, time): the position of the card's first row at or
    after an hour before it. One merge of the rows with their window starts: a row exactly an
    hour earlier is inside (the starts sort before rows of equal card and time)."""
    n = len(times)
    is_row = np.r_[np.zeros(n, dtype=bool), np.ones(n, dtype=bool)]
    merged = np.lexsort((is_row, np.r_[times - WINDOW_NS, times], np.r_[cards, cards]))
    rows_in_order = is_row[merged]
    rows_before = np.cumsum(rows_in_order) - rows_in_order  # rows sorting before each entry
    starts = np.empty(n, dtype=np.int64)
    starts[merged[~rows_in_order]] = rows_before[~rows_in_order]
    return starts


def card_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The log with FEATURES added, the same output as card_features_slow, in O(n log n).

    Sort once by (card, time, position); then every feature is a difference of cumulative sums
    within a card's run of rows, and the hour window is one merge (`_window_starts`). Results go
    back to the input's row order through the sort's permutation.
    """
    times = event_times(frame)
    n = len(frame)
    if n == 0:
        return _with_features(frame, {name: np.zeros(0, dtype=_DTYPES[name]) for name in FEATURES})
    cards = pd.factorize(frame[ENTITY])[0]
    # lexsort is stable, and the position key makes the tie-break explicit anyway.
    order = np.lexsort((np.arange(n), times, cards))
    c, t = cards[order], times[order]
    amount = frame["amount"].to_numpy(dtype=np.float64)[order]
    online = (frame["channel"] == "online").to_numpy()[order]

    first = np.r_[True, c[1:] != c[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))  # each row's card's first row
    k = np.arange(n) - start  # earlier transactions of the card

    # Per-card running sums, shifted by the card's first amount: the variance from sums of
    # squares cancels catastrophically on raw amounts, and a run restarting at each card keeps
    # the magnitudes of one card (a global cumsum would carry the whole log's total).
    by_card = pd.Series(c)
    d = amount - amount[start]
    s1 = pd.Series(d).groupby(by_card).cumsum().to_numpy() - d  # earlier rows only
    s2 = pd.Series(d * d).groupby(by_card).cumsum().to_numpy() - d * d
    raw = pd.Series(amount).groupby(by_card).cumsum().to_numpy()
    online_before = pd.Series(online.astype(np.int64)).groupby(by_card).cumsum().to_numpy() - online

    w = _window_starts(c, t)
    raw_before = raw - amount
    # the sum over rows w..i-1 of the same card: the running sum before i minus that before w
    amount_1h = raw_before - raw_before[w]

    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / k
        var = (s2 - s1 * mean) / (k - 1)
        z = (d - mean) / np.sqrt(np.maximum(var, 0.0))
        share = online_before / k
    lowest = pd.Series(amount).groupby(by_card).cummin().to_numpy()
    highest = pd.Series(amount).groupby(by_card).cummax().to_numpy()
    # all earlier amounts equal <=> the running min and max before this row agree
    prev_low = np.where(first, np.nan, np.r_[np.nan, lowest[:-1]])
    prev_high = np.where(first, np.nan, np.r_[np.nan, highest[:-1]])
    z[(k < 2) | (prev_low == prev_high)] = np.nan
    since = np.where(first, np.nan, (t - np.r_[t[:1], t[:-1]]) / 1e9)
    share[k == 0] = np.nan

    back = np.empty(n, dtype=np.int64)
    back[order] = np.arange(n)  # sorted position of each input row
    return _with_features(
        frame,
        {
            "card_txns_1h": (np.arange(n) - w)[back].astype(np.int64),
            "card_amount_1h": amount_1h[back].astype(np.float64),
            "card_seconds_since_last": since[back].astype(np.float64),
            "card_amount_z": z[back].astype(np.float64),
            "card_online_share": share[back].astype(np.float64),
        },
    )


def _main() -> None:
    from mlops_lab.data.generator import generate

    log = generate("baseline", 2_000, seed=7)
    log[ENTITY] = (log[ENTITY].astype(int) % 200).astype(str)  # 200 cards: histories to look at
    timings = {}
    for name, fn in (("slow", card_features_slow), ("fast", card_features)):
        start = time.process_time()
        result = fn(log)
        timings[name] = time.process_time() - start
    slow, fast = timings["slow"], timings["fast"]
    print(f"{len(log):,} rows: slow {slow:.3f} s, fast {fast * 1000:.1f} ms CPU: {slow / fast:.0f}x")
    busiest = result[ENTITY].value_counts().index[0]  # a card with a history to show
    print(result.loc[result[ENTITY] == busiest, [ENTITY, "amount", "channel", *FEATURES]].head(8).to_string())


if __name__ == "__main__":
    _main()
