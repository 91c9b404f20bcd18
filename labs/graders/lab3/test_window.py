"""Grader of lab 3 / data-window (exercises/lab3/window.py): a run reads a fixed interval, never "now".

`resolve_window` is called as the pipeline calls it when a run starts (`rundir.begin_run`): with
the DAG params, the Airflow 3 task context (a plain dict holding only the keys Airflow 3 gives a
task: no `execution_date`) and the moment the run started. `rows_in_window` gets frames as the
store returns them (naive UTC timestamps) and as text; `require_rows` the counts extract sees.
The last check runs the reference pipeline, with this window module, over an empty backfill
window: real store, real MLflow (SQLite), about five seconds.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from mlops_lab.errors import InvalidValue
from mlops_lab.pipeline.validate import PipelineStopped
from mlops_lab.pipeline.window import Window

T0 = datetime(2026, 11, 30, tzinfo=UTC)  # the interval a daily run is about: [T0, T1)
T1 = T0 + timedelta(days=1)
STARTED = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)  # when the run started (after its interval)
PLUS_TWO = timezone(timedelta(hours=2))


class DagRunType(str, Enum):  # noqa: UP042 (not a StrEnum: Airflow's str() differs)
    """Airflow 3's DagRunType as a task sees it (airflow.sdk.api.datamodels): a str enum, whose
    str() is "DagRunType.SCHEDULED", not "scheduled"."""

    BACKFILL = "backfill"
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    ASSET_TRIGGERED = "asset_triggered"


@dataclass(frozen=True)
class DagRun:
    """The part of Airflow 3's DagRun (context["dag_run"]) a task reads: attributes, not keys."""

    run_id: str
    run_type: Any
    logical_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None


def context(run_type: Any, start: datetime | None = T0, end: datetime | None = T1) -> dict[str, Any]:
    """An Airflow 3 task context: only Airflow 3's keys (no execution_date, next_ds, ...)."""
    kind = getattr(run_type, "value", run_type)
    run = DagRun(f"{kind}__{(start or STARTED).isoformat()}", run_type, start, start, end)
    return {"dag_run": run, "logical_date": start, "data_interval_start": start, "data_interval_end": end}


def resolve(
    impl: ModuleType, params: Mapping[str, Any], ctx: Mapping[str, Any], started: datetime = STARTED
) -> Any:
    """The window, or a failed check naming what was raised instead."""
    try:
        return impl.resolve_window(params, ctx, started)
    except NotImplementedError:
        raise
    except Exception as exc:
        pytest.fail(
            f"expected a window for params {dict(params)} and a {run_type_of(ctx)} run, "
            f"got {exc.__class__.__name__}: {exc}",
            pytrace=False,
        )


def refused(impl: ModuleType, params: Mapping[str, Any], ctx: Mapping[str, Any] | None = None) -> None:
    """resolve_window must raise InvalidValue (not another error, not a window)."""
    try:
        window = impl.resolve_window(params, ctx or {}, STARTED)
    except NotImplementedError:
        raise
    except InvalidValue:
        return
    except Exception as exc:
        pytest.fail(
            f"expected InvalidValue for params {dict(params)}, got {exc.__class__.__name__}: {exc}",
            pytrace=False,
        )
    pytest.fail(f"expected InvalidValue for params {dict(params)}, got the window {shown(window)}")


def run_type_of(ctx: Mapping[str, Any]) -> str:
    run = ctx.get("dag_run")
    return str(getattr(getattr(run, "run_type", None), "value", "non-Airflow"))


def shown(window: Any) -> str:
    return f"({window.start!s}, {window.end!s}, {window.source!r})"


def expect(window: Any, start: datetime | None, end: datetime, source: str) -> None:
    got = (window.start, window.end, window.source)
    assert got == (start, end, source), (
        f"expected the window ({start!s}, {end!s}, {source!r}), got {shown(window)}"
    )


def explicit(start: str, end: str) -> dict[str, str]:
    return {"window_start": start, "window_end": end, "reason": "backfill"}


def frame(times: list[Any], index: list[int] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"id": range(len(times)), "ts": times, "amount": 1.0}, index=index)


