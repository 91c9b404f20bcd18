"""When drift triggers retraining: a pure policy over window verdicts.

    python -c "from mlops_lab.monitoring.policy import TriggerPolicy; help(TriggerPolicy)"

A window triggers nothing on its own. `TriggerPolicy.decide` retrains only when all hold:
  - the window has at least `min_samples` rows (a small window neither counts nor resets);
  - its drifted columns carry at least `min_importance_share` of the champion's feature
    importance, each weighted by how far past its threshold it is (WindowVerdict.drifted_importance):
    drift on a feature the model ignores, such as device_os, is not a reason, and neither is
    noise just past the threshold;
  - that held for `consecutive_windows` windows in a row (a clean window resets the count);
  - the last trigger is at least `cooldown_s` ago (a retrain takes minutes to train, gate, canary);
  - the window has no data-quality alarm (missing values, a schema problem, a unit change): its
    drift may be the bug's, and a model retrained on a bug learns it. Such a window neither counts
    nor resets; its alarms are passed on in the Decision for a person to act on.

`PolicyState` is the little that must survive a monitor restart (the count and the last
trigger time); `save` writes it atomically, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mlops_lab.data.io import write_json_atomic
from mlops_lab.errors import BrokenStateFile
from mlops_lab.monitoring.window import WindowVerdict
from mlops_lab.settings import Settings


@dataclass(frozen=True)
class TriggerPolicy:
    min_samples: int = 500
    consecutive_windows: int = 3
    cooldown_s: float = 600.0
    min_importance_share: float = 0.08

    def __post_init__(self) -> None:
        if self.min_samples < 1 or self.consecutive_windows < 1 or self.cooldown_s < 0:
            raise ValueError(f"invalid trigger policy: {self}")
        if not 0.0 <= self.min_importance_share <= 1.0:
            raise ValueError(f"min_importance_share must be in [0, 1], got {self.min_importance_share}")

    @classmethod
    def from_settings(cls, settings: Settings) -> TriggerPolicy:
        return cls(
            min_samples=settings.monitor_min_samples,
            consecutive_windows=settings.monitor_consecutive_windows,
            cooldown_s=settings.monitor_cooldown_s,
            min_importance_share=settings.monitor_min_importance_share,
        )

    def decide(
        self, state: PolicyState, window: WindowVerdict, now: datetime
    ) -> tuple[Decision, PolicyState]:
        """The decision for one window and the state to carry to the next. Pure: nothing is written."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware (the state file stores UTC times)")
        alarms = window.data_quality
        if window.rows < self.min_samples:
            reason = f"too few samples ({window.rows} < {self.min_samples})"
            return Decision(False, reason, False, 0.0, alarms), state
        if window.drift is None:
            # Drift could not be computed (a schema break): the data-quality alarm says why.
            return Decision(False, "drift not computed: data-quality problems", False, 0.0, alarms), state
        if alarms:
            # Amounts in cents drift enormously; retraining on them would "fix" the drift by
            # learning the bug. Hold (neither count nor reset) until the producer is fixed.
            reason = f"held: data-quality alarm ({'; '.join(alarms)}); fix the producer, do not retrain"
            return Decision(False, reason, False, window.drifted_importance, alarms), state

        drifted = window.drift.drifted_columns
        share = window.drifted_importance
        if not drifted:
            return Decision(False, "no drift", False, 0.0, alarms), replace(state, consecutive=0)
        names = ", ".join(drifted)
        if share < self.min_importance_share:
            reason = (
                f"drift only on features that do not matter enough: {names} "
                f"({share:.0%} of the model's importance < {self.min_importance_share:.0%})"
            )
            return Decision(False, reason, False, share, alarms), replace(state, consecutive=0)

        count = state.consecutive + 1
        # Past K (during a cooldown) the count keeps growing; the reason shows it capped at K.
        shown = min(count, self.consecutive_windows)
        progress = (
            f"drift on {names} ({share:.0%} of importance) for {shown}/{self.consecutive_windows} windows"
        )
        if count < self.consecutive_windows:
            return Decision(False, progress, True, share, alarms), replace(state, consecutive=count)
        if state.last_trigger_ts is not None:
            until = state.last_trigger_ts + timedelta(seconds=self.cooldown_s)
            if now < until:
                # Keep counting: if the drift persists, the first window after the cooldown triggers.
                reason = f"{progress}; cooling down until {until.isoformat(timespec='seconds')}"
                return Decision(False, reason, True, share, alarms), replace(state, consecutive=count)
        decision = Decision(True, f"{progress}: retrain", True, share, alarms)
        return decision, PolicyState(consecutive=0, last_trigger_ts=now)


@dataclass(frozen=True)
class Decision:
    trigger: bool
    reason: str  # plain words, for the log, the audit trail and the demo timeline
    drifted_where_it_matters: bool
    importance_share: float  # summed importance of the drifted columns (0 when not computed)
    alarms: tuple[str, ...] = ()  # data-quality problems: reported, never a trigger by themselves


@dataclass(frozen=True)
class PolicyState:
    consecutive: int = 0  # drifted-where-it-matters windows in a row so far
    last_trigger_ts: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        last = self.last_trigger_ts.isoformat() if self.last_trigger_ts is not None else None
        return {"consecutive": self.consecutive, "last_trigger_ts": last}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicyState:
        last = data.get("last_trigger_ts")
        return cls(int(data.get("consecutive", 0)), datetime.fromisoformat(last) if last else None)

    def save(self, path: Path) -> None:
        """Write atomically (never half a file: the cooldown must survive a crash)."""
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> PolicyState:
        """The saved state, or a fresh one when there is no file yet.

        A file that cannot be read is an error, not a fresh start: forgetting the last trigger
        would silently skip the cooldown. Delete the file to reset on purpose.
        """
        if not path.exists():
            return cls()
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (ValueError, TypeError, AttributeError) as err:
            raise BrokenStateFile(f"unreadable policy state {path} ({err}); delete it to reset") from err
