"""A solution of lab 6's `top-k` (exercises/lab6/topk.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab6/top-k.toml applied to it (a check must fail on each).

The heap holds K entries, one per card, each a *list* [score, reversed key, item] so that a
card getting riskier can be updated in place; a dict maps each card in the heap to its entry.
Costs: a row below the K-th best is one comparison (most rows of a fraud log); a new card
entering is O(log K) (heapreplace); a card in the heap getting riskier is O(K) (heapify), which
is fine for a review queue's K of 20 to 100. (Lazy deletion makes that O(log K) too, at the
price of cleaning stale entries: the reference, mlops_lab.store.topk, does it that way.)
Memory: K entries and K dict slots, whatever the length of the stream or the number of cards.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from typing import Any

from mlops_lab.store.topk import Ranked


class _ReverseKey:
    """Orders keys backwards. The heap's root must be the entry to evict: lowest score and, of
    equal scores, the *largest* key (ties rank the smaller key higher)."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __lt__(self, other: _ReverseKey) -> bool:
        return self.key > other.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ReverseKey) and self.key == other.key


class TopK:
    """The K riskiest distinct keys of what was pushed so far."""

    def __init__(self, k: int) -> None:
        # bool is an int in Python: TopK(True) would quietly mean K=1.
        if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
            raise ValueError(f"k must be an integer of at least 1, got {k!r}")
        self.k = k
        self.heap: list[list[Any]] = []  # [score, _ReverseKey(key), item]; heap[0] = the K-th best
        self.entries: dict[str, list[Any]] = {}  # key -> its entry in self.heap (only those)

    def push(self, key: str, score: float, item: Any = None) -> None:
        """Account for one scored row of `key`."""
        if math.isnan(score):
            raise ValueError(f"NaN score for {key!r}: a NaN never compares, it would stick in the heap")
        entry = self.entries.get(key)
        if entry is not None:
            # One place per card: a riskier transaction updates the card's entry. Equal is not
            # riskier: the first transaction that reached the score stays (same answer every run).
            if score > entry[0]:
                entry[0] = score
                entry[2] = item
                heapq.heapify(self.heap)  # its score rose: it may belong further from the root
            return
        if len(self.heap) < self.k:
            entry = [score, _ReverseKey(key), item]
            self.entries[key] = entry
            heapq.heappush(self.heap, entry)
            return
        lowest = self.heap[0]
        # Does it beat the K-th best? A higher score, or the same score and a smaller key.
        if score > lowest[0] or (score == lowest[0] and key < lowest[1].key):
            # Forget the evicted card entirely. It is safe: the K-th best score never goes down,
            # so if that card comes back, only a score above everything it had can win again.
            del self.entries[lowest[1].key]
            entry = [score, _ReverseKey(key), item]
            self.entries[key] = entry
            heapq.heapreplace(self.heap, entry)
        # Otherwise: one comparison, nothing kept.

    def result(self) -> list[Ranked]:
        """The answer so far, riskiest first; pushing may go on after it."""
        # sorted() makes a sorted copy: the heap stays as it is for the next pushes.
        ordered = sorted(self.heap, key=lambda e: (-e[0], e[1].key))
        return [Ranked(e[1].key, e[0], e[2]) for e in ordered]


def top_k(rows: Iterable[tuple[str, float, Any]], k: int) -> list[Ranked]:
    """The `k` riskiest distinct keys of `rows` ((key, score, item) triples), riskiest first."""
    best = TopK(k)  # first: a bad k is refused before a single row is read
    # One pass, one row at a time: O(n log K) time (O(n) when few rows beat the K-th best),
    # O(K) memory. A full sort would be O(n log n) and hold the whole log.
    for key, score, item in rows:
        best.push(key, score, item)
    return best.result()
