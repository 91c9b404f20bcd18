"""An LRU cache bounded by item count and by total bytes: the model holder's last loaded versions.

    python -m mlops_lab.serving.cache        # watch the eviction order on a 3-item, 100-byte cache

The model server keeps the versions it served last in an `LRUCache` (the holder's loader,
`mlops_lab.serving.holder.CachedLoader`): a rollback to one of them is a swap in memory, not a
registry download, a deserialisation and a warm-up. Bounded twice, because a count alone does
not bound memory (one version may be ten times bigger than another) and bytes alone would let
thousands of tiny entries pile up: `model_cache_versions` and `model_cache_max_mb` (settings).

- get and put are O(1): an OrderedDict is a hash map whose entries also form a doubly linked
  list, so "move to the most recent end" and "drop the least recent" are pointer moves.
- `get` makes an entry the most recent; `put` of an existing key replaces it (and its size).
- An entry bigger than the byte bound alone is not kept (evicting everything would not make it
  fit); `put` returns False and an older value under that key is dropped, never served stale.
- One lock around each operation: the holder's polling thread and /admin/reload may load at
  once. The size is measured before taking the lock (pickling a model is not free).

`mlops-lab serve --impl exercises` serves with lab 6's `lru-cache` exercise in its place.
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CacheStats:
    """Counts since the cache was made, and what it holds now."""

    hits: int
    misses: int
    evictions: int  # entries dropped to make room (least recently used first)
    items: int
    bytes: int


def pickled_size(value: Any) -> int:
    """The default size of a value: the length of its pickle (roughly what its data weighs)."""
    return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


class LRUCache:
    """At most `max_items` entries and `max_bytes` bytes (None: no byte bound); the least
    recently used entries are evicted first. Sizes are given to `put`, or measured by `size_of`."""

    def __init__(
        self,
        max_items: int,
        max_bytes: int | None = None,
        size_of: Callable[[Any], int] = pickled_size,
    ) -> None:
        if max_items < 0 or (max_bytes is not None and max_bytes < 0):
            raise ValueError(f"bounds must be >= 0, got max_items={max_items}, max_bytes={max_bytes}")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.size_of = size_of
        # key -> (value, size), least recently used first: the linked list inside the OrderedDict
        # gives O(1) move_to_end and popitem(last=False).
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._hits = self._misses = self._evictions = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value under `key` (now the most recently used), or `default`."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._misses += 1
                return default
            self._entries.move_to_end(key)
            self._hits += 1
            return entry[0]

    def put(self, key: Hashable, value: Any, size: int | None = None) -> bool:
        """Keep `value` under `key` as the most recent entry, evicting the least recently used
        until both bounds hold. False when it was not kept (bigger than max_bytes alone)."""
        size = self.size_of(value) if size is None else size
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        with self._lock:
            old = self._entries.pop(key, None)  # an update replaces the value and its size
            if old is not None:
                self._bytes -= old[1]
            if self.max_items == 0 or (self.max_bytes is not None and size > self.max_bytes):
                return False  # it could never fit: keep what is there rather than empty the cache
            self._entries[key] = (value, size)
            self._bytes += size
            while len(self._entries) > self.max_items or (
                self.max_bytes is not None and self._bytes > self.max_bytes
            ):
                _, (_, freed) = self._entries.popitem(last=False)  # the least recently used
                self._bytes -= freed
                self._evictions += 1
            return True

    def pop(self, key: Hashable, default: Any = None) -> Any:
        """Remove `key` and return its value (or `default`); not an eviction."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                return default
            self._bytes -= entry[1]
            return entry[0]

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, self._evictions, len(self._entries), self._bytes)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether `key` is cached; neither a use (no recency change) nor counted as a hit or miss."""
        return key in self._entries


def _main() -> None:
    cache = LRUCache(max_items=3, max_bytes=100)
    for key, size in (("v1", 40), ("v2", 30), ("v3", 20)):
        cache.put(key, f"model {key}", size=size)
    cache.get("v1")  # v1 is now the most recent: v2 is next to go
    cache.put("v4", "model v4", size=20)  # 4 items > 3: evicts v2
    print("after v4:", [k for k in ("v1", "v2", "v3", "v4") if k in cache])
    cache.put("v5", "model v5", size=50)  # 130 bytes > 100: evicts v3, then v1
    print("after v5 (50 bytes):", [k for k in ("v1", "v2", "v3", "v4", "v5") if k in cache])
    print("a 101-byte entry kept:", cache.put("huge", "model huge", size=101))
    print(cache.stats())


if __name__ == "__main__":
    _main()
