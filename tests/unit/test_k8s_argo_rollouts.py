"""The Argo Rollouts component (reference/k8s/components/argo-rollouts), verified offline.

The overlay that uses it (overlays/argo-rollouts) renders; every built-in object is valid for
the pinned Kubernetes version and meets the policies, as the other overlays; the Rollout and
the AnalysisTemplate are valid against Argo Rollouts' own CRD schemas (vendored, v1.9.1), read
strictly (an unknown field is refused, as `kubectl apply` refuses it); and the contract between
the pieces holds: the steps are the settings' steps, the web metric asks the judge API's
Service for the route the judge API serves, PASS and FAIL map onto the success and failure
conditions and INCONCLUSIVE onto neither, and the URL built from the manifest gets a verdict
from the real judge API on real rows. No cluster, no Argo Rollouts: nothing here was applied.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import kubernetes_validate
import numpy as np
import pytest
from starlette.testclient import TestClient

from mlops_lab.canary.judge_api import create_app
from mlops_lab.cluster.policy import LONG_RUNNING
from mlops_lab.lifecycle.tracking import CHAMPION, client_for
from mlops_lab.settings import Settings, get_settings
from mlops_lab.store.db import Store

from ..conftest import make_settings
from ..support.k8s import (
    K8S,
    UI_COMPONENTS,
    VERSION,
    expected_image,
    find,
    node_version,
    reachable_from_outside,
    render,
    settings_of,
    violations,
)

COMPONENT = K8S / "components" / "argo-rollouts"
ARGO_KINDS = {"Rollout": "rollout.json", "AnalysisTemplate": "analysistemplate.json"}
CONDITION = re.compile(r'^result\.(\w+) == "(\w+)"$')  # the one form of condition shipped
NOW = datetime.now(UTC)  # every row's time: both ReplicaSets log side by side


def docs() -> list[dict[str, Any]]:
    return copy.deepcopy(list(render("overlays/argo-rollouts")))


def argo_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((COMPONENT / "schemas" / ARGO_KINDS[kind]).read_text())
    return strict(schema)


def strict(schema: Any) -> Any:
    """A structural schema as the API server reads it with field validation Strict (kubectl's
    default): an object with declared properties refuses the others, unless the schema keeps
    unknown fields on purpose (x-kubernetes-preserve-unknown-fields)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def argo_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(argo_schema(doc["kind"]))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def rollout(d: list[dict[str, Any]]) -> dict[str, Any]:
    return find(d, "Rollout", "model-server")


