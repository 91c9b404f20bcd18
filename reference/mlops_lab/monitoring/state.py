"""What the drift monitor keeps: its state file (survives restarts) and its window reports.

    python -c "from mlops_lab.monitoring.state import MonitorState; from pathlib import Path; \
print(MonitorState.load(Path('var/monitor/policy_state.json')))"

`MonitorState` is stored flat at `settings.monitor_state_path`, next to the fields of
`PolicyState`, so the policy's own loader reads the same file; it is always replaced atomically
(temp file, fsync, os.replace), never written in place. `WindowReport` is one evaluated window,
as /v1/status and home/monitor/windows.jsonl show it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_lab.data.io import write_json_atomic
from mlops_lab.monitoring.policy import Decision, PolicyState
from mlops_lab.monitoring.window import WindowVerdict


@dataclass
class MonitorState:
    """What survives a restart. Stored flat in `settings.monitor_state_path`, so that
    `PolicyState.load` reads the same file."""

    policy: PolicyState = field(default_factory=PolicyState)
    cursor: int = 0  # the last prediction id consumed
    windows: int = 0  # windows evaluated so far (numbers the HTML reports)
    reference_version: str | None = None
    last_window_ts: float | None = None
    last_trigger: dict[str, Any] | None = None  # window, ts, reason, outcome, detail

    def to_json(self) -> dict[str, Any]:
        return {
            **self.policy.to_json(),
            "cursor": self.cursor,
            "windows": self.windows,
            "reference_version": self.reference_version,
            "last_window_ts": self.last_window_ts,
            "last_trigger": self.last_trigger,
        }

    @classmethod
    def load(cls, path: Path) -> MonitorState:
        """The saved state, or a fresh one. An unreadable file is an error (see PolicyState.load)."""
        policy = PolicyState.load(path)
        if not path.exists():
            return cls(policy)
        data = json.loads(path.read_text())
        return cls(
            policy,
            int(data.get("cursor", 0)),
            int(data.get("windows", 0)),
            data.get("reference_version"),
            data.get("last_window_ts"),
            data.get("last_trigger"),
        )

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())


@dataclass(frozen=True)
class WindowReport:
    number: int
    first_id: int
    last_id: int
    rows: int
    first_ts: str
    last_ts: str
    evaluated_at: str
    champion_version: str
    served_by: tuple[str, ...]  # model versions that scored the window's rows
    skipped_rows: int  # rows skipped just before this window (the monitor was behind)
    consecutive: int  # the policy's count after this window
    report: str | None  # HTML file name under home/monitor/reports, None when drift was not computed
    verdict: WindowVerdict = field(repr=False)
    decision: Decision = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        v, d = self.verdict, self.decision
        realized = v.realized
        return {
            "window": self.number,
            "ids": [self.first_id, self.last_id],
            "rows": self.rows,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "evaluated_at": self.evaluated_at,
            "champion_version": self.champion_version,
            "served_by": list(self.served_by),
            "skipped_rows": self.skipped_rows,
            "share_drifted": v.drift.share_drifted if v.drift is not None else None,
            "drifted_columns": v.drift.drifted_columns if v.drift is not None else None,
            "importance_share": round(v.drifted_importance, 4),
            "score_drift": v.score.describe() if v.score is not None else None,
            "data_quality": list(v.data_quality),
            "labelled": realized.labelled if realized is not None else 0,
            "estimated_precision": v.estimate.precision,
            "estimated_recall": v.estimate.recall,
            "trigger": d.trigger,
            "drifted_where_it_matters": d.drifted_where_it_matters,
            "reason": d.reason,
            "consecutive": self.consecutive,
            "report": f"/reports/{self.report}" if self.report else None,
        }


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as out:
        out.write(json.dumps(record, default=str) + "\n")


def tail_jsonl(path: Path, n: int, max_bytes: int = 1 << 20) -> list[dict[str, Any]]:
    """The last n records of a JSON-lines file (reads at most its last max_bytes)."""
    if not path.exists():
        return []
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - max_bytes))
        lines = f.read().decode(errors="replace").splitlines()[-n:]
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by the seek or by a crash mid-write
    return out