def kept(impl: ModuleType, rows: pd.DataFrame, window: Window, column: str = "ts") -> list[int]:
    out = impl.rows_in_window(rows, window, column)
    return [int(i) for i in out["id"]]


def stopped(impl: ModuleType, rows: int, window: Window, minimum: int, what: str = "predictions") -> Any:
    """What require_rows raised (a failed check when it raised nothing or something else)."""
    try:
        impl.require_rows(rows, window, minimum, what)
    except NotImplementedError:
        raise
    except PipelineStopped as stop:
        return stop
    except Exception as exc:
        pytest.fail(
            f"expected a WindowTooSmall for {rows} rows (minimum {minimum}), "
            f"got {exc.__class__.__name__}: {exc}",
            pytrace=False,
        )
    pytest.fail(f"expected a WindowTooSmall for {rows} rows (minimum {minimum}), got no stop")


def names_window(detail: str, window: Window) -> bool:
    """The detail names both ends of the window (ISO 8601, or str() of the datetimes)."""
    ends = [window.start, window.end] if window.start is not None else [window.end]
    return all(e.isoformat() in detail or str(e) in detail for e in ends)


def has_number(text: str, n: int) -> bool:
    return re.search(rf"(?<![\d,.]){n:,}(?![\d,])|(?<![\d,.]){n}(?![\d,])", text) is not None


# ---------------------------------------------------------------- resolve_window
def test_explicit_window(impl: ModuleType) -> None:
    """an explicit window_start/window_end (ISO 8601 with a time zone) is the window

    datetime.fromisoformat(text) keeps the offset: 01:00+01:00 is midnight UTC.
    """
    params = explicit("2026-11-30T01:00:00+01:00", "2026-12-01T00:00:00+00:00")
    expect(resolve(impl, params, {}), T0, T1, "explicit")


def test_one_bound_only(impl: ModuleType) -> None:
    """only one of window_start and window_end is refused (InvalidValue)

    A window needs both ends; "" (the DAG param's default) means not given.
    """
    refused(impl, {"window_start": "2026-11-30T00:00:00+00:00", "window_end": ""})
    refused(impl, {"window_end": "2026-12-01T00:00:00+00:00"})


def test_naive_time(impl: ModuleType) -> None:
    """a time without a time zone is refused (InvalidValue)

    Whose midnight would 2026-11-30T00:00:00 be? .tzinfo is None for a naive datetime.
    """
    refused(impl, explicit("2026-11-30T00:00:00", "2026-12-01T00:00:00"))
    refused(impl, explicit("2026-11-30T00:00:00+00:00", "2026-12-01T00:00:00"))


def test_not_a_date(impl: ModuleType) -> None:
    """text that is not a date is refused with InvalidValue, not a bare ValueError

    Catch fromisoformat's ValueError and raise InvalidValue with the param's name: the CLI shows
    an InvalidValue as one line the user can act on.
    """
    refused(impl, explicit("yesterday", "2026-12-01T00:00:00+00:00"))
    refused(impl, explicit("2026-11-30T00:00:00+00:00", "2026-13-01T00:00:00+00:00"))


def test_start_not_before_end(impl: ModuleType) -> None:
    """a window whose start is not before its end is refused (InvalidValue)

    [start, end) with start == end holds nothing: that is a typo, not a window.
    """
    refused(impl, explicit("2026-12-01T00:00:00+00:00", "2026-11-30T00:00:00+00:00"))
    refused(impl, explicit("2026-11-30T00:00:00+00:00", "2026-11-30T00:00:00+00:00"))
    refused(impl, explicit("2026-11-30T02:00:00+02:00", "2026-11-30T00:00:00+00:00"))  # the same instant


def test_end_after_run_started(impl: ModuleType) -> None:
    """a window that ends after the run started is refused (InvalidValue)

    Its data is not all there yet: a retry later would read more rows than the first attempt.
    """
    refused(impl, explicit("2026-11-30T00:00:00+00:00", "2026-12-01T06:00:01+00:00"))


