"""Grader of lab 6 / fast-features (exercises/lab6/features.py): the same features, 20x faster.

The definition is the reference's card_features_slow (not the learner's copy of it): every
check compares card_features with it on a generated transaction log (the generator's rows, their
card ids folded onto a few cards so that cards have histories, and a clock where the check needs
one). Floats are compared within 1e-6 (relative and absolute): the fast version adds in a
different order. The speed is a ratio of CPU times (time.process_time) measured in this run,
best of three of each, so a busy machine slows both sides alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_lab.data.features import FEATURES, card_features_slow
from mlops_lab.data.generator import generate
from mlops_lab.data.schema import ENTITY

SPEEDUP = 20  # the reference is a few hundred times faster: a busy machine cannot make it flake
BIG_ROWS = 1_200  # the slow version takes about a second on it (O(n^2))
REPEATS = 3
RTOL = ATOL = 1e-6
START = pd.Timestamp("2024-05-01 08:00")


def transactions(
    n: int, seed: int, cards: int, scenario: str = "baseline", minutes: int | None = None, step: int = 1
) -> pd.DataFrame:
    """`n` generated transactions on `cards` cards; with `minutes`, a `ts` clock over that many
    minutes (on a grid of `step` minutes: ties and exact hours apart), rows out of time order."""
    frame = generate(scenario, n, seed=seed)
    frame[ENTITY] = (frame[ENTITY].astype(int) % cards).astype(str)
    if minutes is not None:
        rng = np.random.default_rng(seed)
        offsets = rng.integers(0, minutes // step, size=n) * step
        seconds = offsets * 60 + (rng.integers(0, 60, size=n) if step == 1 else 0)
        frame["ts"] = START + pd.to_timedelta(seconds, unit="s")
    return frame


def features_of(impl: ModuleType, frame: pd.DataFrame) -> pd.DataFrame:
    got = impl.card_features(frame)
    assert isinstance(got, pd.DataFrame), (
        f"expected card_features to return a DataFrame, got {type(got).__name__}"
    )
    return got


def same(expected: pd.DataFrame, got: pd.DataFrame, what: str) -> None:
    """`got` must be `expected`: columns, index, dtypes, the log's values, features within 1e-6.
    The message names the first row that differs, with its card and amount."""
    assert list(got.columns) == list(expected.columns), (
        f"{what}: expected the columns {list(expected.columns)}, got {list(got.columns)}"
    )
    assert len(got) == len(expected), f"{what}: expected {len(expected)} rows, got {len(got)}"
    assert got.index.equals(expected.index), (
        f"{what}: expected the caller's index {list(expected.index[:5])}..., got {list(got.index[:5])}..."
    )
    for name in expected.columns:
        want, have = expected[name], got[name]
        assert have.dtype == want.dtype, f"{what}: expected {name} of dtype {want.dtype}, got {have.dtype}"
        if name not in FEATURES:
            assert have.equals(want), f"{what}: expected the log's column {name} unchanged, got other values"
            continue
        w, h = want.to_numpy(dtype=float), have.to_numpy(dtype=float)
        ok = np.isclose(h, w, rtol=RTOL, atol=ATOL) | (np.isnan(h) & np.isnan(w))
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            row = expected.iloc[i]
            when = f", ts {row['ts']}" if "ts" in row else ""
            raise AssertionError(
                f"{what}: expected {name} {want.iloc[i].item()!r} for row {expected.index[i]!r} (card "
                f"{row[ENTITY]}, amount {row['amount']}{when}), got {have.iloc[i].item()!r} "
                f"({int((~ok).sum())} of {len(ok)} rows differ)"
            )


def best_cpu(fn: Callable[[pd.DataFrame], Any], frame: pd.DataFrame) -> tuple[float, Any]:
    """The smallest CPU time of REPEATS calls, and the last call's result."""
    times, result = [], None
    for _ in range(REPEATS):
        start = time.process_time()
        result = fn(frame)
        times.append(time.process_time() - start)
    return min(times), result


@pytest.fixture(scope="module")
def big() -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """The speed check's log, card_features_slow's output on it and its best CPU time: measured
    once, reused by the first check."""
    frame = transactions(BIG_ROWS, seed=11, cards=150)
    seconds, expected = best_cpu(card_features_slow, frame)
    return frame, expected, seconds


def test_generated_log(impl: ModuleType, big: tuple[pd.DataFrame, pd.DataFrame, float]) -> None:
    """a generated log (no ts: the row order is the clock) gets the same features as card_features_slow

    Sort once by card, then time, then position; per card, each feature is a running count or
    sum of the rows before (cumsum minus the row itself), a difference with the previous row,
    or a window. Compare with card_features_slow on a small frame of your own to find which.
    """
    frame, expected, _ = big
    same(expected, features_of(impl, frame), f"a generated log of {len(frame):,} rows, 150 cards")


def test_clock_out_of_order(impl: ModuleType) -> None:
    """a log with a ts clock, its rows out of time order: sorted by time, the same features

    "Earlier" is the ts column, not the row order: sort by card and time before any cumulative
    sum; the prediction log's times carry a time zone (event_times handles that).
    """
    frame = transactions(600, seed=5, cards=30, minutes=8 * 60)
    frame["ts"] = frame["ts"].dt.tz_localize("UTC")  # as the prediction log's timestamptz
    same(card_features_slow(frame), features_of(impl, frame), "a log of 600 rows out of time order")


