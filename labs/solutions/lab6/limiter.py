"""A solution of lab 6's `rate-limiter` (exercises/lab6/limiter.py), and why it is written so.

A plain dict is enough for the recency order: since Python 3.7 it keeps insertion order, so
popping a client and inserting it again moves it to the end (O(1)), and `next(iter(d))` is the
client seen longest ago. Each bucket is a small mutable object updated in place.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab6/rate-limiter.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens  # may go below 0: the debt of a batch bigger than the burst
        self.stamp = stamp  # the clock when `tokens` was last brought up to date


class RateLimiter:
    """Token buckets per client id: `burst` tokens at most, refilled at `rate_per_s`."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        max_clients: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate_per_s > 0:  # also refuses NaN
            raise ValueError(f"rate_per_s must be > 0, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1 (one request at least), got {burst}")
        if max_clients < 1:
            raise ValueError(f"max_clients must be >= 1, got {max_clients}")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}  # insertion order = least recently seen first
        self._lock = threading.Lock()

    def acquire(self, client_id: str, cost: float = 1) -> float:
        """Take `cost` tokens from the client's bucket: 0.0 when it may go ahead, else the seconds
        until its bucket holds enough (nothing is taken then)."""
        if cost < 0:
            raise ValueError(f"cost must be >= 0, got {cost}")
        with self._lock:
            now = self.clock()
            bucket = self._buckets.pop(client_id, None)  # re-inserted below: now the most recent
            if bucket is None:
                # New (or forgotten long ago): a full bucket, as if it had been idle forever.
                bucket = _Bucket(self.burst, now)
            else:
                # Lazy refill: what accrued since its last request, capped at the burst. No timer
                # walks the buckets, so an idle client costs nothing until it comes back.
                accrued = (now - bucket.stamp) * self.rate_per_s
                bucket.tokens = min(self.burst, bucket.tokens + max(0.0, accrued))
                bucket.stamp = now
            self._buckets[client_id] = bucket
            if len(self._buckets) > self.max_clients:
                # Forget the client seen longest ago. A flooder is always the most recent, so it
                # keeps its empty bucket; the forgotten one comes back with a full bucket, which
                # is what it would almost surely have had after being idle that long.
                del self._buckets[next(iter(self._buckets))]
            # A batch bigger than the burst cannot wait for `cost` tokens (never there): it waits
            # for a full bucket, then takes all of it and more (a debt repaid before anything else).
            needed = min(cost, self.burst)
            if bucket.tokens >= needed:
                bucket.tokens -= cost
                return 0.0
            # Refused: nothing taken. The tokens missing at rate_per_s is how long to wait.
            return (needed - bucket.tokens) / self.rate_per_s

    def __len__(self) -> int:
        """How many clients have a bucket (at most max_clients)."""
        return len(self._buckets)
