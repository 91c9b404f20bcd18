"""Lab 6, exercise `rate-limiter`: a token bucket per client, bounded state, Retry-After.

    make lab-6        grade it          make hint-6      one more hint
    Reference: reference/mlops_lab/serving/limiter.py    Docs: docs/labs/lab-6-coding.md
    Run yours: mlops-lab serve --impl exercises           (the predict routes then limit with it)

One client in a loop (a retry storm, a misconfigured batch job) must not take the model server
from everyone else. The server builds `RateLimiter(rate_per_s=settings.rate_limit_per_s,
burst=settings.rate_limit_burst, max_clients=settings.rate_limit_max_clients)` and, for every
request with a model loaded, calls `acquire(client, cost)`: the client is the X-Client-Id
header, else the peer address; a single prediction costs 1, a batch its row count. 0.0 lets the
request through; anything else is answered 429 with Retry-After: ceil(seconds), at least 1,
and counted in mlops_rate_limited_total{route}. You write the limiter:

  RateLimiter(rate_per_s, burst, max_clients, clock=time.monotonic)
      acquire(client_id, cost=1) -> 0.0, or the seconds until the request could pass
      len(limiter)               how many clients have a bucket (never more than max_clients)

The token bucket: each client has at most `burst` tokens, refilled continuously at
`rate_per_s` tokens a second; a request takes `cost` tokens, or is refused and takes nothing.

What they work with:

    clock() -> float           seconds, only ever compared (time.monotonic in the server; the
                               grader passes a fake clock it moves by hand, so never call
                               time.* yourself)
    collections.OrderedDict    od.move_to_end(key), od.popitem(last=False): O(1) recency
    threading.Lock             the server calls from one event loop; a lock keeps it safe anyway
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
        # TODO(lab-6): the limiter's state.
        #  - rate_per_s <= 0, burst < 1 or max_clients < 1 is a ValueError (a rate of 0 would
        #    divide by zero in the wait; the server does not build a limiter when it is off).
        #  - Per client: its tokens and when they were last counted. No timer refills anything:
        #    a bucket is brought up to date when its client shows up (lazily), in O(1).
        #  - The clients in the order they were last seen, to forget the oldest in O(1).
        raise NotImplementedError("TODO(lab-6): the buckets")

    def acquire(self, client_id: str, cost: float = 1) -> float:
        """Take `cost` tokens from the client's bucket: 0.0 when it may go ahead, else the seconds
        until its bucket holds enough (nothing is taken then)."""
        # TODO(lab-6): one token bucket per client_id, read from self's clock.
        #  - A client never seen (or forgotten) starts with a full bucket: `burst` tokens.
        #  - Otherwise refill first: tokens + (now - last) * rate_per_s, never above burst.
        #  - Enough tokens: take `cost` and return 0.0. Not enough: take nothing and return how
        #    long until there will be: (cost - tokens) / rate_per_s.
        #  - A cost above burst can never be there at once: it passes when the bucket is full
        #    and leaves it in debt (tokens below 0), so the client's average rate still holds;
        #    i.e. what must be there is min(cost, burst), what is taken is cost. (The server's
        #    batches may have 5,000 rows and the burst is 2,000.)
        #  - State stays bounded: a new client beyond max_clients forgets the least recently
        #    seen one (which comes back later as new, with a full bucket). A client that floods
        #    is the most recently seen: it must be the last to be forgotten.
        #  A negative cost is a ValueError.
        #  Think about: why is the bucket refilled when its client shows up rather than by a
        #  timer for every client? And why is forgetting the least recently seen client safe?
        raise NotImplementedError("TODO(lab-6): take tokens or say how long to wait")

    def __len__(self) -> int:
        """How many clients have a bucket (at most max_clients)."""
        # TODO(lab-6): the number of buckets kept.
        raise NotImplementedError("TODO(lab-6): how many buckets")
