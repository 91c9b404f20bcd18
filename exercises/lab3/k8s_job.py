"""Lab 3, exercise `retrain-job`: the Kubernetes Job that runs one retraining.

    make lab-3        grade it          make hint-3      one more hint
    Reference: reference/mlops_lab/pipeline/k8s_job.py     Docs: docs/labs/lab-3-orchestration.md

In the cluster the drift monitor creates one Job per trigger (`pipeline.trigger.kubernetes_trigger`)
from the manifest `build_retrain_job` returns; the Job runs the same pipeline steps in one pod.
You write that manifest, as a dict. The grader validates it against the schemas of the pinned
Kubernetes version (strict: an unknown field is an error) and applies the same policies as the
repository's manifest tests (restricted security, resources, no inlined secrets, images never
pulled).

What it works with (the reference's, imported below):

    container(name, image, argv, env, resources)  one container: restricted securityContext,
                                                  home and /tmp mounted, image never pulled
    job_env(settings)        the env list: settings as MLOPS_* values, secrets by secretKeyRef
    base_data_argv(settings) the init container's command (regenerates the base training set)
    run_argv(name, reason)   the main container's command (the run id is the Job's name)
    job_name()               retrain-20261126-153012-a1b2 (a valid, sortable, unique DNS label)
    default_image()          mlops-lab:<version>, when settings.k8s_image is empty
    COMPONENT, LABELS, SERVICE_ACCOUNT, RESOURCES, INIT_RESOURCES, POD_SECURITY, HOME,
    BACKOFF_LIMIT, ACTIVE_DEADLINE_S, TTL_AFTER_FINISHED_S, GPU_RESOURCE, GPU_NODE_LABEL
    python -m mlops_lab.pipeline.k8s_job manifest       the reference's Job, as YAML
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


def build_retrain_job(settings: Settings, reason: str, *, name: str | None = None) -> dict[str, Any]:
    """The Job manifest for one retraining run, from the monitor's settings (a pure function)."""
    # TODO(lab-3): a batch/v1 Job named `name` (job_name() when None) in settings.k8s_namespace,
    #  labelled LABELS, its `reason` kept (truncated) in an annotation.
    #  - spec: how often a crashed pod is retried (BACKOFF_LIMIT), how long a hung run may take
    #    (ACTIVE_DEADLINE_S), when a finished Job cleans itself up (TTL_AFTER_FINISHED_S).
    #  - the pod: restartPolicy OnFailure (a crash restarts the container in the same pod, whose
    #    emptyDir keeps the run directory, so the run resumes), serviceAccountName
    #    SERVICE_ACCOUNT without a mounted API token, the pod-level POD_SECURITY, an init
    #    container "base-data" (base_data_argv, env MLOPS_HOME=HOME, INIT_RESOURCES) and the
    #    container COMPONENT (run_argv(name, reason), job_env(settings), a copy of RESOURCES),
    #    both from container(...) with the image settings.k8s_image or default_image(); two
    #    emptyDir volumes, "home" and "tmp", each with a sizeLimit; pod labels LABELS plus
    #    "mlops-lab/postgres-client": "true" (the NetworkPolicy that lets it reach Postgres).
    #  - settings.model_device == "cuda" (off by default): one GPU_RESOURCE in the main
    #    container's requests and limits, a nodeSelector {GPU_NODE_LABEL: "true"}, and a
    #    toleration of the GPU nodes' taint (key GPU_RESOURCE, effect NoSchedule).
    #  Think about: what does a GPU Job without the toleration do on a cluster whose GPU nodes
    #  are tainted, and what would you see in `kubectl describe`?
    raise NotImplementedError("TODO(lab-3): the retraining Job")
