"""Lab 6, exercise `top-k`: the K riskiest cards of a stream, in memory independent of its length.

    make lab-6        grade it          make hint-6      one more hint
    Reference: reference/mlops_lab/store/topk.py     Docs: docs/labs/lab-6-coding.md

The fraud review queue wants "the K riskiest cards of the last day" from the prediction log,
which is far bigger than memory on a busy service. `mlops-lab store top-risk` streams the log
out of the store a page at a time (Store.iter_predictions) and calls your `top_k` on it
(`--impl exercises` runs yours). You write:

  TopK(k)                    the K best so far: push(key, score, item) one row at a time,
                             result() the answer at any point
  top_k(rows, k)             the answer for a whole stream of (key, score, item) triples

"The K riskiest cards" means K *distinct* keys ranked by their highest score in the stream,
ties broken by key ascending; each comes with the item (the log row) of its highest score, the
first such row when a key reaches that score twice. In O(K) memory and O(n log K) time.

What they work with:

    Ranked(key, score, item)     one place of the answer (a NamedTuple)
    heapq.heappush(heap, entry), heapq.heappop(heap), heapq.heapreplace(heap, entry),
    heapq.heapify(heap)          a min-heap in a list: heap[0] is the smallest entry
    tuples compare item by item: (0.5, a) < (0.5, b) compares a < b only when the scores tie
    math.isnan(x)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlops_lab.store.topk import Ranked


class TopK:
    """The K riskiest distinct keys of what was pushed so far."""

    def __init__(self, k: int) -> None:
        # TODO(lab-6): set up the state of a bounded top-K.
        #  - k must be an int of at least 1: anything else raises ValueError (a heap of 0 has no
        #    root to compare with, and "the top -3" is the caller's mistake).
        #  - Keep a min-heap (a list for heapq) whose root is the K-th best entry, i.e. the one to
        #    evict next, and a dict of the keys currently in it (their best score and its item).
        #    Nothing else: no state per key outside the heap.
        raise NotImplementedError("TODO(lab-6): a heap of K and the keys in it")

    def push(self, key: str, score: float, item: Any = None) -> None:
        """Account for one scored row of `key`."""
        # TODO(lab-6): one row into the top K.
        #  - A NaN score raises ValueError (NaN compares False with everything: it would sit in
        #    the heap for ever).
        #  - `key` already in the heap: only a strictly higher score changes it (score and item);
        #    it must not get a second place. Either update its entry and restore the heap
        #    (heapq.heapify), or push a new entry and skip the old one later (lazy deletion), but
        #    then drop stale entries so that the heap never grows with the stream.
        #  - Fewer than k keys held: add it.
        #  - Otherwise compare with the root (the K-th best): a higher score, or an equal score
        #    and a smaller key, replaces it (the evicted key leaves the dict too). Anything
        #    else costs one comparison and is forgotten.
        #  The heap orders entries by score and, for equal scores, must put the *largest* key at
        #  the root. Strings cannot be negated: wrap the key in a small class whose __lt__ is
        #  reversed.
        #  Think about: a key evicted earlier comes back with a higher score. Why is it safe to
        #  have forgotten its earlier scores? (What does the root's score do over time?)
        raise NotImplementedError("TODO(lab-6): push one row into the top K")

    def result(self) -> list[Ranked]:
        """The answer so far, riskiest first; pushing may go on after it."""
        # TODO(lab-6): the keys held, as Ranked(key, score, item), sorted by score descending and
        #  key ascending. Sort a copy: popping the heap would empty the queue the next rows are
        #  compared with.
        raise NotImplementedError("TODO(lab-6): the K best, riskiest first")


def top_k(rows: Iterable[tuple[str, float, Any]], k: int) -> list[Ranked]:
    """The `k` riskiest distinct keys of `rows` ((key, score, item) triples), riskiest first."""
    # TODO(lab-6): one pass over `rows` through a TopK(k).
    #  - Refuse k < 1 with ValueError before reading any row (TopK(k) does it if you build it
    #    first).
    #  - `rows` is a stream: iterate it once, never len() it, never make a list of it (a day
    #    of the log does not fit in memory).
    #  Think about: what does this cost in time and memory for n rows, and what would a full
    #  sort cost?
    raise NotImplementedError("TODO(lab-6): the top K of a stream")
