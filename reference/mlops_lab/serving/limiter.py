"""A token bucket per client: the model server's rate limit in front of the predict routes.

    python -m mlops_lab.serving.limiter      # one client at 3x its rate for 2 s (a simulated clock)

Each client has a bucket of at most `burst` tokens that refills at `rate_per_s` tokens a
second; a request costs tokens (a batch costs its row count). With enough tokens it passes
(`acquire` returns 0.0), else it is refused and nothing is taken: `acquire` returns the
seconds until enough tokens will be there, which the server sends as Retry-After with a 429.

- A bucket is two numbers (tokens, time of the last refill) and is refilled lazily, when its
  client shows up: no timer, O(1) a request, and a new client starts with a full bucket.
- A cost above `burst` could never be paid at once: it passes when the bucket is full and
  leaves it in debt (negative tokens), so the client's average rate still holds.
- State is bounded: at most `max_clients` buckets, the least recently seen one evicted first
  (an OrderedDict: O(1)). An evicted client is a new one (full bucket); a client that floods is
  the most recently seen, so it is the last to be forgotten.
- `clock` is injectable (time.monotonic by default, which never jumps with the wall clock), so
  tests move time without sleeping.

The server (`mlops_lab.serving.app`) builds one from `rate_limit_per_s`, `rate_limit_burst` and
`rate_limit_max_clients` (settings; a rate of 0 turns the limiter off), and knows the client by
its X-Client-Id header, else its peer address. `mlops-lab serve --impl exercises` serves with
lab 6's `rate-limiter` exercise in its place.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """Token buckets per client id: `burst` tokens at most, refilled at `rate_per_s`."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        max_clients: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or max_clients < 1:
            raise ValueError(
                f"need rate_per_s > 0, burst >= 1, max_clients >= 1; got {rate_per_s}, {burst}, {max_clients}"
            )
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        # client -> [tokens, when they were counted], least recently seen first.
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()
        # The server calls acquire from its event loop only; the lock makes it safe from threads.
        self._lock = threading.Lock()

    def acquire(self, client_id: str, cost: float = 1) -> float:
        """Take `cost` tokens from the client's bucket: 0.0 when it may go ahead, else the seconds
        until its bucket holds enough (nothing is taken then)."""
        if cost < 0:
            raise ValueError(f"cost must be >= 0, got {cost}")
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(client_id)
            if bucket is None:
                bucket = self._buckets[client_id] = [float(self.burst), now]
                if len(self._buckets) > self.max_clients:
                    self._buckets.popitem(last=False)  # the least recently seen client
            else:
                self._buckets.move_to_end(client_id)
                # Refill for the time since it was last counted; max(0, ...): a clock that steps
                # back must not drain the bucket.
                elapsed = max(0.0, now - bucket[1])
                bucket[0] = min(float(self.burst), bucket[0] + elapsed * self.rate_per_s)
                bucket[1] = now
            need = min(cost, self.burst)  # more than a full bucket is never there at once
            if bucket[0] >= need:
                bucket[0] -= cost  # below 0 for a cost over the burst: a debt refilled first
                return 0.0
            return (need - bucket[0]) / self.rate_per_s

    def __len__(self) -> int:
        """How many clients have a bucket (at most max_clients)."""
        return len(self._buckets)


def _main() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=10, burst=5, max_clients=100, clock=lambda: now[0])
    passed = refused = 0
    for _ in range(60):  # 30 requests a second for 2 s: 3x the rate
        wait = limiter.acquire("flooder")
        passed, refused = passed + (wait == 0), refused + (wait > 0)
        now[0] += 1 / 30
    print(f"30 req/s for 2 s at 10/s (burst 5): {passed} passed (5 + 10/s x 1.97 s), {refused} refused")
    print(f"another client, meanwhile: wait {limiter.acquire('someone-else')} s")
    print(f"a 20-row batch of the flooder: retry after {limiter.acquire('flooder', 20):.2f} s")


if __name__ == "__main__":
    _main()