def test_scheduled_run(impl: ModuleType) -> None:
    """a scheduled DAG run reads its data interval

    context["data_interval_start"] and context["data_interval_end"]: the Airflow 3 names.
    """
    expect(resolve(impl, {}, context("scheduled")), T0, T1, "data interval")


def test_run_type_enum(impl: ModuleType) -> None:
    """a scheduled or backfill run whose run_type is Airflow's DagRunType (a str enum) reads its data interval

    str(DagRunType.BACKFILL) is "DagRunType.BACKFILL": compare the enum's value,
    getattr(run_type, "value", run_type), not its str().
    """
    for run_type in (DagRunType.SCHEDULED, DagRunType.BACKFILL):
        expect(resolve(impl, {}, context(run_type)), T0, T1, "data interval")


def test_airflow3_context(impl: ModuleType) -> None:
    """an Airflow 3 context has no execution_date: the window comes from the data interval

    Airflow 3 removed execution_date (and next_ds, prev_ds, ...); the context here holds dag_run,
    logical_date, data_interval_start and data_interval_end only. Read context.get(...) with the
    Airflow 3 names.
    """
    ctx = context(DagRunType.BACKFILL, T0 - timedelta(days=3), T0 - timedelta(days=2))
    assert "execution_date" not in ctx
    expect(resolve(impl, {}, ctx), T0 - timedelta(days=3), T0 - timedelta(days=2), "data interval")


def test_manual_run(impl: ModuleType) -> None:
    """a manual run ignores its data interval: everything before the run started (source manual)

    A manual run's data interval means nothing (degenerate, start == end, for a DAG with
    schedule=None; the last complete interval for a scheduled DAG triggered by hand): only
    INTERVAL_RUN_TYPES read it. The end is started_at, never the time extract runs.
    """
    degenerate = T1 - timedelta(hours=1)
    for ctx in (
        context(DagRunType.MANUAL, degenerate, degenerate),
        context(DagRunType.MANUAL),
        context("manual", None, None),
    ):
        expect(resolve(impl, {}, ctx), None, STARTED, "manual")


def test_asset_triggered_run(impl: ModuleType) -> None:
    """an asset-triggered run is not about its data interval either: the manual window

    Only "scheduled" and "backfill" runs (INTERVAL_RUN_TYPES) are about their data interval.
    """
    expect(resolve(impl, {}, context(DagRunType.ASSET_TRIGGERED)), None, STARTED, "manual")


def test_outside_airflow(impl: ModuleType) -> None:
    """outside Airflow ({} context) without a window: the manual window, ending when the run started"""
    for params in ({}, {"window_start": "", "window_end": ""}, {"window_start": None, "window_end": None}):
        expect(resolve(impl, params, {}), None, STARTED, "manual")


def test_explicit_wins(impl: ModuleType) -> None:
    """explicit params win over a scheduled run's data interval

    A backfill names its interval in params; the DAG run's own interval is another one.
    """
    params = explicit("2026-11-28T00:00:00+00:00", "2026-11-29T00:00:00+00:00")
    window = resolve(impl, params, context(DagRunType.SCHEDULED))
    expect(window, T0 - timedelta(days=2), T0 - timedelta(days=1), "explicit")


# ---------------------------------------------------------------- rows_in_window
def test_half_open(impl: ModuleType) -> None:
    """rows_in_window keeps start <= ts < end: a row at the start is in, a row at the end is out"""
    us = timedelta(microseconds=1)
    rows = frame([T0 - us, T0, T0 + timedelta(hours=5), T1 - us, T1, T1 + us])
    got = kept(impl, rows, Window(T0, T1, "explicit"))
    assert got == [1, 2, 3], f"expected the rows at start, 05:00 and end-1µs ([1, 2, 3]), got {got}"


