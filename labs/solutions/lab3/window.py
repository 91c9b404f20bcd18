"""A solution of lab 3's `data-window` (exercises/lab3/window.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab3/data-window.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from mlops_lab.errors import InvalidValue
from mlops_lab.pipeline.window import INTERVAL_RUN_TYPES, SOURCES, Window, WindowTooSmall

EXPLICIT, DATA_INTERVAL, MANUAL = SOURCES


def resolve_window(params: Mapping[str, Any], context: Mapping[str, Any], started_at: datetime) -> Window:
    """The window of a run from its DAG params, its Airflow task context ({} outside Airflow) and
    the moment it started. Raises InvalidValue for a window that cannot be meant."""
    # The DAG's params default to "" and a caller may pass None: both mean "not given".
    start_text = params.get("window_start") or ""
    end_text = params.get("window_end") or ""
    started = aware(started_at, "started_at")
    if start_text or end_text:
        # Half a window is a typo, not a request for "from the beginning" or "until now".
        if not start_text or not end_text:
            raise InvalidValue("window_start and window_end go together: give both, or neither")
        window = Window(aware(start_text, "window_start"), aware(end_text, "window_end"), EXPLICIT)
    elif run_type_of(context) in INTERVAL_RUN_TYPES and has_interval(context):
        # Airflow 3 names: data_interval_start/_end. execution_date is gone, and a .get() on it
        # would quietly give None rather than fail.
        start = aware(context["data_interval_start"], "data_interval_start")
        end = aware(context["data_interval_end"], "data_interval_end")
        window = Window(start, end, DATA_INTERVAL)
    else:
        # Manual, asset-triggered or outside Airflow: all data up to the moment the run started.
        # started_at, not datetime.now(): a retry or a resume an hour later must see the same
        # rows, and the moment is recorded once in run.json.
        window = Window(None, started, MANUAL)
    # [start, end) with start >= end holds nothing: refuse it rather than train on nothing.
    if window.start is not None and window.start >= window.end:
        raise InvalidValue(f"the window {window.describe()} is empty: start must be before end")
    # Rows for an interval that has not ended yet are still arriving: a retry would see more.
    if window.end > started:
        raise InvalidValue(
            f"the window {window.describe()} ends after the run started ({started.isoformat()})"
        )
    return window


def run_type_of(context: Mapping[str, Any]) -> str | None:
    """The DAG run's type as plain text ("scheduled", "backfill", "manual", ...), or None."""
    run_type = getattr(context.get("dag_run"), "run_type", None)
    # DagRunType is a str enum whose str() is "DagRunType.SCHEDULED": its .value is the text.
    value = getattr(run_type, "value", run_type)
    return None if value is None else str(value)


def has_interval(context: Mapping[str, Any]) -> bool:
    return context.get("data_interval_start") is not None and context.get("data_interval_end") is not None


def aware(value: Any, name: str) -> datetime:
    """A datetime with a time zone, from a datetime or ISO 8601 text; InvalidValue otherwise."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError as exc:  # "yesterday", month 13: the user's typo, said in one line
            raise InvalidValue(f"{name}: {value!r} is not an ISO 8601 date and time") from exc
    # A naive time is ambiguous (whose midnight?): ask for the offset instead of guessing one.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidValue(f"{name}: {value!r} has no time zone; write e.g. 2026-12-01T00:00:00+00:00")
    return moment


def rows_in_window(frame: pd.DataFrame, window: Window, column: str = "ts") -> pd.DataFrame:
    """The rows of `frame` whose `column` (timestamps) lies in the window: start <= ts < end."""
    # DataFrame() from an empty store has no `column` at all: nothing to select.
    if frame.empty:
        return frame
    # utc=True: naive store times are UTC, text with offsets becomes the same instants, and both
    # then compare with the window's aware datetimes.
    ts = pd.to_datetime(frame[column], utc=True)
    # Half-open: a row exactly at the end belongs to the next window, so consecutive windows
    # never count a row twice nor miss one.
    inside = ts < pd.Timestamp(window.end)
    if window.start is not None:
        inside = inside & (ts >= pd.Timestamp(window.start))
    # A positional mask, then a fresh index: the next steps concatenate and slice by position.
    return frame[inside.to_numpy()].reset_index(drop=True)


def require_rows(rows: int, window: Window, minimum: int, what: str = "predictions") -> None:
    """Stop the run when the window holds no rows or fewer than `minimum`; the detail names the
    window, the count and the minimum."""
    # Without this stop the pipeline would train on the base set alone (or on nothing) and
    # present the result as a model of the window: a silent no-op dressed as a retrain.
    if rows == 0:
        raise WindowTooSmall("empty_window", f"no {what} in the window {window.describe()}")
    # The minimum itself is enough: fewer than it stops (<, not <=).
    if rows < minimum:
        raise WindowTooSmall(
            "window_too_small",
            f"only {rows:,} {what} in the window {window.describe()}, at least {minimum:,} needed",
        )
