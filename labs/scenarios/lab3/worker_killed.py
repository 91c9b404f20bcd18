"""lab3/worker-killed: the pipeline's process is killed in the middle of a run.

    make scenario S=lab3/worker-killed [IMPL=exercises]

`mlops-lab retrain --in-process` runs in a child process; once extract and validate have
finished it gets SIGKILL (a node drain, the OOM killer): no exception handler, no finally, no
failed.json. What is left is the run directory, the registry and the lock file. The lock must be
free again (the kernel releases an flock with its process), and resuming the same run id must
skip the finished steps, find a version the dead attempt may have registered, and stage exactly
one. The kill lands wherever the child happens to be; the checks hold wherever that is, and the
timeline says where it landed. With IMPL=exercises the child and the resume run your solved
lab 3 modules.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from mlops_lab.labs.impl import REFERENCE
from mlops_lab.labs.scenarios import Context
from mlops_lab.labs.testbed import log_traffic, versions_of_run
from mlops_lab.lifecycle.tracking import CHALLENGER, client_for, version_by_alias
from mlops_lab.pipeline import run as pipeline_run
from mlops_lab.pipeline.guard import RetrainAlreadyRunning, lock_path
from mlops_lab.pipeline.rundir import STEPS, read_result, run_dir
from mlops_lab.settings import Settings, child_env

RUN_ID = "retrain-killed"
REASON = "drift on amount"
BASE_ROWS = 40_000  # enough that the child's train step takes a moment: the kill usually lands in it


def run(ctx: Context) -> None:
    guard = ctx.module("one-retrain")
    ctx.pipeline_home(base_rows=BASE_ROWS)
    s = ctx.settings
    log_traffic(s, "baseline", 2_000, seed=3)
    ctx.info("setup: 2,000 production predictions with their delayed labels in the store")

    log_file = s.home / "logs" / f"{RUN_ID}.log"
    argv = [sys.executable, "-m", "mlops_lab.cli", "retrain", "--in-process", "--run-id", RUN_ID]
    argv += ["--reason", REASON]
    if ctx.impl != REFERENCE:
        argv += ["--impl", ctx.impl, "--learner", ",".join(sorted(ctx.choice.learner))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")} | child_env(s)
    folder = run_dir(s, RUN_ID)
    with open(log_file, "w") as out:
        child = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            ctx.info(f"mlops-lab retrain --in-process --run-id {RUN_ID} started (pid {child.pid})")
            past_validate = ctx.wait_for(
                lambda: (folder / "validate.json").exists() or child.poll() is not None,
                timeout_s=120,
                every_s=0.01,
            )
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)  # this child only, by its pid
                ctx.inject(f"SIGKILL to the pipeline process (pid {child.pid}) once validate.json appeared")
        finally:
            if child.poll() is None:
                child.kill()
            code = child.wait(timeout=30)
    ctx.check(
        past_validate and code == -signal.SIGKILL,
        f"the child died by SIGKILL (exit {code}; log {log_file})",
    )

    # ---- what is left
    at_kill = read_result(s, RUN_ID)
    files = sorted(p.name for p in folder.iterdir())
    registered = versions_of_run(s, RUN_ID)
    runs = mlflow_runs_of(s, RUN_ID)
    done = ", ".join(at_kill.done) or "no step"
    ctx.symptom(f"run {RUN_ID}: {at_kill.status} after {done}; its directory holds {', '.join(files)}")
    ctx.signal(f"kill landed {landing(at_kill.done, registered, runs)}")
    ctx.check(
        at_kill.status in ("incomplete", "crashed"), f"the run directory says {at_kill.status}, not staged"
    )
    ctx.check(
        {"extract", "validate"} <= set(at_kill.done) and not (folder / "stage_challenger.json").exists(),
        "extract and validate were recorded before the kill",
    )
    content = lock_path(s).read_text().strip() if lock_path(s).exists() else ""
    ctx.signal(
        f"the lock file {lock_path(s).name} still reads {content!r} (the dead child was pid {child.pid})"
    )
    try:
        with guard.retrain_lock(s):
            refused = ""
    except RetrainAlreadyRunning as exc:
        refused = str(exc)
    ctx.check(
        not refused,
        f"the retrain lock is free again: the kernel released it with the process {refused}".strip(),
    )

    # ---- resume the same run id
    ctx.mitigate(f"resume the same run id: mlops-lab retrain --in-process --run-id {RUN_ID}")
    result = pipeline_run.retrain(
        s, "a new reason is ignored on resume", in_process=True, run_id=RUN_ID, part=ctx.choice.resolve
    )
    ctx.signal(f"{result.summary()}; skipped {', '.join(result.skipped) or 'nothing'}")
    once = versions_of_run(s, RUN_ID)
    ctx.check(result.status == "staged", f"the resumed run staged a challenger ({result.status})")
    ctx.check(
        len(once) == 1 and once == [result.version], f"exactly one version tagged with {RUN_ID}: {once}"
    )
    ctx.check(
        result.skipped == at_kill.done,
        f"every step finished before the kill was skipped: {', '.join(at_kill.done)}",
    )
    if registered:
        ctx.check(
            registered == once,
            f"v{registered[0]}, registered by the dead attempt, is the run's only version",
        )
    else:
        ctx.info("nothing was registered before the kill: the resumed train step registered the only version")
    ctx.check(result.reason == REASON, f"the run keeps its recorded reason: {result.reason!r}")
    client = client_for(s)
    challenger = version_by_alias(client, s.model_name, CHALLENGER)
    ctx.check(
        challenger is not None and str(challenger.version) == result.version,
        f"@challenger is v{result.version}",
    )
    tags = dict(client.get_model_version(s.model_name, str(result.version)).tags or {})
    ctx.check(
        "decision_threshold" in tags and tags.get("pipeline_run_id") == RUN_ID,
        f"v{result.version} has its threshold ({tags.get('decision_threshold')}) and lineage as tags",
    )


def landing(done: tuple[str, ...], registered: list[str], runs: int) -> str:
    """Where the kill hit, from what each store recorded."""
    after = [step for step in STEPS if step not in done]
    if "train" in done:
        where = after[0] if after else "the last step"
        return f"after train finished (v{registered[0] if registered else '?'} recorded), in {where}"
    if registered:
        return f"after train registered v{registered[0]}, before train.json: the hard case"
    if runs:
        return "mid-train: an MLflow run was started, no version registered yet"
    return "in train before anything was logged (while reading or fitting)"


def mlflow_runs_of(settings: Settings, run_id: str) -> int:
    client = client_for(settings)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        return 0
    return len(client.search_runs([experiment.experiment_id], f"tags.pipeline_run_id = '{run_id}'"))
