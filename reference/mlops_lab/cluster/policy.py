"""The cluster's workload policies, as pure functions over manifests (dicts, as YAML loads them).

    from mlops_lab.cluster.policy import node_version, violations
    violations(docs, "mlops-lab:0.1.0")   # [] when every policy holds, else one line per breach
    node_version()                        # the Kubernetes version every manifest must be valid for

One engine for every manifest the project ships or builds: the kustomize overlays
(tests/unit/test_k8s_manifests.py), the retraining Job the monitor creates
(tests/unit/test_k8s_retrain_job.py), and a learner's Job in lab 3's `retrain-job` grader. Each
policy is one line of `container_violations`: a restricted pod (non-root, RuntimeDefault
seccomp, no privilege escalation, a read-only root filesystem, every capability dropped),
requests and limits on every container, images pinned and never pulled (kind loads them), and
probes on long-running workloads. Pair it with the schemas of the pinned node version:

    kubernetes_validate.validate(doc, node_version(), strict=True)

Nothing here touches a cluster or runs kubectl; reading the kind config is the only I/O.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

K8S = Path(__file__).resolve().parents[2] / "k8s"  # reference/k8s
KIND_CONFIG = K8S / "kind" / "cluster.yaml"
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
LONG_RUNNING = ("Deployment", "StatefulSet", "DaemonSet")  # these need probes; Jobs run to completion
_NODE_IMAGE = re.compile(r"kindest/node:v(\d+\.\d+\.\d+)@sha256:[0-9a-f]{64}")


def kind_config(path: Path = KIND_CONFIG) -> dict[str, Any]:
    """The kind cluster's config (reference/k8s/kind/cluster.yaml)."""
    return dict(yaml.safe_load(path.read_text()))


def node_version(path: Path = KIND_CONFIG) -> str:
    """The Kubernetes version of the pinned kind node image: what every manifest must be valid for."""
    image = kind_config(path)["nodes"][0]["image"]
    match = _NODE_IMAGE.fullmatch(image)
    if match is None:
        raise ValueError(f"node image not pinned by tag and digest: {image}")
    return match.group(1)


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, name, pod spec) of every workload, CronJobs through their job template."""
    out = []
    for d in docs:
        if d["kind"] not in WORKLOADS:
            continue
        spec = d["spec"]["jobTemplate"]["spec"] if d["kind"] == "CronJob" else d["spec"]
        out.append((d["kind"], d["metadata"]["name"], spec["template"]["spec"]))
    return out


def container_violations(kind: str, name: str, pod: dict[str, Any], image: str) -> list[str]:
    """Every policy one pod spec breaks; `image` is the mlops-lab image the cluster has loaded."""
    v: list[str] = []
    ps = pod.get("securityContext", {})
    if ps.get("runAsNonRoot") is not True:
        v.append(f"{kind}/{name}: pod securityContext.runAsNonRoot is not true")
    if ps.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        v.append(f"{kind}/{name}: pod seccompProfile is not RuntimeDefault")
    inits = pod.get("initContainers", [])
    for c in [*inits, *pod.get("containers", [])]:
        where = f"{kind}/{name}/{c['name']}"
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            for what in ("cpu", "memory"):
                if what not in res.get(part, {}):
                    v.append(f"{where}: no {part}.{what}")
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            v.append(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            v.append(f"{where}: readOnlyRootFilesystem is not true")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            v.append(f"{where}: capabilities do not drop ALL")
        ref = c.get("image", "")
        if ":" not in ref.rsplit("/", 1)[-1] or ref.endswith(":latest"):
            v.append(f"{where}: image {ref!r} has no pinned tag")
        if ref.split(":")[0] == "mlops-lab" and ref != image:
            v.append(f"{where}: image {ref} is not {image}, which scripts/cluster.sh builds and loads")
        if c.get("imagePullPolicy") not in ("IfNotPresent", "Never"):
            v.append(
                f"{where}: imagePullPolicy {c.get('imagePullPolicy')} (kind-loaded images must not be pulled)"
            )
        if kind in LONG_RUNNING and c not in inits:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe not in c:
                    v.append(f"{where}: no {probe}")
    return v


def violations(docs: list[dict[str, Any]], image: str) -> list[str]:
    """Every policy breach of every workload in `docs` ([] when all hold)."""
    return [x for kind, name, pod in pod_specs(docs) for x in container_violations(kind, name, pod, image)]
