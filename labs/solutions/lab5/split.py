"""A solution of lab 5's `router-split` (exercises/lab5/split.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab5/router-split.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

import zlib

from mlops_lab.canary.weights import Route, Weights

__all__ = ["CanaryHealth", "Route", "Weights", "bucket_of", "choose"]

BUCKETS = 100  # canary_weight is a percent: one bucket per percent of the cards


def bucket_of(key: str) -> int:
    """A stable 0..99 bucket per entity: the same key always lands in the same bucket, in every
    process and after every restart."""
    # crc32 of the UTF-8 bytes is a pure function of the text: every replica of the router, and
    # the same router after a restart, agrees on it. hash(key) would not: str hashes are salted
    # with a random seed per process, so the same card would switch models on every restart.
    checksum = zlib.crc32(key.encode("utf-8"))
    # 2**32 is not a multiple of 100, so buckets 0..95 get one value more than 96..99 do: one in
    # 43 million, nothing next to the sampling noise. Taking % 100 of a single byte (256 values)
    # instead would give the low buckets half as many cards again as the high ones.
    return checksum % BUCKETS


class CanaryHealth:
    """Passive health: consecutive failures open the circuit; one probe after a pause closes it."""

    def __init__(self, unhealthy_after: int, probe_after_s: float) -> None:
        self.unhealthy_after = unhealthy_after  # failures in a row that take the canary out
        self.probe_after_s = probe_after_s  # how long it stays out before one probe
        self.failures = 0  # canary failures in a row, so far
        self.open_until = 0.0  # while unhealthy: no canary request before this time

    @property
    def healthy(self) -> bool:
        # In a row, not in all: a canary failing one request in ten is the judge's business (an
        # error rate to compare); only one that fails everything should lose its traffic here.
        return self.failures < self.unhealthy_after

    def allow(self, now: float) -> bool:
        if self.healthy:
            return True
        if now < self.open_until:
            return False  # still paused: every request of this card goes to stable meanwhile
        # The pause is over and this request is the probe. Pushing the end of the pause forward
        # right away means the requests right behind it wait again: one probe per pause, and if
        # the probe's answer is lost (the router crashed mid-request) another one a pause later.
        self.open_until = now + self.probe_after_s
        return True

    def success(self) -> None:
        # The streak is broken. This is also how a successful probe closes the circuit.
        self.failures = 0

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.failures >= self.unhealthy_after:
            # The failure that opens the circuit, or a failed probe: either way a fresh pause,
            # counted from when the failure was seen (a probe may take a timeout to fail).
            self.open_until = now + self.probe_after_s


def choose(weights: Weights, key: str | None, health: CanaryHealth, now: float) -> Route:
    """Where one prediction goes. `key` is the entity (card id, else request id; None when the
    body could not be parsed)."""
    if weights.shadow:
        # The caller always gets stable's answer. A body that was not JSON has nothing the judge
        # could pair, so only requests with a key are copied to the canary.
        return Route("stable", mirror=key is not None)
    if key is None:
        return Route("stable")  # stable's 422 tells the caller what is wrong with the body
    # bucket < weight: the canary's cards at 5% are buckets 0..4, at 25% buckets 0..24, so each
    # step only adds cards and none goes back to stable while the weight ramps up.
    if bucket_of(key) >= weights.canary_weight:
        return Route("stable")  # weight 0 ends here for every card, without asking health
    # Only now ask health: allow() hands out the single probe of a pause, and a request that was
    # going to stable anyway must not use it up.
    if health.allow(now):
        return Route("canary")
    return Route("stable")
