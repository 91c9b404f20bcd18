"""Lab 3, exercise `data-window`: a run reads a fixed interval of data, never "now".

    make lab-3        grade it          make hint-3      one more hint
    Reference: reference/mlops_lab/pipeline/window.py     Docs: docs/labs/lab-3-orchestration.md

A retry, a resume after a crash and a backfill must read the same rows as the first attempt, so
a run's window is resolved once, when it starts, and recorded in its run.json. The extract step
keeps the predictions in the window and stops the run when there are too few. You write:

  resolve_window   which interval a run is about, from its DAG params and its Airflow task context
  rows_in_window   the rows of a frame whose timestamp lies in the window
  require_rows     stop the run, with the reason, when the window holds no rows or too few

What they work with:

    Window(start, end, source)   start: datetime or None (from the first row ever logged);
                                 end: datetime, exclusive; source: "explicit", "data interval"
                                 or "manual". .describe() is the text a person reads.
    WindowTooSmall(reason, detail)   a PipelineStopped at extract: the run stops on purpose
    InvalidValue(message)            a window that cannot be meant (a user's mistake)
    The Airflow 3 task context: a mapping with "dag_run" (its .run_type: "manual", "scheduled",
    "backfill", ...), "logical_date", "data_interval_start", "data_interval_end" (tz-aware
    datetimes, or None). Airflow 2's "execution_date", "next_ds" and friends are gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from mlops_lab.errors import InvalidValue
from mlops_lab.pipeline.window import INTERVAL_RUN_TYPES, SOURCES, Window, WindowTooSmall


def resolve_window(params: Mapping[str, Any], context: Mapping[str, Any], started_at: datetime) -> Window:
    """The window of a run from its DAG params, its Airflow task context ({} outside Airflow) and
    the moment it started. Raises InvalidValue for a window that cannot be meant."""
    # TODO(lab-3): three sources, in this order.
    #  1. "explicit": params["window_start"] and params["window_end"] (ISO 8601 text; missing or
    #     "" means not given): a manual run or a backfill names its interval. Only one of the two
    #     is a mistake.
    #  2. "data interval": a DAG run whose run_type is in INTERVAL_RUN_TYPES ("scheduled",
    #     "backfill") is about context["data_interval_start"] .. context["data_interval_end"].
    #  3. "manual": anything else (a manual or asset-triggered run, a run outside Airflow):
    #     everything before started_at (start None).
    #  Refuse with InvalidValue: a time without a time zone (whose midnight?), text that is not
    #  a date, a start that is not before the end, an end after started_at (its data is not all
    #  in yet).
    #  Think about: why is the manual window's end the moment the run started, and not the
    #  moment the extract step runs?
    raise NotImplementedError("TODO(lab-3): the run's data window")


def rows_in_window(frame: pd.DataFrame, window: Window, column: str = "ts") -> pd.DataFrame:
    """The rows of `frame` whose `column` (timestamps) lies in the window: start <= ts < end."""
    # TODO(lab-3): keep start <= ts < end (half-open: consecutive windows never count a row
    #  twice, nor miss one); start None keeps everything before end. The store's timestamps may
    #  come back as naive datetimes (they are UTC) or as text: pd.to_datetime(..., utc=True)
    #  makes them comparable with the window's. An empty frame (no columns at all) stays empty.
    raise NotImplementedError("TODO(lab-3): the rows in the window")


def require_rows(rows: int, window: Window, minimum: int, what: str = "predictions") -> None:
    """Stop the run when the window holds no rows or fewer than `minimum`; the detail names the
    window, the count and the minimum."""
    # TODO(lab-3): raise WindowTooSmall("empty_window", detail) when rows == 0 and
    #  WindowTooSmall("window_too_small", detail) when rows < minimum; the detail says `what`,
    #  how many, the window (window.describe()) and, when too small, the minimum.
    #  Think about: what would the pipeline produce from an empty window if it did not stop?
    raise NotImplementedError("TODO(lab-3): refuse an empty or too small window")