def test_consecutive_windows(impl: ModuleType) -> None:
    """two consecutive windows partition the rows: none counted twice, none missed

    Half-open windows [a, b) and [b, c) share no instant and leave none out.
    """
    times = [T0 - timedelta(hours=6) + timedelta(minutes=30 * i) for i in range(4 * 48)]
    rows = frame(times)
    day = timedelta(days=1)
    first = set(kept(impl, rows, Window(T0, T0 + day, "data interval")))
    second = set(kept(impl, rows, Window(T0 + day, T0 + 2 * day, "data interval")))
    twice = sorted(first & second)
    assert not twice, (
        f"expected no row in both windows, got rows counted twice at {[times[i] for i in twice]}"
    )
    want = {i for i, t in enumerate(times) if T0 <= t < T0 + 2 * day}
    missed = sorted(want - first - second)
    assert not missed, (
        f"expected every row of the two days once, got rows missed at {[times[i] for i in missed]}"
    )


def test_naive_timestamps(impl: ModuleType) -> None:
    """naive timestamps (as the store returns them) are UTC, whatever the window's time zone

    pd.to_datetime(frame[column], utc=True) reads a naive time as UTC.
    """
    naive = [
        datetime(2026, 11, 29, 21, 30),  # 23:30+02:00: before the window
        datetime(2026, 11, 29, 22, 0),  # the window's start in UTC
        datetime(2026, 11, 29, 23, 0),
        datetime(2026, 11, 30, 3, 59),
        datetime(2026, 11, 30, 4, 0),  # the window's end in UTC
        datetime(2026, 11, 30, 5, 0),
    ]
    window = Window(
        datetime(2026, 11, 30, tzinfo=PLUS_TWO), datetime(2026, 11, 30, 6, tzinfo=PLUS_TWO), "explicit"
    )
    got = kept(impl, frame(naive), window)
    assert got == [1, 2, 3], (
        f"expected the naive (UTC) times 22:00, 23:00 and 03:59 in [00:00+02:00, 06:00+02:00) "
        f"([1, 2, 3]), got {got}"
    )


def test_text_timestamps(impl: ModuleType) -> None:
    """timestamps stored as ISO 8601 text, in any column, are compared as times"""
    texts = [
        "2026-11-29T23:59:59+00:00",
        "2026-11-30T01:00:00+01:00",  # the start, written in another time zone
        "2026-11-30T12:00:00+00:00",
        "2026-12-01T00:00:00+00:00",
    ]
    rows = pd.DataFrame({"id": range(4), "created_at": texts})
    got = kept(impl, rows, Window(T0, T1, "explicit"), column="created_at")
    assert got == [1, 2], f"expected the rows at the start and at noon ([1, 2]), got {got}"


def test_open_start(impl: ModuleType) -> None:
    """a window without a start (a manual run) keeps every row before its end"""
    rows = frame([datetime(2020, 1, 1, tzinfo=UTC), T0, STARTED - timedelta(seconds=1), STARTED])
    got = kept(impl, rows, Window(None, STARTED, "manual"))
    assert got == [0, 1, 2], f"expected every row before the end ([0, 1, 2]), got {got}"


def test_empty_frame(impl: ModuleType) -> None:
    """an empty frame (no rows, not even a ts column) stays empty instead of failing

    The store returns DataFrame() when nothing was ever logged.
    """
    window = Window(T0, T1, "explicit")
    for rows in (pd.DataFrame(), pd.DataFrame({"id": [], "ts": []})):
        out = impl.rows_in_window(rows, window)
        assert isinstance(out, pd.DataFrame) and out.empty, f"expected an empty DataFrame, got {out!r}"


def test_index_reset(impl: ModuleType) -> None:
    """the rows kept are in their order, with a fresh 0..n-1 index

    frame[mask.to_numpy()].reset_index(drop=True): later steps concatenate and slice by position.
    """
    times = [T0 + timedelta(hours=h) for h in (3, 30, 1, 2, -1, 4)]
    rows = frame(times, index=[50, 10, 40, 30, 20, 0])
    out = impl.rows_in_window(rows, Window(T0, T1, "explicit"))
    got = [int(i) for i in out["id"]]
    assert got == [0, 2, 3, 5], f"expected the rows [0, 2, 3, 5] in their order, got {got}"
    assert list(out.index) == list(range(len(out))), (
        f"expected the index 0..{len(out) - 1}, got {list(out.index)}"
    )
    assert list(out.columns) == list(rows.columns), (
        f"expected the columns {list(rows.columns)}, got {list(out.columns)}"
    )


