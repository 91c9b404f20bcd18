"""The cluster's manifests, verified offline: every overlay renders, is valid for the pinned
Kubernetes version, meets the policies (probes, resources, non-root, read-only root, pinned
images), requests GPUs only where it should, opens only the router to the outside, and carries
the settings the code reads. The requirements table in docs/cluster.md is the rendered one.
"""

from __future__ import annotations

import base64
import copy
import re

import kubernetes_validate
import pytest
import yaml

from mlops_lab.pipeline import k8s_job
from mlops_lab.story.demo import PROFILES

from ..support.k8s import (
    K8S,
    OVERLAYS,
    ROOT,
    UI_COMPONENTS,
    expected_image,
    find,
    kind_config,
    markdown_table,
    node_version,
    overlay,
    pod_specs,
    reachable_from_outside,
    render,
    settings_env,
    settings_of,
    violations,
)


# ---------------------------------------------------------------- the kind cluster
def test_kind_cluster_is_pinned_and_its_version_has_schemas() -> None:
    config = kind_config()
    roles = [n["role"] for n in config["nodes"]]
    assert roles == ["control-plane", "worker"]
    assert len({n["image"] for n in config["nodes"]}) == 1
    version = node_version()
    # kubernetes-validate ships this version's schemas (else validate() raises SchemaNotFoundError).
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, version, strict=True
    )
    mappings = config["nodes"][0]["extraPortMappings"]
    assert all(m["listenAddress"] == "127.0.0.1" and m["hostPort"] == m["containerPort"] for m in mappings)
    for name in OVERLAYS:
        node_ports = {
            p["nodePort"]
            for d in overlay(name)
            if d["kind"] == "Service"
            for p in d["spec"]["ports"]
            if "nodePort" in p
        }
        assert node_ports == {m["containerPort"] for m in mappings}, name


def test_gpu_kind_template_matches_the_cluster_config() -> None:
    text = (K8S / "kind" / "cluster-gpu.yaml.tmpl").read_text()
    # nvkind renders the Go template; here with one GPU, by hand.
    body = re.search(
        r"^[ \t]*\{\{- range \$gpu := until numGPUs \}\}\n(.*?)^[ \t]*\{\{- end \}\}\n", text, re.S | re.M
    )
    assert body, "the template no longer ranges over numGPUs"
    config = yaml.safe_load(text.replace(body.group(0), body.group(1).replace("{{ $gpu }}", "0")))
    plain = kind_config()
    assert config["name"] == plain["name"]
    assert {n["image"] for n in config["nodes"]} == {plain["nodes"][0]["image"]}
    assert config["nodes"][0]["extraPortMappings"] == plain["nodes"][0]["extraPortMappings"]
    gpu = config["nodes"][-1]
    assert gpu["labels"] == {k8s_job.GPU_NODE_LABEL: "true"}
    assert (
        "nvidia.com/gpu" in gpu["kubeadmConfigPatches"][0] and "NoSchedule" in gpu["kubeadmConfigPatches"][0]
    )
    assert gpu["extraMounts"][0]["containerPath"].endswith("/gpu/0")


