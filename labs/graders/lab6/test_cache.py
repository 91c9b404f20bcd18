"""Grader of lab 6 / lru-cache (exercises/lab6/cache.py): an LRU cache bounded by count and bytes.

The cache is graded through its public methods only. Thread safety is graded with real threads
and a tiny switch interval (so threads interleave between any two bytecodes, as they may on a
loaded server); O(1) by a ratio measured in the same run (a 100,000-entry cache against a
100-entry one, best of several rounds), never by a wall-clock budget. The last check plays the
model holder's loader (`mlops_lab.serving.holder.CachedLoader`, what the server runs) with your
cache and a registry played by functions that count the loads.
"""

from __future__ import annotations

import sys
import threading
import time
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from mlops_lab.labs.grading import TinyModel, loaded_model
from mlops_lab.serving.holder import CachedLoader
from mlops_lab.settings import Settings

THREADS, OPS_PER_THREAD, THREAD_ROUNDS = 8, 20_000, 5
SMALL, MEDIUM, LARGE = 100, 10_000, 100_000
ROUND_OPS, ROUNDS = 1_000, 5
SLOWER_AT_MOST = 20  # an O(1) cache is ~1-3x slower at 100,000 entries (memory); an O(n) one ~1,000x


def present(cache: Any, keys: str) -> str:
    """The keys among `keys` (one letter each) that the cache holds, e.g. "bcd"."""
    return "".join(k for k in keys if k in cache)


def stats_of(cache: Any) -> tuple[int, int, int, int, int]:
    s = cache.stats()
    return (s.hits, s.misses, s.evictions, s.items, s.bytes)


# ---------------------------------------------------------------- the LRU order
def test_evicts_the_least_recently_used(impl: ModuleType) -> None:
    """a full cache evicts the least recently used entry, one per new entry

    Keep the entries in use order (an OrderedDict: put appends at the most recent end); when
    there are more than max_items, drop from the least recent end: od.popitem(last=False).
    """
    cache = impl.LRUCache(max_items=3)
    for key in "abc":
        assert cache.put(key, key.upper(), size=1) is True, f"expected put({key!r}) to return True"
    assert (len(cache), present(cache, "abc")) == (3, "abc"), (
        f"expected 3 entries a, b, c, got {len(cache)} entries: {present(cache, 'abc')!r}"
    )
    cache.put("d", "D", size=1)
    assert present(cache, "abcd") == "bcd", (
        f"expected a (the least recently used) evicted and b, c, d kept, got {present(cache, 'abcd')!r}"
    )
    cache.put("e", "E", size=1)
    assert present(cache, "abcde") == "cde", f"expected b evicted next, got {present(cache, 'abcde')!r}"
    assert cache.get("e") == "E" and cache.get("a") is None and cache.get("a", "none") == "none", (
        "expected get to return the value, None for a missing key, or the default given"
    )


def test_get_refreshes_recency(impl: ModuleType) -> None:
    """get makes an entry the most recently used: it is evicted last

    On a hit, move the entry to the most recent end (od.move_to_end(key)); an LRU without it is
    a FIFO, which evicts the version serving right now while it keeps an old one.
    """
    cache = impl.LRUCache(max_items=3)
    for key in "abc":
        cache.put(key, key.upper(), size=1)
    assert cache.get("a") == "A", f"expected get('a') == 'A', got {cache.get('a')!r}"
    cache.put("d", "D", size=1)
    assert present(cache, "abcd") == "acd", (
        f"expected b evicted (a was just read, so it is the most recent), got {present(cache, 'abcd')!r}"
    )
    cache.get("c")
    cache.put("e", "E", size=1)
    cache.put("f", "F", size=1)
    assert present(cache, "acdef") == "cef", (
        f"expected a and d evicted (c was read after them), got {present(cache, 'acdef')!r}"
    )


def test_falsy_values_are_values(impl: ModuleType) -> None:
    """a stored 0 or "" is returned by get, not mistaken for a miss

    Test presence (`key in self._entries`, or a sentinel default), not the truth of the value.
    """
    cache = impl.LRUCache(max_items=3)
    cache.put("zero", 0, size=1)
    cache.put("empty", "", size=1)
    got = (cache.get("zero", "missing"), cache.get("empty", "missing"))
    assert got == (0, ""), f"expected (0, '') back, got {got!r}"
    hits = cache.stats().hits
    assert hits == 2, f"expected both gets counted as hits, got {hits} hits"


