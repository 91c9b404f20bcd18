"""Grader of lab 6 / top-k (exercises/lab6/topk.py): the K riskiest cards of a stream, in O(K) memory.

Correctness is graded against a full sort of the same stream (every card's highest score,
sorted by score descending then card id ascending, cut at K) over hundreds of generated logs
with ties, cards pushed out and coming back, and k larger than the number of cards. The stream
is a one-shot iterator that fails when read twice. Memory is measured with tracemalloc in the
same run: the peak for 200,000 rows must stay within a small factor of the peak for 10,000
rows, and far below what a list of the rows would take (no wall-clock budget anywhere).
"""

from __future__ import annotations

import gc
import math
import random
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any

import pytest

Row = tuple[str, float, Any]

SHORT, LONG = 10_000, 200_000  # rows of the two streams whose peak memory is compared
MEMORY_K = 50
GROWTH = 3  # the long stream's peak may be at most this many times the short one's (plus SLACK)
SLACK = 64 * 1024  # bytes: allocator noise (a dict resize, the generator's frame)
LIST_SHARE = 10  # ...and below a tenth of what a list of the long stream's rows takes
REPEATS = 2  # memory is measured again before a check fails on it


def full_sort(rows: Iterable[Row], k: int) -> list[Row]:
    """What top_k must return, computed the slow, obvious way."""
    best: dict[str, tuple[float, Any]] = {}
    for card, score, item in rows:
        if card not in best or score > best[card][0]:
            best[card] = (score, item)
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return [(card, score, item) for card, (score, item) in ranked[:k]]


def plain(result: Any) -> list[Row]:
    assert isinstance(result, list), f"expected a list, got {type(result).__name__}"
    return [(r[0], r[1], r[2]) for r in result]


class Once:
    """A stream that can be iterated once, and fails loudly on a second pass."""

    def __init__(self, rows: Iterable[Row]) -> None:
        self._rows = iter(rows)
        self.passes = 0
        self.read = 0

    def __iter__(self) -> Iterator[Row]:
        self.passes += 1
        assert self.passes == 1, (
            "expected the stream read once, got a second pass over it (a log of 10^9 rows cannot be "
            "read twice, and a generator gives nothing the second time)"
        )
        for row in self._rows:
            self.read += 1
            yield row


def untouchable() -> Iterator[Row]:
    """A stream that must not be read at all."""
    raise AssertionError("expected the stream not to be read when k is refused, got it read")
    yield ("never", 0.0, None)


def log(seed: int) -> tuple[list[Row], int]:
    """A generated log: cards of several id lengths, scores with many ties, and k."""
    rng = random.Random(seed)
    cards = [f"card-{rng.randrange(10 ** rng.randint(1, 4))}" for _ in range(rng.randint(1, 40))]
    ties = rng.random() < 0.5
    rows = []
    for i in range(rng.randint(1, 300)):
        score = round(rng.random(), 1) if ties else rng.random()
        rows.append((rng.choice(cards), score, f"txn-{seed}-{i}"))
    return rows, rng.randint(1, 45)


# ---------------------------------------------------------------- what the answer is
def test_matches_a_full_sort(impl: ModuleType) -> None:
    """the K riskiest cards match a full sort of the stream, over 300 generated logs with ties

    Each card's highest score, sorted by score descending and card id ascending, cut at K: that
    is the answer a full sort gives, in O(n log n) time and O(cards) memory. Yours must be the
    same list, read from a heap of K.
    """
    for seed in range(300):
        rows, k = log(seed)
        got = plain(impl.top_k(iter(rows), k))
        want = full_sort(rows, k)
        assert got == want, f"expected {want} (seed {seed}, k={k}, {len(rows)} rows), got {got}"


def test_one_place_per_card(impl: ModuleType) -> None:
    """a card with many risky transactions takes one place, with its highest score and that transaction

    K distinct cards: a dict of the cards in the heap tells you a card is already there; then
    only a higher score changes its entry (score and item), and no second entry is made.
    """
    rows = [
        ("card-7", 0.91, "t1"),
        ("card-7", 0.99, "t2"),
        ("card-3", 0.50, "t3"),
        ("card-7", 0.95, "t4"),
        ("card-8", 0.60, "t5"),
        ("card-7", 0.97, "t6"),
    ]
    got = impl.top_k(iter(rows), 3)
    want = [("card-7", 0.99, "t2"), ("card-8", 0.60, "t5"), ("card-3", 0.50, "t3")]
    assert plain(got) == want, f"expected {want}, got {plain(got)}"
    first = got[0]
    assert (first.key, first.score, first.item) == want[0], (
        f"expected Ranked results (.key, .score, .item) = {want[0]}, got {first!r}"
    )


