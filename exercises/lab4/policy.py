"""Lab 4, exercise `trigger-policy`: retrain on drift that matters, and only then.

    make lab-4        grade it          make hint-4      one more hint
    Reference: reference/mlops_lab/monitoring/policy.py     Docs: docs/labs/lab-4-observability.md

Every 500 predictions the monitor compares the window with the champion's training reference
(a WindowVerdict: which columns drifted and by how much, the model's feature importance, any
data-quality alarm) and asks your policy whether to retrain. A naive "retrain when a column
drifted" fires on about a quarter of perfectly normal windows, by chance alone; drift on a
feature the model ignores is no reason either; and one retrain takes minutes. You write:

  TriggerPolicy.decide   the decision for one window, and the state to carry to the next (pure)
  PolicyState.save       write the state so that a crash never leaves half a file
  PolicyState.load       read it back when the monitor restarts; refuse a broken file

This exercise is open-ended: the grader streams windows through your policy and measures what it
does. 500 windows without drift: at most 1 retrain. 100 windows where only device_os drifts: none.
A 0.5 SD shift of an important feature: a retrain within K+1 windows on 45 of 50 seeds. Plus the
contract the fields below describe (K in a row, min_samples, the cooldown, restarts).

What it works with:

    window.rows                   rows in the window
    window.drift                  a DriftResult, or None when it could not be computed
      .drifted_columns            names of the drifted columns
      .columns                    ColumnDrift(column, drifted, statistic, threshold, ...) each,
                                  with .severity: 0 (not drifted) to 1 (twice its threshold or more)
    window.importance             the champion's importance per feature, summing to 1
    window.drifted_importance     sum of importance x severity over the drifted columns
    window.data_quality           data-quality alarms (texts): for a person; while there is one,
                                  no retrain (a unit change drifts hugely; retraining learns it)
    dataclasses.replace(state, consecutive=...)   a changed copy of a frozen state
    BrokenStateFile (mlops_lab.errors)            the error for a state file that cannot be read
    python -m mlops_lab.monitoring.simulate       the reference policy over 500 clean windows and
                                                  a shifted stream; simulate.stream(TriggerPolicy(),
                                                  verdicts, state=PolicyState()) runs yours
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
        # TODO(lab-4): return (Decision(trigger, reason, drifted_where_it_matters,
        #  importance_share, alarms), the next state), a new PolicyState: never change `state`.
        #  - Refuse a naive `now` (now.tzinfo is None) with ValueError.
        #  - Hand window.data_quality on as the alarms in every decision; an alarm never triggers.
        #  - A window under min_samples rows is not judged: it neither counts nor resets the count.
        #    Neither does a window whose drift is None (it could not be computed), nor one with a
        #    data-quality alarm (its drift may be the bug's: amounts in cents drift enormously).
        #  - A window counts (drifted_where_it_matters) when its drifted columns carry at least
        #    min_importance_share of the importance, each weighted by how far past its threshold
        #    it is; a full-size window that does not count resets the count to 0.
        #  - consecutive_windows windows in a row that count retrain, unless the last retrain is
        #    less than cooldown_s ago; then keep counting, so that drift which persists retrains
        #    on the first window after the cooldown. A retrain starts the count over at 0 and
        #    records `now` as the last trigger time.
        #  - reason: plain words for the log ("drift on amount (15% of importance), 2/3 windows").
        #  Think about: 27% of clean windows have some column just past its threshold. Why does
        #  K in a row cut the false retrains so much more than raising the threshold would?
        raise NotImplementedError("TODO(lab-4): the trigger decision for one window")


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
        # TODO(lab-4): write self.to_json() to `path` (creating its folder) so that a crash at
        #  any moment leaves either the old file or the new one: a temporary file in the same
        #  folder, flushed and os.fsync'ed, then os.replace'd over `path`; remove the temporary
        #  file if anything fails, and leave none behind after a success.
        #  Think about: what does open(path, "w") do to the old state before the first byte of
        #  the new one is written, and what is left if the process dies right then?
        raise NotImplementedError("TODO(lab-4): save the state atomically")

    @classmethod
    def load(cls, path: Path) -> PolicyState:
        """The saved state, or a fresh one when there is no file yet.

        A file that cannot be read is an error, not a fresh start: forgetting the last trigger
        would silently skip the cooldown. Delete the file to reset on purpose.
        """
        # TODO(lab-4): a fresh PolicyState() when `path` does not exist; else from_json of its
        #  JSON. Anything unreadable (not JSON, the wrong shape, a field that does not parse)
        #  raises BrokenStateFile, naming the file and how to reset.
        #  Think about: what would the monitor do right after a restart if a broken file quietly
        #  read as a fresh state while the drift that triggered the last retrain persists?
        raise NotImplementedError("TODO(lab-4): load the state, strictly")


def parse_time(text: Any) -> datetime | None:
    """An ISO 8601 time as to_json writes it (None stays None)."""
    return datetime.fromisoformat(text) if text else None
