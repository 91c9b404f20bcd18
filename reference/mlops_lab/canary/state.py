"""The canary controller's persisted state: the rollout, its file, the abort request and the lock.

    python -c "from mlops_lab.canary.state import load_state, Settings; print(load_state(Settings()))"

Everything the controller must remember across a restart lives in one JSON file
(`canary_state_path`), replaced atomically, so a controller killed at any point resumes where it
was. An operator's abort is a separate request file (the daemon picks it up within a poll), and
one lock file makes sure a single controller drives rollouts (the daemon, or a foreground
`mlops-lab canary start` when no daemon runs). The state machine itself: `canary.controller`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlops_lab.canary.judgement import Judgement
from mlops_lab.data.io import write_json_atomic
from mlops_lab.errors import BrokenStateFile
from mlops_lab.settings import Settings

ACTIVE = ("warming", "shadow", "step", "promoting", "rolling_back")
PHASES = ("idle", *ACTIVE, "promoted", "rolled_back")


@dataclass
class Rollout:
    rollout_id: str
    candidate: str
    champion: str
    phase: str = "warming"
    step_index: int = -1  # index into settings.canary_steps while phase == "step"
    weight: int = 0  # what the router was last told
    shadow: bool = False
    phase_started: float = 0.0
    judged_since: str = ""  # ISO time: the judge reads predictions from here (per mode)
    counts_base: dict[str, dict[str, int]] = field(default_factory=dict)  # router counters then
    counts_acc: dict[str, dict[str, int]] = field(default_factory=dict)  # from earlier router runs
    router_started: float = 0.0
    fraction: dict[str, float] = field(default_factory=lambda: {"paired": 0.0, "split": 0.0})
    last_look: float = 0.0
    last_verdict: str | None = None  # of the current phase
    looks: list[dict[str, Any]] = field(default_factory=list)
    expectation: str | None = None  # Expectation JSON recorded by the evaluate step
    reason: str = ""
    last_error: str | None = None
    started: float = 0.0
    finished: float | None = None

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE

    def describe(self) -> str:
        where = f"{self.weight}%" + (" + shadow" if self.shadow else "")
        return f"v{self.candidate} vs v{self.champion}: {self.phase} (router {where}) {self.reason}"


@dataclass(frozen=True)
class Plan:
    """The rollout's schedule (from the settings): the steps and how long each phase lasts."""

    steps: tuple[int, ...] = (5, 25, 50)  # percent of cards to the canary at each step
    shadow_s: float = 60.0  # 0: no shadow phase
    step_s: float = 60.0  # minimum time at each step (and in shadow)
    look_s: float = 10.0  # the judge looks this often
    max_wait_s: float = 180.0  # beyond a phase's time without a PASS (or a warm canary): roll back

    @classmethod
    def of(cls, settings: Settings) -> Plan:
        return cls(
            tuple(settings.canary_steps),
            settings.canary_shadow_s,
            settings.canary_step_s,
            settings.canary_look_s,
            settings.canary_max_wait_s,
        )


class World(Protocol):
    """What one tick of a rollout can see and do (`canary.controller.Controller` over HTTP,
    MLflow and the store; the lab 5 grader in memory). Every action is idempotent and saves the
    rollout: a controller killed between two actions resumes from the last one it finished."""

    def served_version(self, variant: str) -> str | None:
        """The version a model server serves (None: down or nothing loaded)."""

    def ready(self, variant: str) -> tuple[bool, str]:
        """Is the model server ready, and what it says."""

    def router_state(self) -> dict[str, Any]:
        """The router's state: canary_weight, shadow, canary_healthy, counts, started."""

    def champion(self) -> str | None:
        """The version @champion points at (raises while the registry is down)."""

    def route(self, r: Rollout, weight: int, shadow: bool, reason: str) -> None:
        """Tell the router the canary's share and shadow mode; records them in `r` (r.weight,
        r.shadow) and saves it."""

    def start_judging(self, r: Rollout, now: float) -> None:
        """From now on the judge reads this phase's data (the router's counters, the store); sets
        r.last_look = now, so the first look waits one look interval. Saved by the next save."""

    def look(self, r: Rollout, router: dict[str, Any], now: float) -> Judgement:
        """Judge the data since start_judging; records the look in `r` (r.looks, r.last_look,
        r.last_verdict), saved at the end of the tick."""

    def reload(self, variant: str) -> None:
        """Ask a model server to reload its alias now; the load takes a while (served_version
        says when it is done), and one that fails (the registry down) keeps the old model."""

    def promote(self, r: Rollout) -> None:
        """Move @champion to r.candidate (audited; raises while the registry is down)."""

    def clear_challenger(self, r: Rollout, outcome: str) -> None:
        """Remove @challenger if it still points at r.candidate; tag the outcome (registry)."""

    def transition(self, r: Rollout, phase: str, reason: str) -> None:
        """Enter `phase` (r.phase_started = now, r.last_verdict = None): saved first (a crash
        right after replays it), then audited."""

    def finish(self, r: Rollout, phase: str, reason: str) -> None:
        """End the rollout as promoted or rolled_back: a transition that also records the version
        as judged for good (it is never rolled out again)."""


@dataclass
class ControllerState:
    rollout: Rollout | None = None
    judged: dict[str, str] = field(default_factory=dict)  # version -> promoted | rolled_back

    def to_json(self) -> dict[str, Any]:
        return {"rollout": asdict(self.rollout) if self.rollout else None, "judged": self.judged}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ControllerState:
        r = data.get("rollout")
        return cls(Rollout(**r) if r else None, dict(data.get("judged", {})))


def load_state(settings: Settings) -> ControllerState:
    path = settings.canary_state_path
    if not path.exists():
        return ControllerState()
    try:
        return ControllerState.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        # Forgetting a rollout could promote nothing wrongly but would leave weights dangling.
        raise BrokenStateFile(f"unreadable canary state {path} ({err}); fix or delete it") from err


def save_state(settings: Settings, state: ControllerState) -> None:
    write_json_atomic(settings.canary_state_path, state.to_json(), indent=1)


def abort_path(settings: Settings) -> Path:
    return settings.canary_state_path.with_name("abort.request")


def request_abort(settings: Settings, reason: str) -> None:
    """Ask the controller (daemon or next foreground tick) to roll the current canary back."""
    write_json_atomic(abort_path(settings), {"reason": reason or "aborted by operator"})


@contextlib.contextmanager
def controller_lock(settings: Settings) -> Iterator[bool]:
    """Exclusive right to drive rollouts: yields False when another controller holds it."""
    path = settings.canary_state_path.with_name("controller.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            handle.write(str(os.getpid()))
            handle.flush()
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
