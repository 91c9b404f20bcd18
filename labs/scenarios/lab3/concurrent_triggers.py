"""lab3/concurrent-triggers: two triggers at once, and a promotion during a run.

    make scenario S=lab3/concurrent-triggers [IMPL=exercises]

The drift monitor triggers a retrain; while its run holds the retrain lock, a person triggers
another: the second trigger must fail at once with RetrainAlreadyRunning, and only one run
exists. Then a nightly run trains while someone promotes the last challenger to @champion: the
run was judged against the old champion, so its stage_challenger step, a compare-and-set, stops
it with champion_moved and @challenger does not move. Retrying that run changes nothing; a fresh
trigger, against the new champion, stages. With IMPL=exercises the lock and the compare-and-set
are yours (exercises/lab3/guard.py).
"""

from __future__ import annotations

import os
import threading
import time
import types
from collections.abc import Callable
from typing import Any

from mlops_lab.labs.scenarios import Context
from mlops_lab.labs.testbed import log_traffic
from mlops_lab.lifecycle import registry
from mlops_lab.lifecycle.tracking import CHALLENGER, CHAMPION, client_for, version_by_alias
from mlops_lab.pipeline import run as pipeline_run
from mlops_lab.pipeline import steps
from mlops_lab.pipeline.guard import RetrainAlreadyRunning
from mlops_lab.pipeline.rundir import Part, PipelineResult, read_json, runs_dir
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store