def test_update_of_an_existing_key(impl: ModuleType) -> None:
    """put of a key already cached replaces its value and size, and makes it the most recent

    Remove the old entry first (its size leaves the total), then add the new one at the most
    recent end. An update is not an eviction, and the cache does not grow.
    """
    cache = impl.LRUCache(max_items=3, max_bytes=100)
    for key in "abc":
        cache.put(key, key.upper(), size=10)
    cache.put("a", "A2", size=50)
    assert (len(cache), cache.get("a"), cache.stats().bytes) == (3, "A2", 70), (
        f"expected 3 entries, a == 'A2' and 70 bytes (10 + 10 + 50), got {len(cache)} entries, "
        f"a == {cache.get('a')!r} and {cache.stats().bytes} bytes"
    )
    assert cache.stats().evictions == 0, f"expected no eviction for an update, got {cache.stats().evictions}"
    cache.put("d", "D", size=10)
    assert present(cache, "abcd") == "acd", (
        f"expected b evicted (a was updated, so it is recent), got {present(cache, 'abcd')!r}"
    )
    cache.put("a", "A3", size=5)
    assert cache.stats().bytes == 25, (
        f"expected 25 bytes after a shrank to 5 (5 + 10 + 10), got {cache.stats().bytes}"
    )


# ---------------------------------------------------------------- the bounds
def test_byte_bound(impl: ModuleType) -> None:
    """the byte bound evicts least recently used entries until the total fits, several if need be

    Keep the total as you go (+size on put, -size on every removal) and evict while total >
    max_bytes, as you do for the count: one big new version may push out several old ones.
    """
    cache = impl.LRUCache(max_items=10, max_bytes=100)
    for key, size in (("a", 40), ("b", 30), ("c", 20)):
        cache.put(key, key.upper(), size=size)
    cache.put("d", "D", size=10)
    assert (present(cache, "abcd"), cache.stats().bytes) == ("abcd", 100), (
        f"expected a, b, c, d kept at exactly 100 bytes (the bound is inclusive), got "
        f"{present(cache, 'abcd')!r} at {cache.stats().bytes} bytes"
    )
    cache.put("e", "E", size=75)
    assert (present(cache, "abcde"), cache.stats().bytes) == ("de", 85), (
        f"expected a, b, c evicted (least recent first) until it fits (85 bytes), got "
        f"{present(cache, 'abcde')!r} at {cache.stats().bytes} bytes"
    )
    assert cache.stats().evictions == 3, f"expected 3 evictions, got {cache.stats().evictions}"


def test_both_bounds_together(impl: ModuleType) -> None:
    """with both bounds, whichever is hit first evicts

    After adding, evict while len > max_items OR total > max_bytes (one loop, both tests).
    """
    cache = impl.LRUCache(max_items=2, max_bytes=1_000)
    for key in "abc":
        cache.put(key, key.upper(), size=1)
    assert present(cache, "abc") == "bc", (
        f"expected the count bound (2) to evict a, got {present(cache, 'abc')!r}"
    )
    cache.put("d", "D", size=1_000)
    assert present(cache, "bcd") == "d", (
        f"expected b evicted by the count, then c by bytes (1 + 1,000 > 1,000), got {present(cache, 'bcd')!r}"
    )


def test_size_function(impl: ModuleType) -> None:
    """without a size, put measures the value with size_of

    `size = self.size_of(value) if size is None else size`: the server gives a model's size,
    other callers let the cache measure it.
    """
    cache = impl.LRUCache(max_items=10, max_bytes=10, size_of=len)
    cache.put("a", "abcd")
    cache.put("b", "efghij")
    assert (present(cache, "ab"), cache.stats().bytes) == ("ab", 10), (
        f"expected a and b kept at 4 + 6 = 10 bytes (len of each value), got {present(cache, 'ab')!r} "
        f"at {cache.stats().bytes} bytes"
    )
    cache.put("c", "k")
    assert present(cache, "abc") == "bc", f"expected a evicted to fit c, got {present(cache, 'abc')!r}"
    cache.put("d", "xy", size=1)
    assert cache.stats().bytes == 8, (
        f"expected a given size (1) to win over size_of, got {cache.stats().bytes} bytes"
    )


