"""Lab 3, exercise `idempotent-step`: a pipeline step you can retry after a crash at any point.

    make lab-3        grade it          make hint-3      one more hint
    Reference: reference/mlops_lab/pipeline/attempt.py     Docs: docs/labs/lab-3-orchestration.md

Airflow re-runs a failed task, Kubernetes restarts a crashed pod, a person re-triggers a run that
looked stuck: the pipeline runs `run_step` for every step of every attempt, and a step that is
not safe to run twice duplicates data or registers a second model version. You write:

  run_step        run a step unless its output for this input is already recorded; record the
                  output atomically; record a failure and re-raise it
  version_of_run  the model version an earlier attempt of this run registered (the train step
                  calls it first and trains only when it returns None)

What they work with (all from mlops_lab.pipeline.rundir, already imported below):

    ctx.dir                 the run's directory: home/pipeline/runs/<run_id>/
    ctx.run_id, ctx.dag_run_id
    read_json(path)         the dict in a json file, or None when the file does not exist
    write_json(path, data)  writes a dict as json (atomically: temp file, fsync, rename)
    record_failure(ctx, step, status, reason, detail)   writes failed.json
    FAILED_FILE             "failed.json"
    utc_now()               the time as ISO 8601 text
"""

from __future__ import annotations

import json
import os
import tempfile
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
    # TODO(lab-3): make the step safe to retry.
    #  - Its output lives in ctx.dir / f"{step}.json". When that record exists and its
    #    "input_key" equals input_key, do not call fn: return (the record, True).
    #  - Otherwise call fn(ctx) and write the record, {**outputs, "input_key": ...,
    #    "finished_at": utc_now(), "took_s": seconds it took, "dag_run_id": ctx.dag_run_id},
    #    so that a crash in the middle of writing never leaves a half-written <step>.json (nor a
    #    stray temporary file); return (the record, False).
    #  - When fn or the write raises: record_failure(ctx, step, "stopped", stop.reason,
    #    stop.detail) for a PipelineStopped (a refusal on purpose: bad data, a failed gate),
    #    record_failure(ctx, step, "crashed", type(exc).__name__, str(exc)) for anything else;
    #    then re-raise it.
    #  - After a success, remove failed.json if it recorded a failure of this same step.
    #  Think about: a crash can come before fn returns, while the record is written, or just
    #  after; which of the three must run fn again, and which must not?
    raise NotImplementedError("TODO(lab-3): run a step at most once per input")


def version_of_run(settings: Settings, run_id: str) -> str | None:
    """The version of `settings.model_name` registered from an MLflow run tagged
    `pipeline_run_id = run_id` (None when no attempt of this run got that far)."""
    # TODO(lab-3): find what an earlier attempt registered before it crashed.
    #  The train step logs an MLflow run in the experiment settings.experiment_name with the tag
    #  pipeline_run_id=<run_id>, then registers its model as a version of settings.model_name.
    #  With client = client_for(settings): find the experiment, search its runs by that tag,
    #  then the model versions of those runs; return the version (as a str) of settings.model_name
    #  only (another model may be registered from the same MLflow run), or None.
    #  Think about: why search MLflow instead of trusting train.json in the run directory?
    raise NotImplementedError("TODO(lab-3): the version this run already registered")
