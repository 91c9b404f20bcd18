"""lab3/empty-backfill: a backfill over an interval with no predictions.

    make scenario S=lab3/empty-backfill [IMPL=exercises]

Someone backfills the retraining for one day with
`mlops-lab retrain --in-process --window-start ... --window-end ...`, but types the wrong year:
the interval holds no predictions (a missing partition looks the same). The run must stop at
extract with `empty_window` and the window in its detail, register nothing and leave @champion
alone, instead of re-fitting the base set and calling that a retrain. The same backfill over
the right day passes extract and stages. With IMPL=exercises the data window is yours
(exercises/lab3/window.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from mlops_lab.labs.scenarios import Context
from mlops_lab.labs.testbed import log_traffic, versions
from mlops_lab.lifecycle.tracking import CHAMPION, client_for, version_by_alias
from mlops_lab.pipeline import run as pipeline_run
from mlops_lab.pipeline.rundir import RUN_FILE, read_json
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

ROWS = 1_500


def run(ctx: Context) -> None:
    ctx.module("data-window")  # resolved through ctx.choice.resolve by the runs below
    v1 = ctx.pipeline_home()
    s, resolve = ctx.settings, ctx.choice.resolve
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    log_traffic(
        s,
        "baseline",
        ROWS,
        seed=3,
        at=day + timedelta(hours=1),
        span=timedelta(hours=22),
        label_delay=timedelta(hours=1),
    )
    ctx.info(f"setup: {ROWS:,} labelled predictions logged on {day:%Y-%m-%d} between 01:00 and 23:00 UTC")

    typo = day - timedelta(days=365)
    wrong = {"window_start": typo.isoformat(), "window_end": (typo + timedelta(days=1)).isoformat()}
    client = client_for(s)
    before = versions(s)
    span = f"{wrong['window_start']} to {wrong['window_end']}"
    ctx.inject(f"a backfill of {day:%Y-%m-%d} typed with the wrong year: {span}")
    empty = pipeline_run.retrain(
        s, f"backfill {day:%Y-%m-%d}", in_process=True, run_id="backfill-typo", params=wrong, part=resolve
    )
    stored = logged_at(s)
    inside = int(((stored >= typo) & (stored < typo + timedelta(days=1))).sum())
    ctx.symptom(
        f"the store holds {len(stored):,} predictions, from {stored.min():%Y-%m-%d %H:%M} to "
        f"{stored.max():%Y-%m-%d %H:%M} UTC: {inside} in that window"
    )
    ctx.signal(empty.summary())
    ctx.check(
        (empty.status, empty.step, empty.stop_reason) == ("stopped", "extract", "empty_window"),
        "the run stopped at extract with empty_window",
    )
    ctx.check(wrong["window_start"] in (empty.detail or ""), "the detail names the window")
    recorded = (read_json(empty.dir / RUN_FILE) or {}).get("window", {})
    ctx.check(
        recorded.get("start") == wrong["window_start"] and recorded.get("source") == "explicit",
        f"run.json records the explicit window it was asked for: {recorded.get('start')}",
    )
    after = versions(s)
    ctx.check(
        after == before and empty.version is None, f"no version registered ({len(before)} before and after)"
    )
    champion = version_by_alias(client, s.model_name, CHAMPION)
    ctx.check(champion is not None and str(champion.version) == v1, f"@champion untouched: v{v1}")

    right = {"window_start": day.isoformat(), "window_end": (day + timedelta(days=1)).isoformat()}
    ctx.mitigate(
        f"fix the dates and run the backfill again: {right['window_start']} to {right['window_end']}"
    )
    fixed = pipeline_run.retrain(
        s, f"backfill {day:%Y-%m-%d}", in_process=True, run_id="backfill", params=right, part=resolve
    )
    ctx.signal(fixed.summary())
    extracted = read_json(fixed.dir / "extract.json") or {}
    ctx.check(
        "extract" in fixed.done and extracted.get("new_rows") == ROWS,
        f"extract read the day's {extracted.get('new_rows', 0):,} labelled rows",
    )
    ctx.check(fixed.status == "staged", f"the backfill staged v{fixed.version} as @challenger")


def logged_at(settings: Settings) -> pd.Series:
    """When each stable-variant prediction in the store was logged (UTC)."""
    store = Store(settings.resolved_store_url)
    try:
        return pd.to_datetime(store.predictions_frame(variant="stable")["ts"], utc=True)
    finally:
        store.dispose()
