"""The router's split: which model answers a request, whether the canary gets a copy, and
when a failing canary is taken out of rotation.

    python -m mlops_lab.canary.split      # the share of 10,000 cards each weight sends to the canary

The router (`canary.router`) calls these for every prediction while a rollout is on:

  bucket_of      a stable 0..99 bucket per entity (the card): the same card lands on the same
                 side for the whole step, and a card on the canary at 5% stays on it at 25%;
  choose         stable or canary for one request, and whether to mirror it (shadow mode:
                 stable answers everything, the canary's copy is judged and never served);
  CanaryHealth   passive health: after `unhealthy_after` failures in a row the canary gets no
                 traffic until one probe, `probe_after_s` later, succeeds.

Why a hash of the card and not a coin per request: one card flapping between two models sees
two decisions for one behaviour, and the judge's unit of randomization would no longer be
the unit the traffic is correlated on (a fraud ring hits one card many times).
"""

from __future__ import annotations

import zlib

from mlops_lab.canary.weights import Route, Weights

__all__ = ["CanaryHealth", "Route", "Weights", "bucket_of", "choose"]


def bucket_of(key: str) -> int:
    """A stable 0..99 bucket per entity: the same key always lands in the same bucket, in every
    process and after every restart (Python's hash() is salted per process)."""
    return zlib.crc32(key.encode()) % 100


class CanaryHealth:
    """Passive health: consecutive failures open the circuit; one probe after a pause closes it."""

    def __init__(self, unhealthy_after: int, probe_after_s: float) -> None:
        self.unhealthy_after = unhealthy_after
        self.probe_after_s = probe_after_s
        self.failures = 0
        self.open_until = 0.0

    @property
    def healthy(self) -> bool:
        """In rotation: fewer than `unhealthy_after` failures in a row (False during a probe too)."""
        return self.failures < self.unhealthy_after

    def allow(self, now: float) -> bool:
        """May this request go to the canary? Always while healthy; once unhealthy, one probe
        per `probe_after_s` pause (taking the probe starts the next pause)."""
        if self.healthy:
            return True
        if now >= self.open_until:
            self.open_until = now + self.probe_after_s  # one probe per pause
            return True
        return False

    def success(self) -> None:
        """A canary request succeeded: the run of failures is over (a probe's success closes it)."""
        self.failures = 0

    def failure(self, now: float) -> None:
        """A canary request failed at `now`. The failure that makes it unhealthy, and any later
        one (a failed probe, a request that was already in flight), starts a pause at `now`."""
        self.failures += 1
        if not self.healthy:
            self.open_until = now + self.probe_after_s


def choose(weights: Weights, key: str | None, health: CanaryHealth, now: float) -> Route:
    """Where one prediction goes. `key` is the entity (card id, else request id; None when the
    body could not be parsed: it goes to stable, whose 422 explains why)."""
    if weights.shadow:
        # Stable answers every request; the canary sees a copy of each parsed one.
        return Route("stable", mirror=key is not None)
    if weights.canary_weight <= 0 or key is None or bucket_of(key) >= weights.canary_weight:
        return Route("stable")
    # Ask passive health only for requests that would go to the canary: asking for every
    # request would spend the one probe of a pause on traffic that never reaches the canary.
    return Route("canary") if health.allow(now) else Route("stable")


def _main() -> None:
    health = CanaryHealth(unhealthy_after=5, probe_after_s=10.0)
    cards = [f"card-{i:05d}" for i in range(10_000)]
    for weight in (5, 25, 50):
        w = Weights(canary_weight=weight)
        share = sum(choose(w, c, health, 0.0).variant == "canary" for c in cards) / len(cards)
        print(f"weight {weight:>2}%: {share:.1%} of 10,000 cards to the canary")


if __name__ == "__main__":
    _main()