def test_oversize_entry(impl: ModuleType) -> None:
    """an entry bigger than max_bytes alone is not kept (put returns False) and evicts nothing

    Evicting everything would not make it fit: check `size > max_bytes` before touching the
    others. If the key held an older value, drop it: it must not be served as the new one.
    """
    cache = impl.LRUCache(max_items=5, max_bytes=100)
    cache.put("a", "A", size=60)
    cache.put("b", "B", size=40)
    kept = cache.put("huge", "HUGE", size=101)
    assert kept is False, f"expected put of 101 bytes into a 100-byte cache to return False, got {kept!r}"
    assert (present(cache, "ab"), "huge" in cache, cache.stats().bytes) == ("ab", False, 100), (
        f"expected a and b kept (100 bytes) and no 'huge', got {present(cache, 'ab')!r}, "
        f"'huge' in cache: {'huge' in cache}, {cache.stats().bytes} bytes"
    )
    assert cache.stats().evictions == 0, f"expected nothing evicted for it, got {cache.stats().evictions}"
    cache.put("a", "A-too-big", size=150)
    assert (cache.get("a"), cache.stats().bytes) == (None, 40), (
        f"expected the old 'a' dropped when its update is too big (40 bytes left), got "
        f"{cache.get('a')!r} and {cache.stats().bytes} bytes"
    )


def test_zero_items_keeps_nothing(impl: ModuleType) -> None:
    """a cache of 0 items keeps nothing (model_cache_versions=0 turns caching off)

    put returns False at once and get always misses; a negative bound is a ValueError.
    """
    cache = impl.LRUCache(max_items=0)
    kept = cache.put("a", "A", size=1)
    assert (kept, len(cache), cache.get("a")) == (False, 0, None), (
        f"expected put -> False, 0 entries and a miss, got {kept!r}, {len(cache)} entries, {cache.get('a')!r}"
    )
    for bad in ({"max_items": -1}, {"max_items": 3, "max_bytes": -1}):
        with pytest.raises(ValueError):
            impl.LRUCache(**bad)


# ---------------------------------------------------------------- what the server also needs
def test_pop_and_stats(impl: ModuleType) -> None:
    """stats counts hits, misses and evictions; `in` is neither; pop frees an entry's bytes

    `in` is a peek: it neither refreshes recency nor counts. pop is a removal, not an eviction.
    """
    cache = impl.LRUCache(max_items=3, max_bytes=100)
    for key in "abc":
        cache.put(key, key.upper(), size=10)
    cache.get("a")
    cache.get("x")
    cache.get("y")
    assert "b" in cache and "x" not in cache
    cache.put("d", "D", size=10)  # b is the least recently used: `in` did not refresh it
    got = stats_of(cache)
    assert got == (1, 2, 1, 3, 30), (
        f"expected (hits, misses, evictions, items, bytes) == (1, 2, 1, 3, 30), got {got}"
    )
    assert present(cache, "abcd") == "acd", f"expected `in` not to refresh b, got {present(cache, 'abcd')!r}"
    assert cache.pop("c") == "C" and cache.pop("c", "gone") == "gone", "expected pop to return the value once"
    got = stats_of(cache)
    assert got[2:] == (1, 2, 20), f"expected pop to free 10 bytes and not count as eviction, got {got}"


def test_thread_safety(impl: ModuleType) -> None:
    """many threads doing get and put on a small cache: no error, and the bounds and byte total hold

    One lock around each operation's reads and writes: `self._bytes += size` is three steps, and
    two evictions at once may pop the same entry or miscount. (Measure size_of outside it.)
    """
    for _ in range(THREAD_ROUNDS):  # races are chances, not certainties: give them several
        problem = hammer(impl)
        assert problem is None, problem