def run(ctx: Context) -> None:
    ctx.module("one-retrain")  # resolved through ctx.choice.resolve by every run below
    v1 = ctx.pipeline_home()
    s, resolve = ctx.settings, ctx.choice.resolve
    log_traffic(s, "baseline", 1_500, seed=3)
    ctx.info("setup: 1,500 production predictions with their delayed labels in the store")

    # ---- two triggers at once
    at_extract, go_on = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def hold() -> None:  # the first run has the lock: it waits here until released
        at_extract.set()
        go_on.wait(30)

    def monitor() -> None:
        try:
            outcome["result"] = pipeline_run.retrain(
                s,
                "drift monitor: amount",
                in_process=True,
                run_id="retrain-monitor",
                part=around(resolve, "extract", before=hold),
            )
        except Exception as exc:  # reported by the checks below
            outcome["error"] = exc

    thread = threading.Thread(target=monitor, name="monitor-trigger")
    thread.start()
    second: Exception | None = None
    try:
        ctx.check(
            at_extract.wait(60), "the monitor's run holds the lock (it waits at extract until released)"
        )
        ctx.inject("a person triggers a retrain while the monitor's run is in progress")
        asked = time.monotonic()
        try:
            pipeline_run.retrain(s, "manual: alice", in_process=True, run_id="retrain-alice", part=resolve)
        except Exception as exc:
            second = exc
        took_ms = (time.monotonic() - asked) * 1000
        what = f"{type(second).__name__}: {second}" if second else "no error, a second run started"
        ctx.signal(f"second trigger, answered in {took_ms:.1f} ms: {what}")
        ctx.check(
            isinstance(second, RetrainAlreadyRunning) and took_ms < 5_000,
            "the second trigger gets RetrainAlreadyRunning at once, while the first run goes on",
        )
    finally:
        go_on.set()
        thread.join(180)
    ctx.info(
        f"the holder is the monitor's thread, in this process (pid {os.getpid()}): threads are triggers too"
    )
    started = sorted(p.name for p in runs_dir(s).iterdir())
    ctx.check(started == ["retrain-monitor"], f"exactly one run was started: {started}")
    first: PipelineResult | None = outcome.get("result")
    ctx.check(
        first is not None and first.status == "staged",
        f"the monitor's run finished: {first.summary() if first else outcome.get('error')}",
    )
    assert first is not None and first.version is not None
    v2 = first.version

    # ---- @champion moves while a run is between train and stage_challenger
    client = client_for(s)
    before = version_by_alias(client, s.model_name, CHALLENGER)
    challenger_before = str(before.version) if before is not None else None

    def alice_promotes() -> None:
        store = Store(s.resolved_store_url)
        try:
            registry.promote(client, store, s.model_name, v2, actor="alice", reason="v2's canary passed")
        finally:
            store.dispose()
        ctx.inject(f"while run retrain-stale is past evaluate, alice promotes v{v2} to @champion")

    stale = pipeline_run.retrain(
        s,
        "nightly",
        in_process=True,
        run_id="retrain-stale",
        part=around(resolve, "evaluate", after=alice_promotes),
    )
    judged = (read_json(stale.dir / "evaluate.json") or {}).get("champion_version")
    ctx.symptom(
        f"retrain-stale trained v{stale.version} from v{stale.parent_version}, judged it against v{judged}"
    )
    ctx.check(
        str(judged) == v1 == stale.parent_version,
        f"it was judged against its parent v{v1}, no longer @champion",
    )
    ctx.signal(stale.summary())
    ctx.check(
        (stale.status, stale.step, stale.stop_reason) == ("stopped", "stage_challenger", "champion_moved"),
        "the stale run stopped at stage_challenger with champion_moved",
    )
    challenger = version_by_alias(client, s.model_name, CHALLENGER)
    champion = version_by_alias(client, s.model_name, CHAMPION)
    ctx.check(
        challenger is not None and str(challenger.version) == challenger_before,
        f"@challenger did not move: v{challenger_before}",
    )
    ctx.check(
        champion is not None and str(champion.version) == v2, f"@champion stays where alice put it: v{v2}"
    )
    staged = staged_versions(s)
    ctx.signal(f"audit log, stage entries: {', '.join('v' + v for v in staged)}")
    ctx.check(stale.version not in staged, f"the audit log shows no stage of v{stale.version}")

    retried = pipeline_run.retrain(s, "nightly", in_process=True, run_id="retrain-stale", part=resolve)
    ctx.signal(f"retrying retrain-stale: {retried.stop_reason} again; skipped {', '.join(retried.skipped)}")
    ctx.check(retried.stop_reason == "champion_moved", "a retry of the stale run cannot stage it either")

    # ---- a fresh trigger, against the new champion
    ctx.mitigate(f"trigger a new run: it extracts with @champion v{v2} as its parent")
    fresh = pipeline_run.retrain(s, "re-trigger after the promotion", in_process=True, part=resolve)
    ctx.signal(fresh.summary())
    challenger = version_by_alias(client, s.model_name, CHALLENGER)
    ctx.check(
        fresh.status == "staged" and fresh.parent_version == v2,
        f"the fresh run staged v{fresh.version} against v{fresh.parent_version}",
    )
    ctx.check(
        challenger is not None
        and str(challenger.version) == fresh.version
        and fresh.version in staged_versions(s),
        f"@challenger -> v{fresh.version}, audited as a stage",
    )


def around(
    part: Part, step: str, *, before: Callable[[], Any] | None = None, after: Callable[[], Any] | None = None
) -> Part:
    """`part`, except that the attempt module calls `before()` ahead of `step` and `after()` once
    it finished (the injection points: an Event to hold the lock, a promotion mid-run)."""

    def wrapped(name: str) -> types.ModuleType:
        module = part(name)
        if name != steps.ATTEMPT:
            return module

        def run_step(rctx: Any, this: str, fn: Any, input_key: str) -> tuple[dict[str, Any], bool]:
            if this == step and before is not None:
                before()
            out = module.run_step(rctx, this, fn, input_key)
            if this == step and after is not None:
                after()
            return out  # type: ignore[no-any-return]

        copy = types.ModuleType(module.__name__, module.__doc__)
        copy.__dict__.update(module.__dict__)
        copy.run_step = run_step  # type: ignore[attr-defined]
        return copy

    return wrapped


def staged_versions(settings: Settings) -> list[str]:
    store = Store(settings.resolved_store_url)
    try:
        return [str(e["details"]["version"]) for e in store.audit_log("stage")]
    finally:
        store.dispose()
