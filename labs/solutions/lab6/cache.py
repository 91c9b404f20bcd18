"""A solution of lab 6's `lru-cache` (exercises/lab6/cache.py), and why it is written so.

The interview answer by hand: a dict from key to node, and the nodes on a doubly linked list
between two sentinels (no None checks at the ends). Most recent at the front, least recent at
the back; every operation is a dict lookup plus a few pointer moves, O(1).

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab6/lru-cache.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from mlops_lab.serving.cache import CacheStats, pickled_size


class _Node:
    """One entry: where it is in the use order, and what it weighs."""

    __slots__ = ("key", "next", "prev", "size", "value")

    def __init__(self, key: Any = None, value: Any = None, size: int = 0) -> None:
        self.key, self.value, self.size = key, value, size
        self.prev: _Node = self
        self.next: _Node = self


class LRUCache:
    """At most `max_items` entries and `max_bytes` bytes (None: no byte bound); the least
    recently used entries are evicted first. Sizes are given to `put`, or measured by `size_of`."""

    def __init__(
        self,
        max_items: int,
        max_bytes: int | None = None,
        size_of: Callable[[Any], int] = pickled_size,
    ) -> None:
        if max_items < 0:
            raise ValueError(f"max_items must be >= 0, got {max_items}")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.size_of = size_of
        self._nodes: dict[Hashable, _Node] = {}
        # Sentinels: head.next is the most recently used, tail.prev the least. With them, link
        # and unlink never test for an empty list or an end.
        self._head, self._tail = _Node(), _Node()
        self._head.next, self._tail.prev = self._tail, self._head
        self._total = 0  # kept as we go: summing the sizes on every put would be O(n)
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        # One lock for the whole structure: a get moves pointers too, so readers need it as well.
        self._lock = threading.Lock()

    # -- the list
    def _unlink(self, node: _Node) -> None:
        node.prev.next = node.next
        node.next.prev = node.prev

    def _push_front(self, node: _Node) -> None:
        node.prev, node.next = self._head, self._head.next
        self._head.next.prev = node
        self._head.next = node

    def _remove(self, node: _Node) -> None:
        self._unlink(node)
        del self._nodes[node.key]
        self._total -= node.size

    def _over(self) -> bool:
        too_many = len(self._nodes) > self.max_items
        too_big = self.max_bytes is not None and self._total > self.max_bytes
        return too_many or too_big

    # -- the interface
    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value under `key` (now the most recently used), or `default`."""
        with self._lock:
            node = self._nodes.get(key)
            if node is None:  # a node, never a stored value: a cached 0 or "" is still a hit
                self._misses += 1
                return default
            self._hits += 1
            # Used now: to the front, so it is the last to be evicted.
            self._unlink(node)
            self._push_front(node)
            return node.value

    def put(self, key: Hashable, value: Any, size: int | None = None) -> bool:
        """Keep `value` under `key` as the most recent entry, evicting the least recently used
        until both bounds hold. False when it was not kept (bigger than max_bytes alone)."""
        if size is None:
            size = self.size_of(value)  # outside the lock: pickling a model takes a while
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        with self._lock:
            old = self._nodes.get(key)
            if old is not None:
                # An update: the old value goes whatever happens next, so a value that cannot be
                # kept never leaves the previous one to be served in its place.
                self._remove(old)
            fits = self.max_items > 0 and (self.max_bytes is None or size <= self.max_bytes)
            if not fits:
                return False
            node = _Node(key, value, size)
            self._nodes[key] = node
            self._push_front(node)
            self._total += size
            # Both bounds in one loop; the new node is at the front and fits alone, so the loop
            # stops before reaching it. Each entry is evicted once: amortised O(1) a put.
            while self._over():
                self._remove(self._tail.prev)
                self._evictions += 1
            return True

    def pop(self, key: Hashable, default: Any = None) -> Any:
        """Remove `key` and return its value (or `default`); not an eviction."""
        with self._lock:
            node = self._nodes.get(key)
            if node is None:
                return default
            self._remove(node)
            return node.value

    def stats(self) -> CacheStats:
        with self._lock:  # one consistent snapshot, not five numbers from five moments
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                items=len(self._nodes),
                bytes=self._total,
            )

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, key: object) -> bool:
        """Whether `key` is cached; neither a use (no recency change) nor counted as a hit or miss."""
        return key in self._nodes