# ---------------------------------------------------------------- require_rows
def test_empty_window(impl: ModuleType) -> None:
    """no rows stops the run at extract with empty_window, naming the window

    raise WindowTooSmall("empty_window", detail): a PipelineStopped whose step is "extract".
    """
    window = Window(T0, T1, "explicit")
    stop = stopped(impl, 0, window, 200)
    got = (stop.step, stop.reason)
    assert got == ("extract", "empty_window"), f"expected a stop at extract with empty_window, got {got}"
    assert names_window(stop.detail, window), (
        f"expected the detail to name the window {window.describe()}, got {stop.detail!r}"
    )


def test_too_small_window(impl: ModuleType) -> None:
    """fewer rows than the minimum stops the run with window_too_small, naming count, minimum, window"""
    window = Window(None, STARTED, "manual")
    stop = stopped(impl, 137, window, 200, "labelled rows")
    got = (stop.step, stop.reason)
    assert got == ("extract", "window_too_small"), (
        f"expected a stop at extract with window_too_small, got {got}"
    )
    detail = stop.detail
    missing = [
        what
        for what, ok in (
            ("the count 137", has_number(detail, 137)),
            ("the minimum 200", has_number(detail, 200)),
            ("what was counted ('labelled rows')", "labelled rows" in detail),
            (f"the window {window.describe()}", names_window(detail, window)),
        )
        if not ok
    ]
    assert not missing, f"expected the detail to give {', '.join(missing)}, got {detail!r}"


def test_enough_rows(impl: ModuleType) -> None:
    """exactly the minimum, or more, lets the run go on (require_rows returns None)

    Fewer than the minimum stops: the minimum itself is enough (<, not <=).
    """
    window = Window(T0, T1, "explicit")
    for rows in (200, 201, 50_000):
        try:
            out = impl.require_rows(rows, window, 200)
        except NotImplementedError:
            raise
        except Exception as exc:
            pytest.fail(f"expected {rows} rows (minimum 200) to pass, got {exc.__class__.__name__}: {exc}")
        assert out is None, f"expected None for {rows} rows, got {out!r}"


# ---------------------------------------------------------------- the pipeline, with this window
def test_empty_backfill_pipeline(impl: ModuleType, tmp_path: Path) -> None:
    """a pipeline run over an empty backfill window stops at extract and registers nothing

    The reference pipeline, with your window module, over a store holding today's predictions
    and a backfill of 2020-01-01: an empty window must stop the run, never train on nothing.
    """
    from mlops_lab.data.generator import generate
    from mlops_lab.data.schema import SCHEMA
    from mlops_lab.lifecycle.tracking import client_for
    from mlops_lab.pipeline import steps
    from mlops_lab.settings import Settings
    from mlops_lab.store.db import Store

    settings = Settings(home=tmp_path, store_url=f"sqlite:///{tmp_path / 'store.db'}")
    settings = settings.model_copy(update={"tracking_uri": settings.mlflow_sqlite_uri})
    now = datetime.now(UTC) - timedelta(minutes=1)
    features = generate("baseline", 300, seed=5)[SCHEMA.names].to_dict("records")
    store = Store(settings.resolved_store_url)
    try:
        store.insert_predictions(
            [
                {"request_id": f"r{i}", "ts": now, "variant": "stable", "model_version": "1", "features": f}
                | {"score": 0.02, "decision": False, "latency_ms": 1.0}
                for i, f in enumerate(features)
            ]
        )
    finally:
        store.dispose()

    def part(name: str) -> ModuleType:
        return impl if name == steps.WINDOW else importlib.import_module(name)

    params = explicit("2020-01-01T00:00:00+00:00", "2020-01-02T00:00:00+00:00")
    result = steps.run_pipeline(settings, "empty-backfill", "backfill", params=params, part=part)
    got = (result.status, result.step, result.stop_reason)
    assert got == ("stopped", "extract", "empty_window"), (
        f"expected the run stopped at extract with empty_window, got {result.summary()}"
    )
    versions = client_for(settings).search_model_versions()
    assert result.version is None and not versions, (
        f"expected no version registered, got {[(v.name, v.version) for v in versions]}"
    )
