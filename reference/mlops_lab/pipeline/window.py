"""The data window a retraining run reads (lab 3's `data-window` exercise mirrors it).

    python -m mlops_lab.pipeline.window 2026-11-30T00:00:00+00:00 2026-12-01T00:00:00+00:00

A pipeline run must read a fixed interval of data, never "whatever is there now": a retry, a
resume after a crash and a backfill must see the same rows as the first attempt. The window is
resolved once, when the run starts, and recorded in its run.json:

  explicit        params window_start/window_end (ISO 8601 with a time zone): manual runs and
                  backfills say which interval they mean
  data interval   a scheduled or backfill DAG run: Airflow 3's `data_interval_start` and
                  `data_interval_end` from the task context (Airflow 2 material calls the run's
                  date `execution_date`; Airflow 3 removed it for `logical_date`)
  manual          a manual run without a window: everything before the moment the run started

Rows are in the window when start <= ts < end (half-open: consecutive windows never count a row
twice or miss one). A window with no rows, or fewer than the pipeline's minimum, stops the run
at extract with that reason instead of training on nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from mlops_lab.errors import InvalidValue
from mlops_lab.pipeline.validate import PipelineStopped

# The DAG run types whose data interval is the interval they are about (Airflow 3 DagRunType values).
INTERVAL_RUN_TYPES = ("scheduled", "backfill")
SOURCES = ("explicit", "data interval", "manual")


@dataclass(frozen=True)
class Window:
    start: datetime | None  # None: from the first row ever logged
    end: datetime  # exclusive
    source: str  # one of SOURCES: where the interval came from

    def describe(self) -> str:
        start = self.start.isoformat() if self.start is not None else "the beginning"
        return f"[{start}, {self.end.isoformat()}) ({self.source})"

    def to_json(self) -> dict[str, Any]:
        start = self.start.isoformat() if self.start is not None else None
        return {"start": start, "end": self.end.isoformat(), "source": self.source}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Window:
        start = datetime.fromisoformat(data["start"]) if data.get("start") else None
        return cls(start, datetime.fromisoformat(data["end"]), str(data["source"]))


class WindowTooSmall(PipelineStopped):
    """The run's data window holds no rows (`empty_window`) or too few (`window_too_small`)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__("extract", reason, detail)


def resolve_window(params: Mapping[str, Any], context: Mapping[str, Any], started_at: datetime) -> Window:
    """The window of a run from its DAG params, its Airflow task context ({} outside Airflow) and
    the moment it started. Raises InvalidValue for a window that cannot be meant."""
    start_text, end_text = params.get("window_start") or "", params.get("window_end") or ""
    if start_text or end_text:
        if not (start_text and end_text):
            raise InvalidValue("give both window_start and window_end, or neither")
        window = Window(_aware(start_text, "window_start"), _aware(end_text, "window_end"), "explicit")
    else:
        dag_run = context.get("dag_run")
        run_type = getattr(dag_run, "run_type", None)
        run_type = getattr(run_type, "value", run_type)  # Airflow's DagRunType is a str enum
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if run_type in INTERVAL_RUN_TYPES and start is not None and end is not None:
            window = Window(
                _aware(start, "data_interval_start"), _aware(end, "data_interval_end"), "data interval"
            )
            if window.start == window.end:  # Airflow 3's default cron timetable: a point, no interval
                raise InvalidValue(
                    f"the DAG run's data interval {window.describe()} is empty: Airflow 3 schedules "
                    "cron DAGs with CronTriggerTimetable, whose runs have no interval; use "
                    "CronDataIntervalTimetable (or [scheduler] create_cron_data_intervals = True), "
                    "or pass window_start and window_end"
                )
        else:
            window = Window(None, _aware(started_at, "started_at"), "manual")
    if window.start is not None and window.start >= window.end:
        raise InvalidValue(f"window {window.describe()} is empty: its start must come before its end")
    if window.end > _aware(started_at, "started_at"):
        raise InvalidValue(
            f"window {window.describe()} ends after the run started: its data is not all there yet"
        )
    return window


def rows_in_window(frame: pd.DataFrame, window: Window, column: str = "ts") -> pd.DataFrame:
    """The rows of `frame` whose `column` (timestamps) lies in the window: start <= ts < end."""
    if frame.empty:
        return frame
    ts = pd.to_datetime(frame[column], utc=True)  # the store's timestamps may come back naive (UTC)
    keep = ts < pd.Timestamp(window.end)
    if window.start is not None:
        keep &= ts >= pd.Timestamp(window.start)
    return frame[keep.to_numpy()].reset_index(drop=True)


def require_rows(rows: int, window: Window, minimum: int, what: str = "predictions") -> None:
    """Stop the run when the window holds no rows or fewer than `minimum`; the detail names the
    window, the count and the minimum."""
    if rows == 0:
        raise WindowTooSmall("empty_window", f"no {what} in the window {window.describe()}")
    if rows < minimum:
        raise WindowTooSmall(
            "window_too_small",
            f"{rows:,} {what} in the window {window.describe()}; at least {minimum:,} needed",
        )


def _aware(value: Any, name: str) -> datetime:
    """A timezone-aware datetime from a datetime or ISO 8601 text; a naive one is refused
    (whose midnight would it be?)."""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidValue(f"{name}: {value!r} is not an ISO 8601 date and time") from exc
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidValue(f"{name}: {value!r} has no time zone (write it as 2026-12-01T00:00:00+00:00)")
    return moment


def _main() -> None:
    import sys
    from datetime import UTC

    params = {"window_start": sys.argv[1], "window_end": sys.argv[2]} if len(sys.argv) > 2 else {}
    print(resolve_window(params, {}, datetime.now(UTC)).describe())


if __name__ == "__main__":
    _main()