# ---------------------------------------------------------------- schemas
@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_is_valid_for_the_node_version(name: str) -> None:
    errors = []
    for doc in overlay(name):
        try:
            kubernetes_validate.validate(doc, node_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert errors == []


def test_strict_validation_refuses_unknown_fields() -> None:
    deployment = copy.deepcopy(find(overlay("dev"), "Deployment", "stable"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, node_version(), strict=True)


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_meets_the_policies(name: str) -> None:
    docs = overlay(name)
    assert violations(docs, expected_image(name)) == []
    names = {(kind, n) for kind, n, _ in pod_specs(docs)}
    for workload in ("stable", "canary", "router", "monitor", "controller", "mlflow", "prometheus"):
        assert ("Deployment", workload) in names
    assert {("StatefulSet", "postgres"), ("CronJob", "retrain-nightly"), ("Job", "bootstrap")} <= names
    # Only the monitor carries an API token (it creates Jobs).
    mounted = {n for _, n, pod in pod_specs(docs) if pod.get("automountServiceAccountToken") is not False}
    assert mounted == {"monitor"}


def test_policy_checks_can_fail() -> None:
    docs = overlay("dev")
    pod = find(docs, "Deployment", "stable")["spec"]["template"]["spec"]
    c = pod["containers"][0]
    del c["resources"]["limits"]["memory"], c["readinessProbe"]
    c["securityContext"]["allowPrivilegeEscalation"] = True
    c["image"], c["imagePullPolicy"] = "mlops-lab:latest", "Always"
    found = "\n".join(violations(docs, expected_image("dev")))
    for expected in (
        "no limits.memory",
        "no readinessProbe",
        "allowPrivilegeEscalation",
        "no pinned tag",
        "is not mlops-lab",
        "imagePullPolicy Always",
    ):
        assert expected in found


def test_gpu_overlay_requests_gpus_and_dev_does_not() -> None:
    for name in OVERLAYS:
        for kind, workload, pod in pod_specs(overlay(name)):
            gpus = [c["resources"]["limits"].get("nvidia.com/gpu") for c in pod["containers"]]
            wants = name == "gpu" and workload in ("stable", "canary")
            assert gpus == (["1"] if wants else [None]), f"{name}: {kind}/{workload}"
            if wants:
                assert pod["nodeSelector"] == {k8s_job.GPU_NODE_LABEL: "true"}
                assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
                    "tolerations"
                ]
                env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
                assert env["MLOPS_MODEL_DEVICE"] == "cuda"
            else:
                assert "nodeSelector" not in pod and "tolerations" not in pod
    assert settings_env(overlay("gpu"))["MLOPS_MODEL_FLAVOUR"] == "torch"
    assert "MLOPS_MODEL_FLAVOUR" not in settings_env(overlay("dev"))


def test_only_the_router_is_reachable_from_outside_the_namespace() -> None:
    assert reachable_from_outside(list(render("base"))) == {"router"}
    base_services = [d for d in render("base") if d["kind"] == "Service"]
    assert all(d["spec"].get("type", "ClusterIP") == "ClusterIP" for d in base_services)
    for name in OVERLAYS:
        docs = overlay(name)
        assert reachable_from_outside(docs) == {"router"} | UI_COMPONENTS
        ui = find(docs, "NetworkPolicy", "ui-from-host")
        without_ui = [d for d in docs if d is not ui]
        assert reachable_from_outside(without_ui) == {"router"}


# ---------------------------------------------------------------- settings the pods read
@pytest.mark.parametrize("name", OVERLAYS)
def test_settings_configmap_is_what_the_code_reads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = overlay(name)
    s = settings_of(docs, monkeypatch)
    assert s.retrain_backend == "kubernetes" and s.k8s_namespace == "mlops-lab"
    assert s.k8s_image == expected_image(name)
    assert str(s.home) == k8s_job.HOME and s.host == "0.0.0.0"
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for component, host in s.peer_hosts.items():
        port = {p["port"] for p in services[host]["spec"]["ports"]}
        assert getattr(s, f"{component}_port") in port, component
    assert s.tracking_uri == f"http://mlflow:{s.mlflow_port}"
    for key, value in PROFILES["full"].settings.items():  # the story's speeds: the demo's full profile
        assert getattr(s, key) == value, key
    credentials = settings_env(docs)
    password = base64.b64decode(
        find(docs, "Secret", "mlops-lab-secrets")["data"]["postgres-password"]
    ).decode()
    assert f":{password}@postgres:5432/" in credentials["MLOPS_STORE_URL"]


# ---------------------------------------------------------------- docs
def test_docs_requirements_table_is_the_rendered_one() -> None:
    table = markdown_table()
    assert table in (ROOT / "docs" / "cluster.md").read_text(), f"docs/cluster.md should hold:\n{table}"