def metric(d: list[dict[str, Any]]) -> dict[str, Any]:
    (m,) = find(d, "AnalysisTemplate", "canary-judge")["spec"]["metrics"]
    return dict(m)


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)([smh]?)", duration)
    assert match, f"expected a duration like 10s, got {duration!r}"
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def as_deployment(r: dict[str, Any]) -> dict[str, Any]:
    """The Rollout's pod template inside a Deployment: the core schema and the policies apply."""
    spec = {
        "replicas": r["spec"]["replicas"],
        "selector": r["spec"]["selector"],
        "template": r["spec"]["template"],
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": dict(r["metadata"]), "spec": spec}


# ---------------------------------------------------------------- schemas and policies
def test_builtin_objects_are_valid_for_the_node_version() -> None:
    errors = []
    for doc in [*docs(), as_deployment(rollout(docs()))]:
        if doc["kind"] in ARGO_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, node_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert errors == []


def test_argo_objects_are_valid_against_the_vendored_crd_schemas() -> None:
    found = [d for d in docs() if d["kind"] in ARGO_KINDS]
    assert sorted(d["kind"] for d in found) == ["AnalysisTemplate", "Rollout"]
    assert {d["apiVersion"] for d in found} == {"argoproj.io/v1alpha1"}
    assert {d["kind"]: argo_errors(d) for d in found} == {"AnalysisTemplate": [], "Rollout": []}


@pytest.mark.parametrize(
    ("kind", "breaks"),
    [
        ("Rollout", lambda r: r["spec"]["strategy"]["canary"]["steps"][0].update(setWieght=5)),  # a typo
        ("Rollout", lambda r: r["spec"]["strategy"]["canary"]["steps"][0].update(setWeight="5")),
        ("AnalysisTemplate", lambda t: t["spec"]["metrics"][0].update(failureLimt=0)),
        ("AnalysisTemplate", lambda t: t["spec"]["metrics"][0].update(interval=10)),
        ("AnalysisTemplate", lambda t: t["spec"]["metrics"][0]["provider"]["web"].update(jsonpath="{$}")),
    ],
)
def test_the_crd_schemas_refuse_typos_and_wrong_types(kind: str, breaks: Any) -> None:
    doc = next(d for d in docs() if d["kind"] == kind)
    breaks(doc)
    assert argo_errors(doc), f"expected the {kind} schema to refuse the change"


def test_the_vendored_schemas_say_where_they_come_from() -> None:
    readme = (COMPONENT / "schemas" / "README.md").read_text()
    assert "v1.9.1" in readme and "manifests/crds/rollout-crd.yaml" in readme
    assert "manifests/crds/analysis-template-crd.yaml" in readme
    for name in ARGO_KINDS.values():
        schema = json.loads((COMPONENT / "schemas" / name).read_text())
        assert schema["type"] == "object" and "spec" in schema["properties"]


def test_overlay_meets_the_policies() -> None:
    d = docs()
    image = expected_image("argo-rollouts")
    assert violations(d, image) == []
    assert violations([as_deployment(rollout(d))], image) == []  # the Rollout's pods, as a Deployment's
    workloads = {(x["kind"], x["metadata"]["name"]) for x in d if x["kind"] in (*LONG_RUNNING, "Rollout")}
    assert {("Rollout", "model-server"), ("Deployment", "judge-api"), ("Deployment", "router")} <= workloads
    for gone in (("Deployment", "stable"), ("Deployment", "canary"), ("Deployment", "controller")):
        assert gone not in workloads, gone
    names = {(x["kind"], x["metadata"]["name"]) for x in d}
    assert ("Service", "controller") not in names and (
        "PersistentVolumeClaim",
        "controller-state",
    ) not in names
    component = (COMPONENT / "kustomization.yaml").read_text()
    assert f'newTag: "{VERSION}"' in component  # the same tag as the base (pyproject.toml's version)


def test_every_name_a_pod_refers_to_exists() -> None:
    """Generated names carry a hash: kustomize must rewrite them inside the Rollout too."""
    d = docs()
    have = {(x["kind"], x["metadata"]["name"]) for x in d}
    pods = [x["spec"]["template"]["spec"] for x in d if x["kind"] in (*LONG_RUNNING, "Rollout")]
    for pod in pods:
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in have, source
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ("Secret", ref["name"]) in have, ref
        for v in pod.get("volumes", []):
            if "persistentVolumeClaim" in v:
                claim = v["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in have, claim


def test_services_select_the_pods_they_serve() -> None:
    d = docs()
    r = rollout(d)
    pod_labels = r["spec"]["template"]["metadata"]["labels"]
    assert r["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for name in ("stable", "canary"):  # every model-server pod; Argo narrows `canary` to the candidate's
        assert find(d, "Service", name)["spec"]["selector"].items() <= pod_labels.items(), name
    assert r["spec"]["strategy"]["canary"]["canaryService"] == "canary"
    assert "stableService" not in r["spec"]["strategy"]["canary"]  # it would starve the canary of traffic
    judge = find(d, "Deployment", "judge-api")["spec"]["template"]
    (container,) = judge["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for name in ("judge-api", "controller-pods"):  # the API, and Prometheus's job canary-controller
        svc = find(d, "Service", name)["spec"]
        assert svc["selector"].items() <= judge["metadata"]["labels"].items(), name
        assert [p["targetPort"] for p in svc["ports"]] == ["http"] and "http" in ports, name
    assert container["command"][:3] == ["mlops-lab", "canary", "judge-api"]
    assert container["command"][-1] == str(ports["http"])


def test_only_the_router_and_for_argo_the_judge_are_reachable_from_outside() -> None:
    d = docs()
    assert reachable_from_outside(d) == {"router", "judge-api"} | UI_COMPONENTS
    policy = find(d, "NetworkPolicy", "judge-api-from-argo-rollouts-prometheus")
    (rule,) = policy["spec"]["ingress"]
    outside = [p for p in rule["from"] if "namespaceSelector" in p]
    assert outside == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "argo-rollouts"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "argo-rollouts"}},
        }
    ]


