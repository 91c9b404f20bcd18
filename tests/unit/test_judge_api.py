"""The judge API (mlops_lab.canary.judge_api) on a real store and a real registry.

The prediction store is SQLite, filled through `Store.insert_predictions` the way the model
servers fill it; the registry is MLflow on SQLite (serverless), with the versions, the
@champion alias and a `canary_expectation` tag as the pipeline leaves them. The app runs in
FastAPI's TestClient. Scores are drawn logit-normal with fixed seeds, so every verdict here is
deterministic; the judge's statistics themselves are tests/unit/test_judge.py's.
"""

from __future__ import annotations

import json
import threading
import types
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from mlops_lab.canary.controller import EXPECTATION_TAG, judge_config
from mlops_lab.canary.expectation import expectation_from_scores
from mlops_lab.canary.judge import spending
from mlops_lab.canary.judge_api import create_app
from mlops_lab.canary.judge_service import JudgeService, Look
from mlops_lab.canary.judgement import Judgement
from mlops_lab.lifecycle.tracking import CHAMPION, client_for
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

from ..conftest import make_settings

THRESHOLD = 0.2  # flags ~5% of the baseline scores below
# Rows carry one time unless a test says otherwise: the servers log both arms side by side, and
# the default window starts at the candidate's first row.
NOW = datetime.now(UTC) - timedelta(minutes=1)
SHIFT = 0.5  # logit: what the tagged candidate v3 is expected to move scores by


