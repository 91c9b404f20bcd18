"""Lab 6, exercise `lru-cache`: an LRU cache bounded by count and by bytes, O(1), thread-safe.

    make lab-6        grade it          make hint-6      one more hint
    Reference: reference/mlops_lab/serving/cache.py      Docs: docs/labs/lab-6-coding.md
    Run yours: mlops-lab serve --impl exercises           (the model holder then caches with it)

The model server keeps the versions it served last in memory, so that a rollback (@champion
moved back to a version it served minutes ago) is a swap, not a download, a deserialisation and
a warm-up. The holder's loader (`mlops_lab.serving.holder.CachedLoader`) resolves the alias to a
version, asks `cache.get((model name, version))`, and on a miss loads it from the registry and
calls `cache.put(key, model, size)`. /admin/reload calls `cache.pop(key)` on the served version
to read it from the registry again. You write the cache:

  LRUCache(max_items, max_bytes=None, size_of=pickled_size)
      get(key, default=None)      the value, now the most recently used; else default
      put(key, value, size=None)  keep it (True), evicting the least recently used entries
                                  until both bounds hold; False when it can never fit
      pop(key, default=None)      remove it (not an eviction)
      stats()                     CacheStats(hits, misses, evictions, items, bytes)
      len(cache), key in cache

What they work with:

    CacheStats(hits, misses, evictions, items, bytes)   a frozen dataclass: what stats() returns
    pickled_size(value) -> int       the default size_of: the length of the value's pickle
    collections.OrderedDict          a dict that remembers order: od.move_to_end(key) and
                                     od.popitem(last=False) (the oldest) are O(1)
                                     (or: a dict of nodes + your own doubly linked list)
    threading.Lock                   `with self._lock:` around what must not interleave

The server is settings.model_cache_versions (3) items and settings.model_cache_max_mb (512) MB.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from mlops_lab.serving.cache import CacheStats, pickled_size


class LRUCache:
    """At most `max_items` entries and `max_bytes` bytes (None: no byte bound); the least
    recently used entries are evicted first. Sizes are given to `put`, or measured by `size_of`."""

    def __init__(
        self,
        max_items: int,
        max_bytes: int | None = None,
        size_of: Callable[[Any], int] = pickled_size,
    ) -> None:
        # TODO(lab-6): the cache's state.
        #  - Keep the bounds and size_of (max_items 0 is allowed: a cache that keeps nothing, the
        #    setting that turns caching off). A negative bound is a ValueError.
        #  - Each entry needs its value and its size (an update or an eviction must know how
        #    many bytes it frees), in an order from least to most recently used that you can
        #    change in O(1): an OrderedDict, or a dict of nodes on a doubly linked list.
        #  - The total of the sizes, kept as you go (summing on every put is O(n)).
        #  - Counters for stats(), and a lock: the polling thread and /admin/reload load at once.
        raise NotImplementedError("TODO(lab-6): the cache's state")

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value under `key` (now the most recently used), or `default`."""
        # TODO(lab-6): a hit makes the entry the most recently used (it is evicted last) and
        #  counts a hit; a miss counts a miss and returns default. A stored value may be falsy
        #  (0, "", None is never stored by the server but 0 may be): test presence, not truth.
        raise NotImplementedError("TODO(lab-6): get, and refresh the recency")

    def put(self, key: Hashable, value: Any, size: int | None = None) -> bool:
        """Keep `value` under `key` as the most recent entry, evicting the least recently used
        until both bounds hold. False when it was not kept (bigger than max_bytes alone)."""
        # TODO(lab-6): in O(1) (amortised: one put may evict several entries, each once).
        #  - size None: measure it with self's size_of (before taking the lock: it may be slow).
        #    A negative size is a ValueError.
        #  - A key already there is replaced: its old size leaves the total, and it becomes the
        #    most recent.
        #  - An entry bigger than max_bytes alone (or any entry when max_items is 0) is not kept:
        #    return False, evict nothing else, and do not leave an older value under that key
        #    (it would be served as if it were the new one).
        #  - Otherwise add it as the most recent, then evict the least recently used entries
        #    while there are more than max_items or more than max_bytes bytes; count each eviction.
        #  Think about: why two bounds? A count alone does not bound memory when one version is
        #  ten times bigger than another; bytes alone let thousands of tiny entries pile up.
        raise NotImplementedError("TODO(lab-6): put, with eviction by count and by bytes")

    def pop(self, key: Hashable, default: Any = None) -> Any:
        """Remove `key` and return its value (or `default`); not an eviction."""
        # TODO(lab-6): remove the entry and its bytes from the total; not counted in stats.
        raise NotImplementedError("TODO(lab-6): pop")

    def stats(self) -> CacheStats:
        # TODO(lab-6): CacheStats(hits, misses, evictions, items now, bytes now).
        raise NotImplementedError("TODO(lab-6): stats")

    def __len__(self) -> int:
        # TODO(lab-6): how many entries the cache holds.
        raise NotImplementedError("TODO(lab-6): len")

    def __contains__(self, key: object) -> bool:
        """Whether `key` is cached; neither a use (no recency change) nor counted as a hit or miss."""
        # TODO(lab-6): a peek: `key in cache` must not change what is evicted next.
        raise NotImplementedError("TODO(lab-6): in")