def hammer(impl: ModuleType) -> str | None:
    """THREADS threads, two puts for each get, on a cache of 8 items and 40 bytes: the first
    broken invariant in words, or None."""
    cache = impl.LRUCache(max_items=8, max_bytes=40)
    size = {k: k % 5 + 1 for k in range(32)}
    errors: list[str] = []
    todo: list[NotImplementedError] = []
    gets = [0] * THREADS
    start = threading.Barrier(THREADS)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(OPS_PER_THREAD):
                key = (i * 7 + n * 13) % 32
                if i % 3 == 0:
                    value = cache.get(key)
                    gets[n] += 1
                    if value is not None and value != f"value-{key}":
                        errors.append(f"get({key}) returned {value!r}")
                else:
                    cache.put(key, f"value-{key}", size=size[key])
        except NotImplementedError as exc:
            todo.append(exc)
        except Exception as exc:
            errors.append(f"{exc.__class__.__name__}: {exc}")

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    try:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    if todo:
        raise todo[0]
    if errors:
        return f"expected no error in {THREADS} threads, got {len(errors)}, e.g. {errors[0]}"
    held = [k for k in range(32) if k in cache]
    s = cache.stats()
    expected = sum(size[k] for k in held)
    if len(held) > 8 or s.items != len(held):
        return f"expected at most 8 entries and stats().items == the {len(held)} held, got items={s.items}"
    if s.bytes != expected or s.bytes > 40:
        return (
            f"expected stats().bytes == the sizes of the entries held ({expected}, at most 40), got {s.bytes}"
        )
    if s.hits + s.misses != sum(gets):
        return f"expected hits + misses == the {sum(gets):,} gets, got {s.hits + s.misses:,} (lost updates)"
    return None


def test_constant_time(impl: ModuleType) -> None:
    """get and put are O(1): on a 100,000-entry cache they are about as fast as on a 100-entry one

    No scan of the entries per operation: no list.remove / index for recency, no min() over
    timestamps to find the victim, no sum() of sizes. A dict gives the entry; the order is a
    linked list (an OrderedDict's move_to_end and popitem(last=False)).
    """
    small = per_op_s(impl, SMALL)
    medium = per_op_s(impl, MEDIUM)  # before filling 100,000: an O(n) cache fails here in seconds
    assert medium / small <= SLOWER_AT_MOST, (
        f"expected get + put on 10,000 entries at most {SLOWER_AT_MOST}x slower than on 100, got "
        f"{medium / small:.0f}x ({medium * 1e6:.1f} vs {small * 1e6:.1f} µs a get + put)"
    )
    large = per_op_s(impl, LARGE)
    assert large / small <= SLOWER_AT_MOST, (
        f"expected get + put on 100,000 entries at most {SLOWER_AT_MOST}x slower than on 100, got "
        f"{large / small:.0f}x ({large * 1e6:.1f} vs {small * 1e6:.1f} µs a get + put)"
    )


def per_op_s(impl: ModuleType, n: int) -> float:
    """Seconds per (get of a recent key + put of a new key, which evicts) on a full cache of n
    entries of 1 byte, both bounds binding; the best of ROUNDS rounds."""
    cache = impl.LRUCache(max_items=n, max_bytes=n)
    for key in range(n):
        cache.put(key, key, size=1)
    best, next_key = float("inf"), n
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for i in range(ROUND_OPS):
            cache.get(next_key - 1 - i % (n // 4))
            cache.put(next_key, next_key, size=1)
            next_key += 1
        best = min(best, (time.perf_counter() - start) / ROUND_OPS)
    return best


# ---------------------------------------------------------------- in the system
def test_the_holder_rolls_back_from_the_cache(impl: ModuleType, tiny_model: TinyModel) -> None:
    """the server's loader with your cache: a rollback to a recent version loads nothing from the registry

    CachedLoader calls cache.get((model name, version)) and, on a miss, cache.put(key, model,
    size): get must return exactly what put stored.
    """
    loads: list[str] = []
    alias_at = {"v": "1"}

    def resolve(_settings: Settings, _alias: str) -> Any:
        return SimpleNamespace(version=alias_at["v"], run_id=f"run-{alias_at['v']}", tags={})

    def load(_settings: Settings, mv: Any, alias: str) -> Any:
        loads.append(str(mv.version))
        return loaded_model(tiny_model, str(mv.version), alias)

    loader = CachedLoader(impl.LRUCache(max_items=3, max_bytes=2**30), resolve=resolve, load=load)
    settings = Settings()
    first = loader(settings, "champion")
    alias_at["v"] = "2"
    loader(settings, "champion")
    alias_at["v"] = "1"  # the rollback
    back = loader(settings, "champion")
    assert loads == ["1", "2"], f"expected v1 and v2 loaded from the registry once each, got loads {loads}"
    assert (back.version, back.source, back.pipeline is first.pipeline) == ("1", "cache", True), (
        f"expected the rollback to v1 served from the cache (the same model object), got v{back.version} "
        f"from {back.source}"
    )
