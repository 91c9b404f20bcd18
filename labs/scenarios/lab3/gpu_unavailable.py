"""lab3/gpu-unavailable: training asks for a GPU that is not there.

    make scenario S=lab3/gpu-unavailable [IMPL=exercises]

Two ways a GPU request goes wrong. (a) MLOPS_MODEL_DEVICE=cuda with the torch flavour on a
machine without a usable GPU (no CUDA device, or no torch at all): training must refuse before
anything is logged, with the reason, never train quietly on the CPU; `auto` is the setting for
"a GPU when there is one". (b) The retraining Job's GPU variant needs three things together:
the nvidia.com/gpu request, a nodeSelector on GPU nodes and a toleration of their taint. Without
the toleration the pod stays Pending. There is no cluster here: (b) is an offline check, a
model of the scheduler's filters over the nodes of reference/k8s/kind/cluster-gpu.yaml.tmpl.
With IMPL=exercises the Job is yours (exercises/lab3/k8s_job.py).
"""

from __future__ import annotations

import copy
from typing import Any

from mlops_lab.data.generator import generate
from mlops_lab.labs.scenarios import Context
from mlops_lab.lifecycle import train as training
from mlops_lab.lifecycle.torch_model import TorchUnavailable
from mlops_lab.lifecycle.tracking import client_for
from mlops_lab.pipeline.k8s_job import GPU_NODE_LABEL, GPU_RESOURCE
from mlops_lab.settings import Settings

CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "value": "", "effect": "NoSchedule"}
# The nvkind cluster of reference/k8s/kind/cluster-gpu.yaml.tmpl, on a host with one GPU.
NODES: list[dict[str, Any]] = [
    {
        "name": "mlops-lab-control-plane",
        "labels": {"node-role.kubernetes.io/control-plane": ""},
        "taints": [CONTROL_PLANE_TAINT],  # kind keeps it when the cluster has workers
        "allocatable": {},
    },
    {"name": "mlops-lab-worker", "labels": {}, "taints": [], "allocatable": {}},
    {
        "name": "mlops-lab-worker2",
        "labels": {GPU_NODE_LABEL: "true"},
        "taints": [{"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}],
        "allocatable": {GPU_RESOURCE: "1"},  # what the NVIDIA device plugin advertises
    },
]


def run(ctx: Context) -> None:
    k8s = ctx.module("retrain-job")
    s = ctx.settings = ctx.settings.model_copy(update={"tracking_uri": ctx.settings.mlflow_sqlite_uri})
    torch_version, gpu = machine()
    ctx.info(f"this machine: torch {torch_version or 'not installed'}; CUDA device: {gpu or 'none'}")

    # ---- (a) training with device=cuda
    cuda = s.model_copy(update={"model_flavour": "torch", "model_device": "cuda"})
    data = generate("baseline", 4_000, seed=1)
    ctx.inject("train with MLOPS_MODEL_FLAVOUR=torch MLOPS_MODEL_DEVICE=cuda")
    runs, versions = logged(s)
    try:
        result: training.TrainResult | None = training.train(cuda, data)
        refused = ""
    except TorchUnavailable as exc:
        result, refused = None, str(exc)
    if gpu:
        ctx.check(
            result is not None, f"this machine has a GPU ({gpu}): training runs ({refused or 'no error'})"
        )
        assert result is not None
        device = client_for(s).get_run(result.run_id).data.params.get("train_device")
        ctx.signal(f"v{result.version} trained, train_device={device} (logged)")
        ctx.check(device == "cuda", "with a GPU there, device=cuda trains on it")
    else:
        ctx.symptom(f"training refused: {refused or 'it did not refuse'}")
        ctx.check(bool(refused), "training refuses with the reason instead of running on the CPU")
        ctx.check(
            ("cuda" in refused) if torch_version else ("torch" in refused), "the reason says what is missing"
        )
        ctx.check(logged(s) == (runs, versions), "nothing was logged or registered: it failed before the fit")
        if torch_version:
            auto = training.train(
                s.model_copy(update={"model_flavour": "torch", "model_device": "auto"}), data
            )
            device = client_for(s).get_run(auto.run_id).data.params.get("train_device")
            ctx.mitigate(f"MLOPS_MODEL_DEVICE=auto: v{auto.version} trained, train_device={device} (logged)")
            ctx.check(device == "cpu", "auto picks the CPU here, and says so in the run's params")
        else:
            ctx.mitigate("without torch: make setup-gpu, or the default sklearn flavour (CPU only)")

    # ---- (b) the Job's GPU variant and where it can be scheduled
    gpu_settings = s.model_copy(update={"model_flavour": "torch", "model_device": "cuda"})
    job = k8s.build_retrain_job(gpu_settings, "drift on amount", name="retrain-gpu")
    pod = job["spec"]["template"]["spec"]
    main = pod["containers"][0]
    resources = main.get("resources", {})
    ctx.signal(
        f"Job {job['metadata']['name']}: limits {resources.get('limits')}, "
        f"nodeSelector {pod.get('nodeSelector')}, tolerations {pod.get('tolerations')}"
    )
    ctx.check(
        resources.get("limits", {}).get(GPU_RESOURCE) == "1"
        and resources.get("requests", {}).get(GPU_RESOURCE, "1") == "1",
        f"the main container asks for one {GPU_RESOURCE}",
    )
    ctx.check(pod.get("nodeSelector") == {GPU_NODE_LABEL: "true"}, f"it selects GPU nodes ({GPU_NODE_LABEL})")
    ctx.check(
        any(tolerates(t, NODES[2]["taints"][0]) for t in pod.get("tolerations") or []),
        f"it tolerates the GPU nodes' taint {GPU_RESOURCE}=present:NoSchedule",
    )
    env = {e["name"]: e.get("value") for e in main.get("env", [])}
    ctx.check(
        env.get("MLOPS_MODEL_DEVICE") == "cuda",
        "the pod trains with MLOPS_MODEL_DEVICE=cuda: no silent CPU run",
    )

    ctx.info(
        "offline check: no cluster here. A model of kube-scheduler's filters (taints, nodeSelector, "
        "GPU count) over the nodes of reference/k8s/kind/cluster-gpu.yaml.tmpl; TARGET=kind has no "
        "path for this scenario (scripts/cluster.sh runs the kind/ scenarios only)"
    )
    untolerant = copy.deepcopy(pod)
    untolerant.pop("tolerations", None)
    ctx.inject("the same Job without the toleration")
    node, why = schedule(untolerant, NODES)
    ctx.signal(
        f"kubectl describe pod would show: FailedScheduling: {why}"
        if node is None
        else f"scheduled on {node}"
    )
    ctx.check(node is None, "without the toleration the pod stays Pending")
    ctx.check(
        f"untolerated taint {{{GPU_RESOURCE}: present}}" in why
        and "didn't match Pod's node affinity/selector" in why,
        "the reason: the GPU node's taint, and the selector on the other nodes",
    )
    node, why = schedule(pod, NODES)
    ctx.check(node == "mlops-lab-worker2", f"the Job as built schedules onto the GPU node ({node or why})")
    cpu_pod = k8s.build_retrain_job(
        s.model_copy(update={"model_device": "auto"}), "nightly", name="retrain-cpu"
    )
    node, why = schedule(cpu_pod["spec"]["template"]["spec"], NODES)
    ctx.check(
        node == "mlops-lab-worker",
        f"the default (CPU) Job lands on the plain worker, off the GPU ({node or why})",
    )
    ctx.mitigate(
        "cpu or auto where there is no GPU; for GPU training the request, nodeSelector and toleration "
        "together (on a GPU host: docs/cluster.md, GPU notes, creates such a cluster with nvkind)"
    )


def machine() -> tuple[str | None, str | None]:
    """(torch's version or None, the CUDA device's name or None)."""
    try:
        import torch
    except ImportError:
        return None, None
    if not torch.cuda.is_available():
        return str(torch.__version__), None
    return str(torch.__version__), str(torch.cuda.get_device_name(0))


def logged(settings: Settings) -> tuple[int, int]:
    """(MLflow runs in the experiment, registered versions of the model)."""
    client = client_for(settings)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    runs = len(client.search_runs([experiment.experiment_id])) if experiment is not None else 0
    return runs, len(client.search_model_versions(f"name = '{settings.model_name}'"))


# ---------------------------------------------------------------- an offline scheduler
def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """Kubernetes' rule: same key (or an empty key with Exists), same effect (or none), and
    Exists, or Equal with the same value."""
    if toleration.get("key") not in (None, "", taint["key"]):
        return False
    if not toleration.get("key") and toleration.get("operator") != "Exists":
        return False
    if toleration.get("effect") not in (None, "", taint["effect"]):
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return True
    return str(toleration.get("value", "")) == str(taint.get("value", ""))


def unfit(pod: dict[str, Any], node: dict[str, Any]) -> str | None:
    """Why `node` cannot take `pod`, as the first failing filter says it, in the default profile's
    order (TaintToleration, NodeAffinity, NodeResourcesFit); None when it fits. Only extended
    resources (GPUs) are counted: cpu and memory fit everywhere in this model."""
    for taint in node["taints"]:
        if taint["effect"] in ("NoSchedule", "NoExecute") and not any(
            tolerates(t, taint) for t in pod.get("tolerations") or []
        ):
            return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
    if any(node["labels"].get(k) != v for k, v in (pod.get("nodeSelector") or {}).items()):
        return "node(s) didn't match Pod's node affinity/selector"
    wanted: dict[str, int] = {}
    for c in pod["containers"]:
        for name, amount in ((c.get("resources") or {}).get("limits") or {}).items():
            if name not in ("cpu", "memory"):
                wanted[name] = wanted.get(name, 0) + int(amount)
    for name, amount in sorted(wanted.items()):
        if int(node["allocatable"].get(name, 0)) < amount:
            return f"Insufficient {name}"
    return None


def schedule(pod: dict[str, Any], nodes: list[dict[str, Any]]) -> tuple[str | None, str]:
    """(the first node that fits, "") or (None, the FailedScheduling message kube-scheduler
    writes: its reasons counted and sorted, without the preemption part)."""
    reasons: dict[str, int] = {}
    for node in nodes:
        why = unfit(pod, node)
        if why is None:
            return node["name"], ""
        reasons[why] = reasons.get(why, 0) + 1
    parts = sorted(f"{n} {why}" for why, n in reasons.items())
    return None, f"0/{len(nodes)} nodes are available: {', '.join(parts)}."
