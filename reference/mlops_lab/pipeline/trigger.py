"""How a retraining run is started: the plumbing between whoever asks (the drift monitor, a
user) and the pipeline, locally or in the cluster.

    python -c "from mlops_lab.pipeline import trigger as t; print(t.default_trigger(t.Settings()))"

A trigger is called as `trigger(settings, reason)` (the monitor calls it in a background thread).
It returns anything describable (shown in the monitor's /v1/status), raises
`RetrainAlreadyRunning` when a run is already in progress (counted as `skipped`, nothing
started), or any other error (counted as `failed`). `retrain_backend` picks one:
  - local: the pipeline under a local Airflow (`pipeline.run`), one run at a time by a file lock;
  - kubernetes: one Job per trigger (`pipeline.k8s_job`), one at a time by the Jobs' label;
  - process: the Job's steps in the monitor's own process, without Airflow (the containers of
    reference/compose, where the monitor may not start containers), one at a time by the file lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mlops_lab.pipeline.guard import RetrainAlreadyRunning
from mlops_lab.pipeline.k8s_job import (
    ACTIVE_DEADLINE_S,
    BASE_ROWS,
    SELECTOR,
    JobOutcome,
    batch_api,
    build_retrain_job,
    job_state,
)
from mlops_lab.pipeline.run import retrain
from mlops_lab.settings import Settings

log = logging.getLogger(__name__)

Trigger = Callable[[Settings, str], object]

__all__ = [
    "RetrainAlreadyRunning",
    "Trigger",
    "default_trigger",
    "kubernetes_trigger",
    "pipeline_trigger",
    "process_trigger",
]


def pipeline_trigger(settings: Settings, reason: str) -> object:
    """The local trigger: the retraining pipeline under Airflow.

    A run that reached a verdict is a success, whether it staged a challenger or a step refused
    on purpose (bad data, the gate): the summary says which. A crashed or unfinished run fails.
    """
    result = retrain(settings, reason)
    if result.status in ("crashed", "incomplete"):
        raise RuntimeError(result.summary())
    return result


def process_trigger(settings: Settings, reason: str) -> object:
    """The trigger in a container: the steps the cluster's Job runs, here in this process.

    Like the Job's init container, it first regenerates the base training set when the home
    lacks it (a pure function of scenario, rows and seed: the rows v1 was trained on).
    """
    base = settings.home / "data" / "train.parquet"
    if not base.exists():
        from mlops_lab.data.generator import generate
        from mlops_lab.data.io import write_frame

        write_frame(generate("baseline", BASE_ROWS, seed=settings.seed), base)
    result = retrain(settings, reason, in_process=True)
    if result.status in ("crashed", "incomplete"):
        raise RuntimeError(result.summary())
    return result


def kubernetes_trigger(
    settings: Settings, reason: str, *, api: Any = None, poll_s: float = 5.0
) -> JobOutcome:
    """The monitor's trigger in the cluster: one Job at a time, created, then waited for."""
    api = api if api is not None else batch_api()
    ns = settings.k8s_namespace
    jobs = api.list_namespaced_job(ns, label_selector=SELECTOR).items
    running = [j.metadata.name for j in jobs if job_state(j) is None]
    if running:  # the CronJob's runs carry the same label: one retraining at a time, whoever asked
        raise RetrainAlreadyRunning(f"retraining Job {running[0]} is still running")
    job = build_retrain_job(settings, reason)
    name = job["metadata"]["name"]
    api.create_namespaced_job(ns, job)
    log.info("created Job %s/%s: %s", ns, name, reason)
    deadline = time.monotonic() + ACTIVE_DEADLINE_S + 120
    while time.monotonic() < deadline:
        # GET jobs/NAME carries the status; jobs/status would need a rule of its own in the Role.
        state = job_state(api.read_namespaced_job(name, ns))
        if state == "Complete":
            return JobOutcome(name, ns)
        if state == "Failed":
            raise RuntimeError(f"Job {name} failed: kubectl -n {ns} describe job/{name}")
        time.sleep(poll_s)
    raise RuntimeError(f"Job {name} did not finish in {ACTIVE_DEADLINE_S + 120} s")


def default_trigger(settings: Settings) -> Trigger:
    """The trigger `retrain_backend` names: the local pipeline, a Job in the cluster, or this process."""
    if settings.retrain_backend == "kubernetes":
        return kubernetes_trigger
    if settings.retrain_backend == "process":
        return process_trigger
    return pipeline_trigger
