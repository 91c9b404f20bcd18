"""What the story and the scenarios need of a deployed system, wherever it runs: a timeline, a
patient `wait`, and the canary's rollout followed to its end. `cluster.kind.Kind` (kind, through
kubectl) and `cluster.compose.Compose` (containers, through the Docker CLI) are the two targets.

    python -c "import mlops_lab.cluster.target as t; help(t.Target)"
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import httpx


class Failed(Exception):
    """A check of the story or a scenario did not hold; the message says which."""


class CommandError(Failed):
    """The target's CLI failed (an API server busy, a container restarting): `wait` retries these."""


class Target(ABC):
    """The shared half of a target; a subclass answers `rollout()` (the controller's state file)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def say(self, what: str, detail: str = "") -> None:
        print(f"{time.monotonic() - self.t0:7.1f}s  {what}{'  ' + detail if detail else ''}", flush=True)

    def wait(self, check: Callable[[], bool], timeout_s: float, what: str, every_s: float = 3) -> None:
        """Until `check()` holds; transient errors are retried, and the last one is reported."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (CommandError, httpx.HTTPError, ValueError, KeyError) as exc:
                last = str(exc)[:200]
                if time.monotonic() + every_s >= deadline:
                    raise Failed(f"{what} (last error: {last})") from exc
            time.sleep(every_s)
        raise Failed(what)

    @abstractmethod
    def rollout(self) -> dict[str, Any] | None:
        """The controller's current or last rollout (its state file); None before the first."""

    def follow_rollout(self, candidate: str, timeout_s: float) -> dict[str, Any]:
        """The rollout of `candidate`, each new phase and weight on the timeline, once it ended."""
        shown: set[tuple[str, int]] = set()
        result: dict[str, Any] = {}

        def finished() -> bool:
            r = self.rollout()
            if r is None or r["candidate"] != candidate:
                return False
            if (r["phase"], r["weight"]) not in shown:
                shown.add((r["phase"], r["weight"]))
                self.say(f"canary {r['phase']}", f"{r['weight']}%: {r.get('reason', '')}")
            result.update(r)
            return r["phase"] in ("promoted", "rolled_back")

        self.wait(finished, timeout_s, f"the rollout of v{candidate} did not finish", every_s=2)
        return result