# ---------------------------------------------------------------- the contract with the settings
@pytest.fixture
def overlay_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    return settings_of(docs(), monkeypatch)


def test_steps_are_the_settings_steps_each_paused_then_judged(overlay_settings: Settings) -> None:
    r = rollout(docs())
    steps = r["spec"]["strategy"]["canary"]["steps"]
    weights = tuple(s["setWeight"] for s in steps if "setWeight" in s)
    assert weights == tuple(get_settings().canary_steps) == tuple(overlay_settings.canary_steps)
    assert len(steps) == 3 * len(weights)
    for i in range(0, len(steps), 3):
        weight, pause, analysis = steps[i : i + 3]
        assert "setWeight" in weight
        assert seconds(pause["pause"]["duration"]) == overlay_settings.canary_step_s
        assert [t["templateName"] for t in analysis["analysis"]["templates"]] == ["canary-judge"]
        args = {a["name"]: a["valueFrom"] for a in analysis["analysis"]["args"]}
        assert args["rollout-id"] == {"podTemplateHashValue": "Latest"}  # one judge state per rollout
        path = args["candidate"]["fieldRef"]["fieldPath"]
        label = path.removeprefix("spec.template.metadata.labels.")
        assert r["spec"]["template"]["metadata"]["labels"][label].isdigit(), path
    # No traffic router: Argo splits by pod counts, so every step must be a whole number of pods.
    assert all(r["spec"]["replicas"] * w % 100 == 0 for w in weights), r["spec"]["replicas"]
    assert overlay_settings.canary_shadow_s == 0  # no shadow phase: the steps get the whole alpha


def test_inconclusive_waits_fail_aborts_and_pass_moves_on(overlay_settings: Settings) -> None:
    m = metric(docs())
    assert seconds(m["interval"]) == overlay_settings.canary_look_s
    assert m["failureLimit"] == 0  # the first FAIL fails the run: the rollout aborts
    assert m["consecutiveSuccessLimit"] == 1  # the first PASS ends it: the rollout moves on
    # INCONCLUSIVE meets neither condition: counted, and measured again until the limit, which
    # spans the controller's canary_max_wait_s; `count` bounds the run the same way.
    assert m["inconclusiveLimit"] * seconds(m["interval"]) == overlay_settings.canary_max_wait_s
    assert m["count"] == m["inconclusiveLimit"] + 1
    assert m["consecutiveErrorLimit"] >= 4  # a judge restart is an error, not a verdict
    success, failure = CONDITION.fullmatch(m["successCondition"]), CONDITION.fullmatch(m["failureCondition"])
    assert success and failure, (m["successCondition"], m["failureCondition"])
    assert success.groups() == ("verdict", "PASS") and failure.groups() == ("verdict", "FAIL")
    assert m["provider"]["web"]["jsonPath"] == "{$}"  # `result` is the whole answer


def test_the_web_metric_asks_the_judge_service_for_its_route() -> None:
    d = docs()
    template = find(d, "AnalysisTemplate", "canary-judge")
    url = urlsplit(metric(d)["provider"]["web"]["url"])
    judge = find(d, "Service", "judge-api")
    # The Argo controller calls from its own namespace: only the full name resolves there.
    assert url.scheme == "http"
    assert url.hostname == f"judge-api.{judge['metadata']['namespace']}.svc.cluster.local"
    assert url.port in [p["port"] for p in judge["spec"]["ports"]]
    assert re.fullmatch(r"/v1/rollouts/[\w.-]*\{\{args\.rollout-id\}\}/verdict", url.path), url.path
    query = {k: v for k, (v,) in parse_qs(url.query).items()}
    assert query == {"candidate": "{{args.candidate}}", "mode": "split", "by": "version"}
    declared = {a["name"] for a in template["spec"]["args"]}
    used = set(re.findall(r"\{\{\s*args\.([\w-]+)\s*\}\}", metric(d)["provider"]["web"]["url"]))
    assert declared == used == {"rollout-id", "candidate"}
    routes = {getattr(r, "path", None) for r in create_app(get_settings()).routes}
    assert "/v1/rollouts/{rollout_id}/verdict" in routes


