"""A solution of lab 3's `retrain-job` (exercises/lab3/k8s_job.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab3/retrain-job.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

from typing import Any

from mlops_lab.pipeline.k8s_job import (
    ACTIVE_DEADLINE_S,
    BACKOFF_LIMIT,
    COMPONENT,
    GPU_NODE_LABEL,
    GPU_RESOURCE,
    HOME,
    INIT_RESOURCES,
    LABELS,
    POD_SECURITY,
    RESOURCES,
    SECRET_ENV,
    SECRET_NAME,
    SELECTOR,
    SERVICE_ACCOUNT,
    TTL_AFTER_FINISHED_S,
    JobOutcome,
    base_data_argv,
    batch_api,
    container,
    default_image,
    job_env,
    job_name,
    job_state,
    run_argv,
    run_in_job,
)
from mlops_lab.settings import Settings

# The module's public names, as the reference's: the trigger and the Job's container use them.
__all__ = [
    "ACTIVE_DEADLINE_S",
    "COMPONENT",
    "HOME",
    "SECRET_ENV",
    "SECRET_NAME",
    "SELECTOR",
    "JobOutcome",
    "batch_api",
    "build_retrain_job",
    "default_image",
    "job_name",
    "job_state",
    "run_in_job",
]

REASON_LIMIT = 1_000  # characters of the reason kept in the annotation (256 KiB for all of them)


def build_retrain_job(settings: Settings, reason: str, *, name: str | None = None) -> dict[str, Any]:
    """The Job manifest for one retraining run, from the monitor's settings (a pure function)."""
    # One name, used twice: the Job's name is the pipeline's run id, so a pod restarted by
    # Kubernetes resumes the same run (calling job_name() again would start a new one).
    name = name or job_name()
    image = settings.k8s_image or default_image()

    # A copy, inner dicts included: RESOURCES is shared by every Job this process builds, and
    # adding a GPU to it would give every later CPU Job a GPU request.
    resources = {part: dict(amounts) for part, amounts in RESOURCES.items()}
    run = container(COMPONENT, image, run_argv(name, reason), job_env(settings), resources)
    # The init container only needs to know where home is: it writes the base training set there.
    base_data = container(
        "base-data", image, base_data_argv(settings), [{"name": "MLOPS_HOME", "value": HOME}], INIT_RESOURCES
    )

    pod: dict[str, Any] = {
        # Its own ServiceAccount, and no token: the run talks to MLflow and Postgres, never to the
        # Kubernetes API, so a compromised container has nothing to call it with.
        "serviceAccountName": SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        # OnFailure restarts the crashed container in the same pod: the emptyDir keeps the run
        # directory, and the run resumes where it stopped (Never would start from scratch).
        "restartPolicy": "OnFailure",
        "securityContext": POD_SECURITY,
        "initContainers": [base_data],
        "containers": [run],
        # The image's root filesystem is read-only: home and /tmp are emptyDirs, bounded so a run
        # that writes too much is evicted instead of filling the node's disk.
        "volumes": [
            {"name": "home", "emptyDir": {"sizeLimit": "2Gi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }

    # GPU only when asked for ("auto" trains where it runs). All three go together: the request
    # reserves a GPU, the nodeSelector keeps the pod off CPU-only nodes, and the toleration lets
    # it onto the tainted GPU nodes (without it the pod stays Pending: "untolerated taint").
    if settings.model_device == "cuda":
        resources["requests"][GPU_RESOURCE] = "1"
        resources["limits"][GPU_RESOURCE] = "1"
        pod["nodeSelector"] = {GPU_NODE_LABEL: "true"}
        pod["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": settings.k8s_namespace,  # the monitor's Role only allows Jobs there
            "labels": dict(LABELS),  # the trigger finds running Jobs by these
            # kubectl describe shows why the Job exists; annotations are capped, reasons are not.
            "annotations": {"mlops-lab/reason": reason[:REASON_LIMIT]},
        },
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,  # a crash is retried a few times; a refusal exits 0
            "activeDeadlineSeconds": ACTIVE_DEADLINE_S,  # a hung run is killed, not left running
            "ttlSecondsAfterFinished": TTL_AFTER_FINISHED_S,  # finished Jobs clean themselves up
            "template": {
                # The NetworkPolicy lets only pods with the postgres-client label reach Postgres.
                "metadata": {"labels": {**LABELS, "mlops-lab/postgres-client": "true"}},
                "spec": pod,
            },
        },
    }
