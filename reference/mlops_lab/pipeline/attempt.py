"""One attempt at one pipeline step, safe to retry (lab 3's `idempotent-step` exercise mirrors it).

    python -m mlops_lab.pipeline.attempt RUN_ID      # each step of a run: finished, for which input

Orchestrators retry: Airflow re-runs a failed task, Kubernetes restarts a crashed pod, a person
re-triggers a run that looked stuck. So every step must be safe to run again after a crash at any
point, before, during or after it wrote its output:

  run_step        runs a step unless its output for this input is already recorded, then records
                  the output atomically (`<step>.json` under the run's directory, with the input
                  key it was computed from); a crash records why in failed.json and re-raises
  version_of_run  the model version an earlier attempt of this run already registered (found by the
                  run's lineage tag in MLflow), so a retried train step never registers a second one

The input key (`rundir.input_key`) is the run id plus what the step reads (the previous step's
output, the data window): a finished step is skipped only for the same key, and re-run, its
output replaced, when what it read has changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mlops_lab.lifecycle.tracking import client_for
from mlops_lab.pipeline.rundir import FAILED_FILE, RunContext, read_json, record_failure, utc_now, write_json
from mlops_lab.pipeline.validate import PipelineStopped
from mlops_lab.settings import Settings

Step = Callable[[RunContext], dict[str, Any]]


def run_step(ctx: RunContext, step: str, fn: Step, input_key: str) -> tuple[dict[str, Any], bool]:
    """Run `fn` as `step` of `ctx`'s run unless it already finished for `input_key`.

    Returns (the recorded output, whether this attempt skipped it). The record is the step's
    outputs plus `input_key`, `finished_at`, `took_s` and `dag_run_id`.
    """
    path = ctx.dir / f"{step}.json"
    done = read_json(path)
    if done is not None and done.get("input_key") == input_key:
        return done, True
    start = time.monotonic()
    try:
        outputs = fn(ctx)
        record = {
            **outputs,
            "input_key": input_key,
            "finished_at": utc_now(),
            "took_s": round(time.monotonic() - start, 2),
            "dag_run_id": ctx.dag_run_id,
        }
        write_json(path, record)  # temp file + rename: a crash leaves no half-written output
    except PipelineStopped as stop:
        record_failure(ctx, step, "stopped", stop.reason, stop.detail)
        raise
    except Exception as exc:
        record_failure(ctx, step, "crashed", type(exc).__name__, str(exc)[:2000])
        raise
    failed = read_json(ctx.dir / FAILED_FILE)
    if failed is not None and failed.get("step") == step:
        (ctx.dir / FAILED_FILE).unlink(missing_ok=True)
    return record, False


def version_of_run(settings: Settings, run_id: str) -> str | None:
    """The version of `settings.model_name` registered from an MLflow run tagged
    `pipeline_run_id = run_id` (None when no attempt of this run got that far)."""
    client = client_for(settings)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id], f"tags.pipeline_run_id = '{run_id}'")
    for run in runs:
        for mv in client.search_model_versions(f"run_id = '{run.info.run_id}'"):
            if mv.name == settings.model_name:
                return str(mv.version)
    return None


def _main() -> None:
    import sys

    from mlops_lab.pipeline.rundir import STEPS, newest_run, run_dir
    from mlops_lab.settings import get_settings

    settings = get_settings()
    run_id = sys.argv[1] if len(sys.argv) > 1 else newest_run(settings)
    if run_id is None:
        raise SystemExit("no pipeline run yet: mlops-lab retrain --in-process")
    for step in STEPS:
        record = read_json(run_dir(settings, run_id) / f"{step}.json")
        status = (
            f"finished {record['finished_at']} for input {record.get('input_key', '?')[:12]}"
            if record
            else "-"
        )
        print(f"{step:17} {status}")


if __name__ == "__main__":
    _main()
