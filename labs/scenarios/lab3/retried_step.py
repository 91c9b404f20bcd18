"""lab3/retried-step: the train step is retried after it registered a model.

    make scenario S=lab3/retried-step [IMPL=exercises]

The train step fits, logs and registers a version; then the worker dies before train.json is
written (the OOM killer, a lost node). The orchestrator sees a failed task and retries it. A
naive retry trains and registers again: two versions carry the run's id, one an orphan that
nothing will ever evaluate. The idempotent step looks the run's version up first
(`attempt.version_of_run`, by the run's lineage tag) and goes on with it: the resumed run skips
what finished and stages exactly one @challenger. With IMPL=exercises the attempt module
(run_step, version_of_run) is yours.
"""

from __future__ import annotations

import types
from typing import Any

from mlops_lab.labs.scenarios import Context
from mlops_lab.labs.testbed import log_traffic, versions_of_run
from mlops_lab.lifecycle.tracking import CHALLENGER, CHAMPION, client_for, version_by_alias
from mlops_lab.pipeline import steps
from mlops_lab.pipeline.rundir import Part, read_result, run_dir
from mlops_lab.store.db import Store


class WorkerDied(RuntimeError):
    """The injected crash: the process dies right after the step's side effect."""


def run(ctx: Context) -> None:
    attempt = ctx.module("idempotent-step")
    v1 = ctx.pipeline_home()
    s, resolve = ctx.settings, ctx.choice.resolve
    log_traffic(s, "baseline", 1_500, seed=3)
    ctx.info("setup: 1,500 production predictions with their delayed labels in the store")

    # ---- the naive retry: the train task runs again without asking what the run registered
    naive = "nightly-naive"
    crash = crash_once(ctx, naive)
    ctx.info(f"retry of the train task, naive: it trains again without looking up {naive}'s version")
    steps.run_step(s, naive, "train", reason="nightly retrain", part=forgetful(resolve))
    twice = versions_of_run(s, naive)
    ctx.signal(f"versions tagged pipeline_run_id={naive}: {', '.join('v' + v for v in twice)}")
    ctx.check(
        len(twice) == 2, f"the naive retry registered a second model for one run ({len(twice)} versions)"
    )
    ctx.info(f"v{crash} is an orphan: downstream tasks go on with v{twice[-1]}, nothing evaluates v{crash}")

    # ---- the idempotent retry: the same crash, then the run resumed with the attempt module
    run_id = "nightly"
    first = crash_once(ctx, run_id)
    ctx.info(f"resume {run_id} with the idempotent attempt module (run_step + version_of_run)")
    found = attempt.version_of_run(s, run_id)
    ctx.signal(f"version_of_run({run_id!r}) -> v{found}: the version the crashed attempt registered")
    result = steps.run_pipeline(s, run_id, "nightly retrain", part=resolve)
    ctx.signal(f"{result.summary()}; skipped {', '.join(result.skipped) or 'nothing'}")
    once = versions_of_run(s, run_id)
    ctx.check(once == [first], f"exactly one version tagged with {run_id}: v{first} (got {once})")
    ctx.check(result.status == "staged", f"the resumed run finished: {result.status}")
    ctx.check(result.skipped == ("extract", "validate"), "the resumed run skipped extract and validate")
    ctx.check(result.version == first, f"train.json records v{first}, found, not trained again")
    ctx.check(not (result.dir / "failed.json").exists(), "failed.json is gone once train got past the crash")
    client = client_for(s)
    challenger = version_by_alias(client, s.model_name, CHALLENGER)
    champion = version_by_alias(client, s.model_name, CHAMPION)
    store = Store(s.resolved_store_url)
    try:
        staged = [e for e in store.audit_log("stage") if str(e["details"]["version"]) == first]
    finally:
        store.dispose()
    ctx.check(
        challenger is not None and str(challenger.version) == first and len(staged) == 1,
        f"one @challenger: v{first}, staged once in the audit log ({len(staged)} stage entries)",
    )
    ctx.check(champion is not None and str(champion.version) == v1, f"@champion stays on v{v1}")
    ctx.mitigate(
        "key every side effect by run and input, look it up before redoing it, record outputs atomically"
    )


def crash_once(ctx: Context, run_id: str) -> str:
    """Run `run_id` with the worker dying right after train registered its version; return it."""
    s = ctx.settings
    ctx.inject(f"run {run_id}: the worker dies right after train registered its version, before train.json")
    try:
        steps.run_pipeline(s, run_id, "nightly retrain", part=dying_after_train(ctx.choice.resolve))
    except WorkerDied as exc:
        ctx.symptom(f"{run_id} crashed: {exc}")
    crashed = read_result(s, run_id)
    files = sorted(p.name for p in run_dir(s, run_id).glob("*.json"))
    ctx.signal(f"run directory: {', '.join(files)}; {crashed.step} {crashed.status} ({crashed.stop_reason})")
    registered = versions_of_run(s, run_id)
    ctx.check(
        (crashed.status, crashed.step) == ("crashed", "train")
        and "train.json" not in files
        and len(registered) == 1,
        f"the registry has v{registered[0] if registered else '?'} for {run_id}; its run directory does not",
    )
    return registered[0]


def dying_after_train(part: Part) -> Part:
    """`part`, except that the attempt module's train step raises right after the step function
    returned: the version is registered, train.json is never written."""

    def with_crash(name: str) -> types.ModuleType:
        module = part(name)
        if name != steps.ATTEMPT:
            return module

        def run_step(rctx: Any, step: str, fn: Any, input_key: str) -> tuple[dict[str, Any], bool]:
            if step != "train":
                return module.run_step(rctx, step, fn, input_key)  # type: ignore[no-any-return]

            def fn_then_die(c: Any) -> dict[str, Any]:
                out = fn(c)
                raise WorkerDied(f"killed after train registered v{out['version']}, before train.json")

            return module.run_step(rctx, step, fn_then_die, input_key)  # type: ignore[no-any-return]

        return _patched(module, run_step=run_step)

    return with_crash


def forgetful(part: Part) -> Part:
    """`part`, except that version_of_run never finds anything: a train step that always trains."""

    def naive(name: str) -> types.ModuleType:
        module = part(name)
        if name != steps.ATTEMPT:
            return module
        return _patched(module, version_of_run=lambda settings, run_id: None)

    return naive


def _patched(module: types.ModuleType, **overrides: Any) -> types.ModuleType:
    copy = types.ModuleType(module.__name__, module.__doc__)
    copy.__dict__.update(module.__dict__)
    copy.__dict__.update(overrides)
    return copy
