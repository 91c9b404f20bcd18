"""A solution of lab 3's `idempotent-step` (exercises/lab3/attempt.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab3/idempotent-step.toml applied to it (a check must fail on each).
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
    output = ctx.dir / f"{step}.json"
    # The record is the proof that the step finished, but only for what it read: the same run
    # re-run over another window (or after the previous step was redone) must compute it again.
    earlier = read_json(output)
    if earlier is not None and earlier.get("input_key") == input_key:
        # Not calling fn is the point: whatever it did (register a version, write a frame) is done.
        return earlier, True

    started = time.monotonic()
    # fn and the write share one try: a crash in either is a failed attempt, recorded as such,
    # and leaves no record behind, so the retry runs fn again. The write is the commit point: a
    # crash after it (in the next step) finds the record and skips this step.
    try:
        outputs = fn(ctx)
        record = dict(outputs)
        record["input_key"] = input_key
        record["finished_at"] = utc_now()
        record["took_s"] = round(time.monotonic() - started, 3)
        record["dag_run_id"] = ctx.dag_run_id  # which attempt did the work (Airflow's try, a resume)
        # write_json writes a temp file next to it, fsyncs, then os.replace()s it over the record
        # (and removes the temp file if it fails): a crash halfway leaves the old state, never half
        # a json that the retry could not even read.
        write_json(output, record)
    except PipelineStopped as stop:
        # A refusal on purpose (bad data, a failed gate) is an outcome, not a bug: "stopped" tells
        # the person reading the run that retrying will not help, fixing the data will.
        record_failure(ctx, step, "stopped", stop.reason, stop.detail)
        raise
    except Exception as exc:
        record_failure(ctx, step, "crashed", type(exc).__name__, str(exc))
        raise  # the orchestrator decides about retries; it must see the failure

    # This step got past the point where it failed before. A failure recorded by another step is
    # still that step's news: a re-run extract does not make a failed validate pass.
    failure = read_json(ctx.dir / FAILED_FILE)
    if failure is not None and failure.get("step") == step:
        (ctx.dir / FAILED_FILE).unlink(missing_ok=True)
    return record, False


def version_of_run(settings: Settings, run_id: str) -> str | None:
    """The version of `settings.model_name` registered from an MLflow run tagged
    `pipeline_run_id = run_id` (None when no attempt of this run got that far)."""
    # Why MLflow and not train.json: train.json is written after train returns, so an attempt
    # killed between register_model and that write leaves a version only the registry knows of.
    # The MLflow run gets its pipeline_run_id tag when it starts, before anything is registered
    # (the version's own tags come after registering: a crash can skip them).
    client = client_for(settings)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is None:  # nothing was ever trained in this registry, by this run or any other
        return None
    runs = client.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.pipeline_run_id = '{run_id}'",
    )
    for mlflow_run in runs:
        # One MLflow run may register several models (a calibrator, a shadow model): ask for ours.
        found = client.search_model_versions(
            f"name = '{settings.model_name}' and run_id = '{mlflow_run.info.run_id}'"
        )
        if found:
            # MLflow hands versions back as int; every record of the pipeline (and the registry's
            # get_model_version) speaks str.
            return str(found[0].version)
    return None