def test_ties_broken_by_card_id(impl: ModuleType) -> None:
    """equal scores rank the smaller card id first, whatever order the rows arrive in

    In a min-heap the root is the entry to evict: the lowest score and, among equal scores, the
    *largest* card id. Strings cannot be negated: wrap the id in a small class whose __lt__ is
    reversed (and mind ids of different lengths: "card-1" ranks before "card-10").
    """
    cards = ["card-1", "card-10", "card-2", "card-100", "card-11", "card-02", "card-"]
    rows = [(card, 0.5, f"t-{card}") for card in cards] + [("card-9", 0.8, "t-9"), ("card-8", 0.1, "t-8")]
    for k in (1, 3, 5, 8, 20):
        want = full_sort(rows, k)
        for order in range(20):
            shuffled = random.Random(order).sample(rows, len(rows))
            got = plain(impl.top_k(iter(shuffled), k))
            assert got == want, f"expected {want} (k={k}, rows in order {shuffled}), got {got}"


def test_first_row_of_a_tie_kept(impl: ModuleType) -> None:
    """a card that reaches its highest score twice keeps the first transaction that reached it

    Replace a card's entry only for a strictly higher score: the review queue then shows the
    transaction that first made the card that risky, the same one on every run.
    """
    rows = [("card-4", 0.9, "first"), ("card-5", 0.4, "other"), ("card-4", 0.9, "second")]
    got = plain(impl.top_k(iter(rows), 2))
    want = [("card-4", 0.9, "first"), ("card-5", 0.4, "other")]
    assert got == want, f"expected {want}, got {got}"


def test_evicted_card_comes_back(impl: ModuleType) -> None:
    """a card pushed out of the top K comes back when it gets riskier

    Keep no memory of evicted cards (that is O(cards) again): when it comes back, it competes
    with its new score like any new card. Its old scores could not have won: the K-th best score
    only rises.
    """
    rows = [
        ("card-a", 0.5, "t1"),
        ("card-b", 0.6, "t2"),
        ("card-c", 0.7, "t3"),  # card-a out
        ("card-a", 0.55, "t4"),  # still not enough
        ("card-a", 0.9, "t5"),  # back in, card-b out
    ]
    got = plain(impl.top_k(iter(rows), 2))
    want = [("card-a", 0.9, "t5"), ("card-c", 0.7, "t3")]
    assert got == want, f"expected {want}, got {got}"


def test_k_larger_than_the_cards(impl: ModuleType) -> None:
    """k larger than the number of cards returns every card once, riskiest first"""
    rows = [("c", 0.2, "t1"), ("a", 0.7, "t2"), ("b", 0.7, "t3"), ("c", 0.3, "t4")]
    got = plain(impl.top_k(iter(rows), 100))
    want = [("a", 0.7, "t2"), ("b", 0.7, "t3"), ("c", 0.3, "t4")]
    assert got == want, f"expected {want}, got {got}"


def test_empty_stream(impl: ModuleType) -> None:
    """an empty stream gives an empty list (a quiet window is not an error)"""
    got = impl.top_k(iter([]), 5)
    assert got == [], f"expected [], got {got!r}"


def test_k_refused(impl: ModuleType) -> None:
    """k of 0 or less is refused with ValueError, before the stream is read

    A heap of size 0 has no root to compare with, and "the top -3" means nothing: the caller
    made a mistake; say so at once (TopK(k) too), without reading a billion rows first.
    """
    for k in (0, -1, -20):
        with pytest.raises(ValueError):
            impl.top_k(untouchable(), k)
        with pytest.raises(ValueError):
            impl.TopK(k)


def test_nan_refused(impl: ModuleType) -> None:
    """a NaN score is refused with ValueError, not ranked

    NaN compares False with everything, so a NaN at the heap's root is never evicted and
    silently corrupts the order. A model never returns one: a bug upstream must not hide here.
    """
    best = impl.TopK(3)
    best.push("card-1", 0.4, "t1")
    with pytest.raises(ValueError):
        best.push("card-2", math.nan, "t2")
    with pytest.raises(ValueError):
        impl.top_k(iter([("card-1", 0.4, "t1"), ("card-2", math.nan, "t2")]), 3)


