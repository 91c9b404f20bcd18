"""Lab 5, exercise `router-split`: weighted sticky routing by card, shadow copies, passive health.

    make lab-5        grade it          make hint-5      one more hint
    Reference: reference/mlops_lab/canary/split.py     Docs: docs/labs/lab-5-system-design.md

While a rollout is on, the canary router (mlops_lab.canary.router) sits in front of two model
servers, stable (the champion) and canary (the candidate), and asks this module where every
prediction goes. The controller moves the weights: shadow (stable answers everything, the
canary gets a copy), then 5%, 25%, 50% of the cards, then promotion, or back to 0 on a FAIL.
You write:

  bucket_of             a bucket 0..99 per card id, the same in every process and every restart
  choose                the route of one request: stable or canary, and whether to mirror it
  CanaryHealth          passive health: a canary that keeps failing gets no traffic for a
                        while, then one probe decides whether it gets its share back

The router does the HTTP: it sends the request where your Route says, copies it to the canary
under `<request_id>:shadow` when `mirror` is set, retries a failed canary request on stable
(the caller never sees the canary's 500) and tells your CanaryHealth how each canary request
went (success() or failure(now)). The grader measures the canary's share of 20,000 cards at
5, 25 and 50%, runs your bucket_of in other Python processes, drives CanaryHealth through a
simulated 30 s outage, and runs the real router in front of two real HTTP servers.

What it works with:

    Weights(canary_weight, shadow, ...)   mlops_lab.canary.weights: the percent of cards (0..100)
                                          the canary gets, and shadow mode on or off
    Route(variant, mirror=False)          variant "stable" or "canary"; mirror: the canary also
                                          gets a copy of the request, whose answer is discarded
    key                                   the card id (else the request id); None when the body
                                          was not JSON: stable answers it, with its own 422
    now                                   time.monotonic() seconds in the router (any clock in
                                          the grader): compare times, never read the clock
    zlib.crc32(data: bytes) -> int        a checksum that is the same in every process;
                                          Python's hash() of a str is salted per process
    python -m mlops_lab.canary.split      the reference's share of 10,000 cards at 5, 25, 50%
"""

from __future__ import annotations

import zlib

from mlops_lab.canary.weights import Route, Weights

__all__ = ["CanaryHealth", "Route", "Weights", "bucket_of", "choose"]


def bucket_of(key: str) -> int:
    """A stable 0..99 bucket per entity: the same key always lands in the same bucket, in every
    process and after every restart."""
    # TODO(lab-5): hash the key into 0..99, evenly: about 1% of cards in each bucket.
    #  - The same key must give the same bucket in this process, in another process and after
    #    a restart: the router may run as several replicas, and restarts during a rollout.
    #    Python's hash(str) is salted per process (PYTHONHASHSEED), so it cannot be the hash.
    #  - Hash the key's bytes (key.encode()) with a hash that does not depend on the process,
    #    and reduce it to 0..99 without favouring some buckets over others.
    #  Think about: why must a card's bucket not change between the 5% and the 25% step, and
    #  what does a card that flips between stable and canary do to the comparison the judge makes?
    raise NotImplementedError("TODO(lab-5): a stable 0..99 bucket per card")


class CanaryHealth:
    """Passive health: consecutive failures open the circuit; one probe after a pause closes it."""

    def __init__(self, unhealthy_after: int, probe_after_s: float) -> None:
        self.unhealthy_after = unhealthy_after  # failures in a row that take the canary out
        self.probe_after_s = probe_after_s  # how long it stays out before one probe
        self.failures = 0  # canary failures in a row, so far
        self.open_until = 0.0  # while unhealthy: no canary request before this time
        # Keep whatever else you need here; the router only calls the four members below.

    @property
    def healthy(self) -> bool:
        """Whether the canary is in rotation (False while failures keep it out, probes included).
        The router publishes it as mlops_router_canary_healthy."""
        # TODO(lab-5): healthy until `unhealthy_after` failures in a row.
        #  Think about: a canary that fails one request in ten is slow to judge but not down.
        #  Why count failures in a row rather than failures in all?
        raise NotImplementedError("TODO(lab-5): whether the canary is in rotation")

    def allow(self, now: float) -> bool:
        """May this request go to the canary? The router asks it only for requests that the
        split sends to the canary."""
        # TODO(lab-5): always True while healthy. Once unhealthy: False until probe_after_s
        #  after the failure that took it out; then True for exactly ONE request (the probe),
        #  and taking that probe starts the next pause: if its answer never comes, another
        #  probe probe_after_s later, never a flood.
        #  Think about: after the pause, why one probe and not the canary's whole share? What
        #  does a canary that is still down cost the callers (each failure is retried on stable)?
        raise NotImplementedError("TODO(lab-5): may this request go to the canary")

    def success(self) -> None:
        """A canary request succeeded (a probe's success puts the canary back in rotation)."""
        # TODO(lab-5): the failures in a row are over: count from 0 again.
        #  Think about: after a long outage, the probe's success is the only success the canary
        #  can get. What would forgiving one failure per success (failures -= 1) do then?
        raise NotImplementedError("TODO(lab-5): a canary success")

    def failure(self, now: float) -> None:
        """A canary request failed (a 5xx, a timeout, a refused connection) at `now`."""
        # TODO(lab-5): one more failure in a row. When that makes the canary unhealthy (or it
        #  already was: a failed probe), no canary request until probe_after_s after `now`.
        #  Think about: a failed probe reopens the circuit: from when should its pause count?
        raise NotImplementedError("TODO(lab-5): a canary failure")


def choose(weights: Weights, key: str | None, health: CanaryHealth, now: float) -> Route:
    """Where one prediction goes. `key` is the entity (card id, else request id; None when the
    body could not be parsed)."""
    # TODO(lab-5): return the Route of one request.
    #  - Shadow mode (weights.shadow): stable answers every request; the canary gets a copy
    #    (mirror=True) of every request with a key, none of one without (there is nothing to
    #    compare in a body that is not JSON).
    #  - Otherwise the canary gets the cards whose bucket is below canary_weight: 0 sends it
    #    nothing, 25 about a quarter of the cards, always the same ones, and every card on it
    #    at 5% is still on it at 25% and 50%. A request without a key goes to stable.
    #  - A request the split sends to the canary goes there only if health.allow(now); if not,
    #    to stable. Ask health ONLY for those requests: allow() hands out the one probe of a
    #    pause, and a request that goes to stable anyway must not spend it.
    #  Think about: why a hash of the card and not random.random() < weight / 100 per request?
    #  A fraud ring hits one card many times: what would the judge compare then?
    raise NotImplementedError("TODO(lab-5): the route of one request")
