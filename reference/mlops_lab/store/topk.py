"""The K riskiest keys of a stream of scores, in memory independent of the stream's length.

    python -m mlops_lab.store.topk [K] [SINCE]     # the K riskiest predictions of the store
    mlops-lab store top-risk --k 20 --since 2026-12-01T00:00:00+00:00 [--until ...] [--variant stable]

A fraud review queue wants "the K riskiest cards of the last day" from the prediction log, which
is far bigger than memory on a busy service. `top_k` reads the log once, as a stream, and keeps
only K keys:

- "The K riskiest" means K *distinct* keys ranked by their highest score in the stream: a card
  with a hundred risky transactions takes one place, not a hundred. Each result carries the item
  (the log row) of the key's highest score; of two rows with that same score, the first seen.
- Ties are broken by key, ascending ("card-0012" before "card-0450"), so the answer does not
  depend on the order the rows arrived in (two servers' rows interleave differently each day).
- Memory O(K): a min-heap of the K best keys, its root the K-th best (the score to beat), and a
  dict of the keys in it. No per-key state for keys outside the heap, and none is needed: the
  K-th best score only rises, so a key once evicted can only come back with a score above
  anything it had before; its earlier scores could not have won. The answer is exact.
- Time O(n log K): a row below the root is one comparison (most of a fraud log); a row that
  enters costs one heap replace; a key in the heap that gets riskier pushes a new entry and
  leaves the old one stale (lazy deletion). Stale entries are dropped when they reach the root
  and the heap is rebuilt from the dict when it holds K stale ones: O(K) every K updates, so
  the heap always holds fewer than 2K entries (without that, one card whose score keeps rising
  grows the heap with the stream).

The store side (`Store.iter_predictions`) reads the log a page at a time, so the whole stream is
in bounded memory end to end. The prediction log does not record the card id (the request's
`card_id` is used for sticky routing and never logged), so `mlops-lab store top-risk` ranks by
the key the log has: the transaction, i.e. the request id, where a shadow prediction
(`<id>:shadow`, the canary model scoring the same request) is the same transaction and takes no
second place. The function is keyed, so a logged card id would make it rank cards with a
one-line change in the command.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple


class Ranked(NamedTuple):
    """One place of the answer: the key, its highest score, and the item that carried it."""

    key: str
    score: float
    item: Any


@dataclass(frozen=True, slots=True)
class _Descending:
    """A key in reverse order: in the min-heap, of two equal scores the *larger* key must sit
    nearer the root (it is the one to evict first, since ties rank the smaller key higher).
    A wrapper, not a negation: strings cannot be negated, and tricks like negated code points
    get prefixes wrong ("ab" must rank before "abc")."""

    key: str

    def __lt__(self, other: _Descending) -> bool:
        return self.key > other.key


_Entry = tuple[float, _Descending, Any]  # (score, key reversed, item): scores unique per key in the heap


class TopK:
    """The K riskiest distinct keys of what was pushed so far (see the module's docstring)."""

    def __init__(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k = k
        self._heap: list[_Entry] = []
        self._live: dict[str, tuple[float, Any]] = {}  # the keys in the answer: (best score, its item)

    def push(self, key: str, score: float, item: Any = None) -> None:
        """Account for one scored row of `key` (O(1) below the K-th best, O(log K) amortized else)."""
        if math.isnan(score):
            # NaN compares False with everything: it would sit at the root for ever and corrupt
            # the heap's order. A model never returns one; a bug upstream must not hide here.
            raise ValueError(f"score of {key!r} is NaN")
        held = self._live.get(key)
        if held is not None:
            if score > held[0]:  # riskier than before; an equal score keeps the first row's item
                self._enter(key, score, item)  # its old entry is now stale
            return
        if len(self._live) < self.k:
            self._enter(key, score, item)
            return
        self._drop_stale_root()
        low_score, low_key, _ = self._heap[0]
        # Better than the K-th best: a higher score, or the same score and a smaller key.
        if score > low_score or (score == low_score and key < low_key.key):
            heapq.heapreplace(self._heap, (score, _Descending(key), item))
            del self._live[low_key.key]
            self._live[key] = (score, item)

    def result(self) -> list[Ranked]:
        """The answer so far, riskiest first, ties by key ascending; pushing may go on after it."""
        ranked = sorted(self._live.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return [Ranked(key, score, item) for key, (score, item) in ranked]

    def _enter(self, key: str, score: float, item: Any) -> None:
        self._live[key] = (score, item)
        heapq.heappush(self._heap, (score, _Descending(key), item))
        if len(self._heap) >= 2 * self.k:  # at least K stale entries (at most K are live): drop them
            self._rebuild()

    def _drop_stale_root(self) -> None:
        # An entry is live only if its score is still the key's best (scores of a key only rise,
        # so an older entry of that key has a lower score).
        while self._heap:
            score, key, _ = self._heap[0]
            held = self._live.get(key.key)
            if held is not None and held[0] == score:
                return
            heapq.heappop(self._heap)

    def _rebuild(self) -> None:
        self._heap = [(score, _Descending(key), item) for key, (score, item) in self._live.items()]
        heapq.heapify(self._heap)


def top_k(rows: Iterable[tuple[str, float, Any]], k: int) -> list[Ranked]:
    """The `k` riskiest distinct keys of `rows` ((key, score, item) triples), riskiest first,
    ties by key ascending; `rows` is read once, as a stream. ValueError for k < 1 (before
    reading anything) and for a NaN score."""
    best = TopK(k)
    for key, score, item in rows:
        best.push(key, score, item)
    return best.result()


def _main() -> None:
    import sys
    from datetime import datetime

    from mlops_lab.settings import get_settings
    from mlops_lab.store.db import Store

    k = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    since = datetime.fromisoformat(sys.argv[2]) if len(sys.argv) > 2 else None
    store = Store(get_settings().resolved_store_url)
    rows = ((r["request_id"], r["score"], r) for r in store.iter_predictions(since))
    for place, (key, score, row) in enumerate(top_k(rows, k), 1):
        when = f"{row['ts']:%Y-%m-%d %H:%M:%S}"
        print(f"{place:3}  {score:.4f}  {key}  {row['variant']}  v{row['model_version']}  {when}")


if __name__ == "__main__":
    _main()
