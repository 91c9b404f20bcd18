"""A solution of lab 4's `trigger-policy` (exercises/lab4/policy.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab4/trigger-policy.toml applied to it (a check must fail on each).

The rule chosen is the one the fields describe: a window counts when it is big enough and its
drifted columns carry enough of the model's importance, weighted by how far past the threshold
each one is; K such windows in a row retrain, unless the last retrain is less than a cooldown
ago. Measured on 500-row windows against a 5,000-row reference: no retrain over 500 clean
windows (a naive "any column drifted" alarm fires on about a quarter of them), none over 100
windows of drift on device_os, and a half-SD shift of the amount retrains on the K-th window.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mlops_lab.errors import BrokenStateFile
from mlops_lab.monitoring.window import WindowVerdict
from mlops_lab.settings import Settings


@dataclass(frozen=True)
class TriggerPolicy:
    min_samples: int = 500  # rows a window needs before its drift means anything
    consecutive_windows: int = 3  # K: windows in a row that must count
    cooldown_s: float = 600.0  # the least time between two retrains
    min_importance_share: float = 0.08  # how much of the model's importance must have moved

    def __post_init__(self) -> None:
        if min(self.min_samples, self.consecutive_windows) < 1 or self.cooldown_s < 0:
            raise ValueError(f"invalid trigger policy (min_samples, K >= 1, cooldown_s >= 0): {self}")
        if not (0.0 <= self.min_importance_share <= 1.0):
            raise ValueError(f"min_importance_share is a share, in [0, 1]: {self.min_importance_share}")

    @classmethod
    def from_settings(cls, settings: Settings) -> TriggerPolicy:
        return cls(
            settings.monitor_min_samples,
            settings.monitor_consecutive_windows,
            settings.monitor_cooldown_s,
            settings.monitor_min_importance_share,
        )

    def decide(
        self, state: PolicyState, window: WindowVerdict, now: datetime
    ) -> tuple[Decision, PolicyState]:
        """The decision for one window and the state to carry to the next. Pure: nothing is written."""
        # The state file stores the trigger time; a naive time cannot be compared with it, and
        # guessing its zone would move the cooldown by hours.
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware (the state file stores UTC times)")
        # Alarms are handed on whatever happens below: they are for a person, not a retrain
        # (retraining on a broken feed teaches the model the bug).
        alarms = tuple(window.data_quality)

        # Too few rows: a statistic on them is noise either way, so the window says nothing.
        # Not a reset either: a short window in the middle of real drift must not cost K more.
        if window.rows < self.min_samples:
            why = f"too few samples ({window.rows} < {self.min_samples}): the window is not judged"
            return Decision(False, why, False, 0.0, alarms), state
        # No drift result (a schema break): the data-quality alarm says why; nothing to count.
        if window.drift is None:
            why = "drift not computed: see the data-quality alarms"
            return Decision(False, why, False, 0.0, alarms), state
        # An alarm means the feed is broken: its drift (amounts in cents drift enormously) is the
        # bug's, and a retrain would learn the bug. Hold: neither count nor reset until it is fixed.
        if alarms:
            why = f"held while the data is broken: {'; '.join(alarms)}"
            return Decision(False, why, False, window.drifted_importance, alarms), state

        drifted = window.drift.drifted_columns
        # Severity-weighted importance: noise flags columns just past the threshold on about a
        # quarter of clean windows; weighting them by how far past it they are keeps them from
        # adding up, while a real shift (several times the threshold) counts in full.
        share = window.drifted_importance
        if share < self.min_importance_share:
            why = "no drift" if not drifted else f"drift on {', '.join(drifted)} carries only {share:.0%}"
            # "In a row" means in a row: a window that does not count starts the count over.
            return Decision(False, why, False, share, alarms), replace(state, consecutive=0)

        count = state.consecutive + 1
        progress = f"drift on {', '.join(drifted)} ({share:.0%} of importance), window {count} in a row"
        if count < self.consecutive_windows:
            return Decision(False, progress, True, share, alarms), replace(state, consecutive=count)
        if state.last_trigger_ts is not None:
            until = state.last_trigger_ts + timedelta(seconds=self.cooldown_s)
            if now < until:
                # Keep counting through the cooldown: drift that persisted all along retrains on
                # the first window after it, not K windows later.
                why = f"{progress}; cooling down until {until.isoformat(timespec='seconds')}"
                return Decision(False, why, True, share, alarms), replace(state, consecutive=count)
        # The count starts over: the next retrain needs K fresh windows (and the cooldown).
        return Decision(True, f"{progress}: retrain", True, share, alarms), PolicyState(0, now)


@dataclass(frozen=True)
class Decision:
    trigger: bool  # retrain now
    reason: str  # why, in words a person reads in the log and the timeline
    drifted_where_it_matters: bool  # the window counted towards a trigger
    importance_share: float  # the drifted importance weighed (0 when not computed)
    alarms: tuple[str, ...] = ()  # data-quality problems, passed on: never a trigger


@dataclass(frozen=True)
class PolicyState:
    consecutive: int = 0  # windows in a row that counted
    last_trigger_ts: datetime | None = None  # when the policy last said retrain (aware)

    def to_json(self) -> dict[str, Any]:
        when = None if self.last_trigger_ts is None else self.last_trigger_ts.isoformat()
        return {"consecutive": self.consecutive, "last_trigger_ts": when}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicyState:
        when = data.get("last_trigger_ts")
        return cls(consecutive=int(data.get("consecutive", 0)), last_trigger_ts=parse_time(when))

    def save(self, path: Path) -> None:
        """Write atomically (never half a file: the cooldown must survive a crash)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # A temporary file in the same folder (os.replace is atomic only within one file
        # system), flushed to disk, then renamed over the old file: a crash at any point leaves
        # the old state or the new one, never half of one. Writing `path` in place would
        # truncate it first, and a crash then leaves an empty file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(self.to_json(), out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)  # no stray temporary file after a failed save
            raise

    @classmethod
    def load(cls, path: Path) -> PolicyState:
        """The saved state, or a fresh one when there is no file yet.

        A file that cannot be read is an error, not a fresh start: forgetting the last trigger
        would silently skip the cooldown. Delete the file to reset on purpose.
        """
        if not path.exists():
            return cls()  # the first start: nothing was ever triggered
        try:
            return cls.from_json(json.loads(path.read_text()))
        # ValueError: not JSON, or a field that does not parse; TypeError and AttributeError:
        # JSON of the wrong shape (a list, a number where a dict belongs).
        except (ValueError, TypeError, AttributeError) as err:
            raise BrokenStateFile(f"unreadable policy state {path} ({err}); delete it to reset") from err


def parse_time(text: Any) -> datetime | None:
    """An ISO 8601 time as to_json writes it (None stays None)."""
    return datetime.fromisoformat(text) if text else None