def test_ties_and_exact_hours(impl: ModuleType) -> None:
    """ties in time keep the log's order, and a transaction exactly an hour earlier is in the window

    Two transactions of a card at the same time: the one earlier in the log is in the other's
    history (a stable sort by card, time, then position). The window is [t - 1h, t]: rows at
    exactly t - 1h count, and the row itself does not.
    """
    frame = transactions(300, seed=7, cards=6, minutes=3 * 60, step=10)  # a 10-minute grid
    same(card_features_slow(frame), features_of(impl, frame), "transactions on a 10-minute grid")


def test_card_seen_once(impl: ModuleType) -> None:
    """a card seen once has no history: 0 transactions in the hour, 0.0 spent, NaN for the rest

    Its first transaction has nothing before it: the count and sum of an empty window are 0,
    and the time since the last, the z-score and the online share are undefined (NaN), not 0.
    """
    frame = transactions(200, seed=3, cards=20, minutes=120)
    frame.loc[frame.index[17], ENTITY] = "only-once"
    got = features_of(impl, frame)
    same(card_features_slow(frame), got, "a log with a card seen once")
    row = got.loc[frame.index[17], list(FEATURES)].tolist()
    assert row[:2] == [0, 0.0] and all(np.isnan(row[2:])), (
        f"expected [0, 0.0, nan, nan, nan] for the card seen once, got {row}"
    )


def test_same_amount_every_time(impl: ModuleType) -> None:
    """a card that always spends the same amount gets a NaN z-score, never inf

    A subscription: the std of its earlier amounts is 0, and (amount - mean) / 0 is inf or NaN
    by accident. NaN where fewer than two earlier amounts or where they are all equal; beware a
    std computed from sums of squares, which leaves a tiny rounding residue instead of 0.
    """
    frame = transactions(300, seed=9, cards=10, minutes=24 * 60)
    subscription = frame[ENTITY] == "3"
    frame.loc[subscription, "amount"] = 0.1  # 0.1 has no exact binary form: 0.1 + 0.1 + 0.1 != 0.3
    frame.loc[frame[ENTITY] == "5", "amount"] = 9.99
    frame.loc[frame.index[frame[ENTITY] == "5"][-1], "amount"] = 19.99  # the price went up
    got = features_of(impl, frame)
    same(card_features_slow(frame), got, "a log with subscription cards")
    z = got.loc[subscription, "card_amount_z"]
    assert z.isna().all(), f"expected a NaN z-score on every row of the subscription card, got {z.tolist()}"


def test_missing_values_seeds_and_sizes(impl: ModuleType) -> None:
    """several seeds and sizes of the missing_values scenario: the same features, NaNs left alone

    The log's other columns (with their NaN) come back unchanged, the features added after them.
    """
    for seed, n, cards in ((1, 60, 5), (2, 250, 25), (4, 500, 40)):
        frame = transactions(n, seed=seed, cards=cards, scenario="missing_values", minutes=6 * 60)
        what = f"missing_values, seed {seed}, {n} rows"
        same(card_features_slow(frame), features_of(impl, frame), what)


def test_empty_log(impl: ModuleType) -> None:
    """an empty log gets the five feature columns, empty, with their dtypes

    card_txns_1h int64, the other four float64: an hour of no traffic must not break the job.
    """
    frame = transactions(50, seed=2, cards=5, minutes=60).iloc[:0]
    same(card_features_slow(frame), features_of(impl, frame), "an empty log")


def test_rows_keep_their_order_and_index(impl: ModuleType) -> None:
    """the rows come back in the caller's order, with the caller's index

    Undo the sort: the features of input row i go on output row i, under the same index label
    (a log read in pieces, or filtered, does not have 0..n-1).
    """
    frame = transactions(300, seed=6, cards=20, minutes=4 * 60)
    frame.index = pd.Index(np.random.default_rng(6).permutation(len(frame)) * 7 + 1000, name="txn")
    got = features_of(impl, frame)
    assert got.index.equals(frame.index), (
        f"expected the caller's index {list(frame.index[:4])}..., got {list(got.index[:4])}..."
    )
    same(card_features_slow(frame), got, "a log with its own index")


def test_input_not_modified(impl: ModuleType) -> None:
    """the caller's frame is not modified: no columns added, no rows reordered

    Work on copies or on numpy arrays: the job's caller keeps using its log.
    """
    frame = transactions(300, seed=8, cards=20, minutes=3 * 60)
    before = frame.copy(deep=True)
    features_of(impl, frame)
    assert list(frame.columns) == list(before.columns), (
        f"expected the caller's columns {list(before.columns)}, got {list(frame.columns)}"
    )
    pd.testing.assert_frame_equal(frame, before, obj="the caller's frame after card_features")


def test_twenty_times_faster(impl: ModuleType, big: tuple[pd.DataFrame, pd.DataFrame, float]) -> None:
    """card_features is at least 20x faster than card_features_slow (CPU time, same run)

    The same answer is not enough: the job exists because the loop is too slow. Profile it
    (`mlops-lab data features --profile`): filtering the whole log once per row is O(n^2).
    Sort once and use cumulative sums: no Python loop over rows (or over cards).
    """
    frame, _, slow = big
    fast, _ = best_cpu(impl.card_features, frame)
    ratio = slow / max(fast, 1e-9)
    assert ratio >= SPEEDUP, (
        f"expected card_features at least {SPEEDUP}x faster than card_features_slow on {len(frame):,} rows "
        f"(CPU time, best of {REPEATS}), got slow {slow:.3f} s, fast {fast:.3f} s: {ratio:.1f}x"
    )