# ---------------------------------------------------------------- a stream, not a list
def test_stream_read_once(impl: ModuleType) -> None:
    """the stream is read once, as an iterator: no len(), no second pass, every row consumed"""
    rows, k = log(7)
    stream = Once(rows)
    got = plain(impl.top_k(stream, k))
    assert got == full_sort(rows, k), f"expected {full_sort(rows, k)}, got {got}"
    assert stream.read == len(rows), f"expected all {len(rows)} rows read, got {stream.read}"


def test_topk_mid_stream(impl: ModuleType) -> None:
    """TopK.result() is right at every point of a stream, and pushing goes on after it

    result() sorts a copy (sorted(...) of the K entries): popping the heap to read it would empty
    the queue that the next rows must be compared with.
    """
    for seed in range(40):
        rows, k = log(1000 + seed)
        best = impl.TopK(k)
        for i, (card, score, item) in enumerate(rows, 1):
            best.push(card, score, item)
            if i % 5 == 0 or i == len(rows):
                want = full_sort(rows[:i], k)
                got = plain(best.result())
                assert got == want, f"expected {want} after {i} rows (seed {1000 + seed}, k={k}), got {got}"
                again = plain(best.result())
                assert again == got, f"expected result() twice to agree, got {got} then {again}"


# ---------------------------------------------------------------- memory
def many_cards(n: int) -> Iterator[Row]:
    """Every row a new card (the worst case for per-card state): 200,000 cards in 200,000 rows."""
    rng = random.Random(n)
    for i in range(n):
        yield f"card-{i:08d}", rng.random(), f"txn-{i:08d}"


def rising_cards(n: int) -> Iterator[Row]:
    """The K riskiest cards keep getting riskier, in turn: every row updates a card in the heap."""
    for i in range(n):
        yield f"card-{i % MEMORY_K:04d}", i / n, f"txn-{i:08d}"


def peak(run: Callable[[], Any]) -> int:
    """The peak traced allocation of one `run()`, in bytes."""
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def bounded(impl: ModuleType, stream: Callable[[int], Iterator[Row]]) -> None:
    # Generous on both sides: the short stream's highest of REPEATS peaks, the long stream's
    # lowest (measured again only when over: a resize or a collection that peaks in one run is
    # not the code's).
    short = max(peak(lambda: impl.top_k(stream(SHORT), MEMORY_K)) for _ in range(REPEATS))
    limit = GROWTH * short + SLACK
    long = peak(lambda: impl.top_k(stream(LONG), MEMORY_K))
    for _ in range(REPEATS - 1):
        if long <= limit:
            break
        long = min(long, peak(lambda: impl.top_k(stream(LONG), MEMORY_K)))
    as_list = peak(lambda: list(stream(SHORT))) * (LONG // SHORT)  # what a list of LONG rows takes
    assert long <= limit, (
        f"expected the peak memory for {LONG:,} rows within {GROWTH}x that for {SHORT:,} rows "
        f"({short / 1024:,.0f} KiB), got {long / 1024:,.0f} KiB: something grows with the stream"
    )
    assert long * LIST_SHARE < as_list, (
        f"expected a peak far below a list of the {LONG:,} rows ({as_list / 1024:,.0f} KiB), "
        f"got {long / 1024:,.0f} KiB"
    )


def test_memory_bounded_with_many_cards(impl: ModuleType) -> None:
    """memory stays the same for 10,000 and 200,000 rows of distinct cards: O(K), not O(cards)

    Keep state only for the K cards in the heap: a dict of every card seen (or a set of the
    evicted ones) grows with the number of cards, which is the size of the log.
    """
    bounded(impl, many_cards)


def test_memory_bounded_when_cards_get_riskier(impl: ModuleType) -> None:
    """memory stays the same when the riskiest cards keep getting riskier: no stale entries pile up

    Updating a card already in the heap: either replace its entry in place and restore the heap
    (heapify, O(K)), or push a new entry and skip the old one later (lazy deletion), dropping the
    stale entries when they reach the root and rebuilding once the heap holds 2K. A stale entry
    never dropped is a leak of one tuple per row.
    """
    bounded(impl, rising_cards)