def scores(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.asarray(1 / (1 + np.exp(-(rng.normal(-3.0, 1.0, size=n) + shift))))


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """v1 @champion, v2 untagged, v3 tagged with the expectation of a +0.5 logit shift."""
    home = tmp_path_factory.mktemp("judge-registry")
    s = make_settings(home)
    uri = s.mlflow_sqlite_uri
    client = client_for(s.model_copy(update={"tracking_uri": uri}))
    client.create_registered_model(s.model_name)
    for _ in range(3):  # sources need not be loadable: the judge reads tags and aliases only
        client.create_model_version(s.model_name, source=(home / "model").as_uri())
    client.set_registered_model_alias(s.model_name, CHAMPION, "1")
    base = scores(5000, seed=100)
    shifted = 1 / (1 + np.exp(-(np.log(base / (1 - base)) + SHIFT)))
    expected = expectation_from_scores(base, shifted, THRESHOLD, THRESHOLD)
    client.set_model_version_tag(s.model_name, "3", EXPECTATION_TAG, expected.to_json())
    return uri


@pytest.fixture
def settings(tmp_path: Path, registry_uri: str) -> Settings:
    return make_settings(tmp_path, tracking_uri=registry_uri, store_url=f"sqlite:///{tmp_path / 'store.db'}")


@pytest.fixture
def store(settings: Settings) -> Store:
    return Store(settings.resolved_store_url)


@pytest.fixture
def api(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


def log(
    store: Store,
    variant: str,
    version: str,
    n: int,
    seed: int,
    shift: float = 0.0,
    at: datetime | None = None,
) -> None:
    """n predictions as a model server logs them (one batch through the store's API)."""
    s = scores(n, seed, shift)
    latency = np.random.default_rng(seed + 1).lognormal(1.0, 0.3, size=n)
    ts = at or NOW
    rows = [
        {
            "request_id": uuid.uuid4().hex,
            "ts": ts,
            "variant": variant,
            "model_version": version,
            "features": {},
            "score": float(score),
            "decision": bool(score >= THRESHOLD),
            "latency_ms": float(ms),
        }
        for score, ms in zip(s, latency, strict=True)
    ]
    store.insert_predictions(rows)


def verdict(api: TestClient, rollout: str, **query: Any) -> dict[str, Any]:
    resp = api.get(f"/v1/rollouts/{rollout}/verdict", params=query)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


# ---------------------------------------------------------------- verdicts on real rows
def test_an_aa_canary_passes(api: TestClient, store: Store, settings: Settings) -> None:
    log(store, "stable", "1", 3000, seed=1)
    log(store, "canary", "2", 2000, seed=2)  # the same behaviour, another version
    body = verdict(api, "aa", candidate="2", champion="1")
    assert body["verdict"] == "PASS", body["reason"]
    assert body["canary_samples"] == 2000 and body["fraction"] == 1.0
    alpha = judge_config(settings).alpha
    assert body["alpha"] == alpha and body["alpha_spent"] == pytest.approx(spending(1.0, alpha))
    assert {c["name"] for c in body["checks"]} == {"score", "decision rate", "error rate", "latency"}
    assert not any(c["failed"] for c in body["checks"])
    assert body["expectation"] is None and "no canary_expectation tag" in body["expectation_source"]


def test_a_skewed_canary_fails_with_the_score_check(api: TestClient, store: Store) -> None:
    log(store, "stable", "1", 3000, seed=1)
    log(store, "canary", "2", 600, seed=2, shift=1.0)  # one SD of the scores, nobody expected it
    body = verdict(api, "skew", candidate="2", champion="1")
    assert body["verdict"] == "FAIL"
    failed = [c["name"] for c in body["checks"] if c["failed"]]
    assert "score" in failed and body["reason"].startswith("score: FAIL")


def test_an_expected_shift_passes_and_the_same_shift_unexpected_fails(api: TestClient, store: Store) -> None:
    """v3's registry tag says it moves scores by +0.5 logit: it passes; v2 moving them so fails."""
    log(store, "stable", "1", 3000, seed=1)
    log(store, "canary", "3", 2000, seed=3, shift=SHIFT)
    tagged = verdict(api, "expected", candidate="3")  # the champion from @champion
    assert tagged["verdict"] == "PASS", tagged["reason"]
    assert tagged["champion"] == "1" and tagged["expectation"]["score_shift"] == pytest.approx(
        SHIFT, abs=0.01
    )
    log(store, "canary", "2", 2000, seed=4, shift=SHIFT)
    untagged = verdict(api, "unexpected", candidate="2")
    assert untagged["verdict"] == "FAIL"


def test_too_little_data_is_inconclusive_and_spends_nothing(api: TestClient, store: Store) -> None:
    log(store, "stable", "1", 3000, seed=1)
    log(store, "canary", "2", 50, seed=2)
    body = verdict(api, "thin", candidate="2", champion="1")
    assert body["verdict"] == "INCONCLUSIVE" and "too little data" in body["reason"]
    assert body["alpha_spent"] == 0.0 and body["fraction"] == 0.0 and body["checks"] == []
    none_yet = verdict(api, "none-yet", candidate="3", champion="1")
    assert none_yet["verdict"] == "INCONCLUSIVE" and "no split predictions of v3" in none_yet["reason"]


def test_too_little_data_is_never_a_pass_whoever_wrote_the_judge(settings: Settings, store: Store) -> None:
    """A judge (a learner's) that passes 50 samples: the API answers INCONCLUSIVE anyway."""
    lenient = types.SimpleNamespace(
        judge=lambda stable, canary, *a, **k: Judgement("PASS", (), canary.n, 0.01, 0.001, "looks fine")
    )
    log(store, "stable", "1", 3000, seed=1)
    log(store, "canary", "2", 50, seed=2)
    api = TestClient(create_app(settings, part=lambda _name: lenient))  # type: ignore[arg-type,return-value]
    body = verdict(api, "lenient", candidate="2", champion="1")
    assert body["verdict"] == "INCONCLUSIVE" and body["alpha_spent"] == 0.0, body


# ---------------------------------------------------------------- the state carried between looks
def test_repeated_looks_carry_the_fraction_and_a_look_without_new_data_spends_nothing(
    settings: Settings, store: Store
) -> None:
    alpha = judge_config(settings).alpha
    log(store, "stable", "1", 3000, seed=1)
    log(store, "canary", "2", 1000, seed=2)
    first = verdict(TestClient(create_app(settings)), "r1", candidate="2", champion="1")
    assert first["fraction"] == 0.5 and first["alpha_spent"] == pytest.approx(spending(0.5, alpha))
    again = verdict(TestClient(create_app(settings)), "r1", candidate="2", champion="1")
    assert again["verdict"] == "INCONCLUSIVE" and "no new canary samples" in again["reason"]
    assert again["alpha_spent"] == 0.0 and again["fraction"] == 0.5 and again["previous_fraction"] == 0.5
    state = json.loads((settings.home / "canary" / "judge-api" / "r1.json").read_text())
    assert state["fraction"]["split"] == 0.5 and len(state["looks"]) == 2

    log(store, "canary", "2", 1000, seed=3)
    restarted = TestClient(create_app(settings))  # a new process reads the file
    third = verdict(restarted, "r1", candidate="2", champion="1")
    assert third["verdict"] == "PASS" and third["previous_fraction"] == 0.5 and third["fraction"] == 1.0
    assert third["alpha_spent"] == pytest.approx(spending(1.0, alpha) - spending(0.5, alpha))
    assert third["alpha_spent_total"] == pytest.approx(spending(1.0, alpha))  # never more than alpha
    assert restarted.get("/v1/rollouts/r1").json()["fraction"]["split"] == 1.0
    # Another rollout id starts from nothing: the fraction belongs to one rollout.
    fresh = verdict(restarted, "r2", candidate="2", champion="1")
    assert fresh["previous_fraction"] == 0.0 and fresh["alpha_spent"] == pytest.approx(spending(1.0, alpha))


def test_concurrent_looks_spend_the_alpha_once(settings: Settings, store: Store) -> None:
    log(store, "stable", "1", 3000, seed=1)
    log(store, "canary", "2", 2000, seed=2)
    service = JudgeService(settings)
    answers: list[dict[str, Any]] = []
    look = Look("race", "2", "1", None, "split", "variant")
    threads = [threading.Thread(target=lambda: answers.append(service.look(look))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spent = sum(a["alpha_spent"] for a in answers)
    assert spent == pytest.approx(spending(1.0, judge_config(settings).alpha))
    # One look spends it all; the five others find the design complete and its PASS standing.
    assert sorted(a["verdict"] for a in answers) == ["PASS"] * 6
    assert sorted(a["alpha_spent"] > 0 for a in answers) == [False] * 5 + [True]


def test_the_window_is_pinned_at_the_first_look(api: TestClient, store: Store) -> None:
    start = NOW - timedelta(minutes=5)  # NOW, the other rows' time: fixed at import
    log(store, "stable", "1", 3000, seed=1, at=start + timedelta(minutes=1))
    log(store, "canary", "2", 50, seed=2, at=start + timedelta(minutes=2))  # a warm-up trickle
    log(store, "canary", "2", 2000, seed=3)
    first = verdict(api, "w", candidate="2", champion="1")  # no since: the candidate's first row
    assert datetime.fromisoformat(first["since"]) == start + timedelta(minutes=2)
    explicit = verdict(api, "w2", candidate="2", champion="1", since=datetime.now(UTC).isoformat())
    assert explicit["verdict"] == "INCONCLUSIVE" and explicit["canary_samples"] == 0
    # A '+' left unencoded in a URL arrives as a space; an engine's template may do just that.
    resp = api.get(f"/v1/rollouts/w3/verdict?candidate=2&champion=1&since={start.isoformat()}")
    assert resp.status_code == 200 and datetime.fromisoformat(resp.json()["since"]) == start
    moved = api.get("/v1/rollouts/w/verdict", params={"candidate": "2", "since": start.isoformat()})
    assert moved.status_code == 409 and "use a new rollout id" in moved.json()["detail"]
    other = api.get("/v1/rollouts/w/verdict", params={"candidate": "3"})
    assert other.status_code == 409 and "candidate=2, not 3" in other.json()["detail"]


# ---------------------------------------------------------------- Argo-style pods: one variant
def test_pods_of_one_template_are_told_apart_by_version(api: TestClient, store: Store) -> None:
    """An Argo Rollouts canary is a new ReplicaSet of the same template: its pods log the same
    variant as the stable ones. By variant there is no canary; by version there is."""
    log(store, "stable", "1", 3000, seed=1)
    log(store, "stable", "2", 2000, seed=2, shift=1.0)
    by_variant = verdict(api, "argo-v", candidate="2", champion="1")
    assert by_variant["verdict"] == "INCONCLUSIVE" and by_variant["canary_samples"] == 0
    by_version = verdict(api, "argo", candidate="2", champion="1", by="version")
    assert by_version["verdict"] == "FAIL" and by_version["canary_samples"] == 2000


def test_paired_mode_reads_the_mirrored_rows(api: TestClient, store: Store) -> None:
    ids = [uuid.uuid4().hex for _ in range(600)]
    s = scores(600, seed=5)
    row = {"ts": NOW, "features": {}, "latency_ms": 2.0}
    stable = [
        {
            **row,
            "request_id": i,
            "variant": "stable",
            "model_version": "1",
            "score": float(x),
            "decision": bool(x >= THRESHOLD),
        }
        for i, x in zip(ids, s, strict=True)
    ]
    mirrored = [
        {**r, "request_id": f"{r['request_id']}:shadow", "variant": "canary", "model_version": "2"}
        for r in stable
    ]
    store.insert_predictions(stable + mirrored)
    body = verdict(api, "shadow", candidate="2", champion="1", mode="paired")
    assert body["verdict"] == "PASS" and body["mode"] == "paired" and body["canary_samples"] == 600
    assert body["checks"][0]["name"] == "score (paired)"
    split = verdict(
        api, "shadow", candidate="2", champion="1", mode="split"
    )  # mirrored rows are not split traffic
    assert split["canary_samples"] == 0


# ---------------------------------------------------------------- bad input and outages
@pytest.mark.parametrize(
    ("path", "query", "loc"),
    [
        ("/v1/rollouts/x/verdict", {}, ["query", "candidate"]),
        ("/v1/rollouts/x/verdict", {"candidate": "v2"}, ["query", "candidate"]),
        ("/v1/rollouts/x/verdict", {"candidate": "2", "mode": "both"}, ["query", "mode"]),
        ("/v1/rollouts/x/verdict", {"candidate": "2", "by": "pod"}, ["query", "by"]),
        ("/v1/rollouts/x/verdict", {"candidate": "2", "since": "yesterday"}, ["query", "since"]),
        (
            "/v1/rollouts/x/verdict",
            {"candidate": "2", "champion": "2", "by": "version"},
            ["query", "champion"],
        ),
        ("/v1/rollouts/x/verdict", {"candidate": "9"}, ["query", "candidate"]),  # not in the registry
        ("/v1/rollouts/..hidden/verdict", {"candidate": "2"}, ["path", "rollout_id"]),
        ("/v1/rollouts/a%20b/verdict", {"candidate": "2"}, ["path", "rollout_id"]),
    ],
)
def test_bad_parameters_are_422_with_field_errors(
    api: TestClient, settings: Settings, path: str, query: dict[str, str], loc: list[str]
) -> None:
    resp = api.get(path, params=query)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert loc in [e["loc"] for e in detail], detail
    assert all(set(e) == {"loc", "msg", "type"} for e in detail)  # field errors only, never the input
    assert not (settings.home / "canary" / "judge-api" / "x.json").exists()  # nothing pinned


def test_an_unreachable_store_is_503_with_retry_after_and_nothing_spent(
    tmp_path: Path, registry_uri: str
) -> None:
    folder = tmp_path / "not-yet"
    s = make_settings(tmp_path, tracking_uri=registry_uri, store_url=f"sqlite:///{folder / 'store.db'}")
    api = TestClient(create_app(s))
    resp = api.get("/v1/rollouts/down/verdict", params={"candidate": "2", "champion": "1"})
    assert resp.status_code == 503 and resp.headers["retry-after"] == str(s.retry_after_s)
    assert "prediction store unreachable" in resp.json()["detail"]
    assert not (s.home / "canary" / "judge-api" / "down.json").exists()
    assert 'mlops_judge_api_unavailable_total{what="prediction store"} 1.0' in api.get("/metrics").text
    folder.mkdir()  # the store comes back: the same app answers
    log(Store(s.resolved_store_url), "stable", "1", 300, seed=1)
    assert verdict(api, "down", candidate="2", champion="1")["verdict"] == "INCONCLUSIVE"


def test_an_unreachable_registry_is_503(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")  # MLflow cannot open a database below a file
    s = make_settings(tmp_path, tracking_uri=f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}")
    resp = TestClient(create_app(s)).get("/v1/rollouts/r/verdict", params={"candidate": "2"})
    assert resp.status_code == 503 and "registry unreachable" in resp.json()["detail"]


def test_health_metrics_and_an_unknown_rollout(api: TestClient, store: Store) -> None:
    assert api.get("/healthz").json() == {"ok": True}
    assert api.get("/v1/rollouts/nobody").status_code == 404
    log(store, "stable", "1", 300, seed=1)
    verdict(api, "m", candidate="2", champion="1")
    assert 'mlops_canary_verdicts_total{verdict="INCONCLUSIVE"} 1.0' in api.get("/metrics").text


def test_a_broken_state_file_is_refused_not_started_over(api: TestClient, settings: Settings) -> None:
    """Starting over would spend the rollout's alpha a second time."""
    path = settings.home / "canary" / "judge-api" / "broken.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"rollout_id": "broken", "fraction": ')
    resp = api.get("/v1/rollouts/broken/verdict", params={"candidate": "2", "champion": "1"})
    assert resp.status_code == 500 and "unreadable judge state" in resp.json()["detail"]