# ---------------------------------------------------------------- the URL against the real judge API
@pytest.fixture
def judged(tmp_path: Path) -> Iterator[tuple[TestClient, Store]]:
    """The judge API on a real store, with a serverless registry: v1 @champion, v2, v3."""
    s = make_settings(tmp_path, store_url=f"sqlite:///{tmp_path / 'store.db'}")
    s = s.model_copy(update={"tracking_uri": s.mlflow_sqlite_uri})
    client = client_for(s)
    client.create_registered_model(s.model_name)
    for _ in range(3):
        client.create_model_version(s.model_name, source=(tmp_path / "model").as_uri())
    client.set_registered_model_alias(s.model_name, CHAMPION, "1")
    store = Store(s.resolved_store_url)
    yield TestClient(create_app(s, store=store)), store
    store.dispose()


def argo_pods_log(store: Store, version: str, n: int, seed: int, shift: float = 0.0) -> None:
    """Rows as the Rollout's pods log them: every pod says variant "stable"."""
    rng = np.random.default_rng(seed)
    scores = 1 / (1 + np.exp(-(rng.normal(-3.0, 1.0, size=n) + shift)))
    store.insert_predictions(
        [
            {
                "request_id": uuid.uuid4().hex,
                "ts": NOW,
                "variant": "stable",
                "model_version": version,
                "features": {},
                "score": float(x),
                "decision": bool(x >= 0.2),
                "latency_ms": 2.0,
            }
            for x in scores
        ]
    )


def argo_measures(api: TestClient, rollout_id: str, candidate: str) -> str:
    """One measurement as Argo takes it: the manifest's URL with the args filled in, the JSON
    answer as `result`, and the conditions applied (FAIL checked first, as Argo's evaluate does)."""
    m = metric(docs())
    url = m["provider"]["web"]["url"].replace("{{args.rollout-id}}", rollout_id)
    url = url.replace("{{args.candidate}}", candidate)
    parts = urlsplit(url)
    resp = api.get(f"{parts.path}?{parts.query}")
    assert resp.status_code == 200, resp.text  # a non-2xx is a measurement error in Argo
    result = resp.json()

    def holds(condition: str) -> bool:
        match = CONDITION.fullmatch(condition)
        assert match
        return bool(result[match.group(1)] == match.group(2))

    if holds(m["failureCondition"]):
        return "Failed"
    return "Successful" if holds(m["successCondition"]) else "Inconclusive"


def test_the_manifest_url_gets_verdicts_argo_maps_as_intended(judged: tuple[TestClient, Store]) -> None:
    api, store = judged
    argo_pods_log(store, "1", 3000, seed=1)  # the stable ReplicaSet's pods
    argo_pods_log(store, "2", 50, seed=2)  # the first canary pod's first requests
    assert argo_measures(api, "abc123", "2") == "Inconclusive"  # too little data: measure again
    argo_pods_log(store, "2", 1950, seed=3)
    assert argo_measures(api, "abc123", "2") == "Successful"  # an A/A candidate: next step
    # A retry once the planned samples are in: the design is complete, its PASS stands (spending
    # nothing), so the 25% and 50% steps' analyses do not wait on an alpha that is all spent.
    assert argo_measures(api, "abc123", "2") == "Successful"
    argo_pods_log(store, "3", 600, seed=4, shift=1.0)
    assert argo_measures(api, "def456", "3") == "Failed"  # a skewed candidate: abort
    state = api.get("/v1/rollouts/model-server-abc123").json()
    assert [look["verdict"] for look in state["looks"]] == ["INCONCLUSIVE", "PASS", "PASS"]
    assert state["by"] == "version" and state["champion"] == "1"
