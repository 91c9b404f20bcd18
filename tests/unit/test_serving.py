"""The model server through its HTTP interface (in-process TestClient, real MLflow registry)."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import Field, create_model

from mlops_lab.lifecycle.tracking import client_for
from mlops_lab.serving import handlers
from mlops_lab.serving.app import create_app
from mlops_lab.serving.holder import ModelHolder
from mlops_lab.serving.schemas import PredictRequest
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

from ..conftest import GOOD, TOKEN


@pytest.fixture
def client(serving_settings: Settings) -> Iterator[TestClient]:
    app = create_app(serving_settings.model_copy(update={"batch_max_rows": 50}))
    with TestClient(app) as c:
        assert app.state.holder.wait_ready(30), app.state.holder.not_ready_reason
        yield c


def test_predict_returns_id_version_score_decision(client: TestClient, serving_settings: Settings) -> None:
    r = client.post("/v1/predict", json={**GOOD, "request_id": "req-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["request_id"] == "req-1" and body["model_version"] == "1" and body["variant"] == "stable"
    assert 0.0 <= body["score"] <= 1.0 and isinstance(body["decision"], bool)
    client.app.state.writer.close()  # type: ignore[attr-defined]
    stored = Store(serving_settings.resolved_store_url).predictions_frame()
    assert list(stored["request_id"]) == ["req-1"]
    assert stored["amount"][0] == 182.5 and stored["model_version"][0] == "1"


def test_request_id_from_header_and_generated_otherwise(client: TestClient) -> None:
    assert (
        client.post("/v1/predict", json=GOOD, headers={"x-request-id": "hdr-7"}).json()["request_id"]
        == "hdr-7"
    )
    generated = client.post("/v1/predict", json=GOOD).json()["request_id"]
    assert len(generated) == 32


def test_nullable_features_and_unseen_country_are_scored(client: TestClient) -> None:
    r = client.post("/v1/predict", json={**GOOD, "distance_from_home_km": None, "country": "ZZ"})
    assert r.status_code == 200, r.text


def test_batch_scores_every_row_in_order(client: TestClient) -> None:
    rows = [{**GOOD, "amount": a, "request_id": f"b{i}"} for i, a in enumerate([5.0, 50.0, 5000.0])]
    r = client.post("/v1/predict/batch", json={"rows": rows})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["request_id"] for p in preds] == ["b0", "b1", "b2"]
    single = client.post("/v1/predict", json={**GOOD, "amount": 50.0}).json()["score"]
    assert preds[1]["score"] == pytest.approx(single, abs=1e-9)  # batch (pipeline) == single (compiled)


def test_batch_over_the_limit_is_413_with_a_message(client: TestClient) -> None:
    r = client.post("/v1/predict/batch", json={"rows": [GOOD] * 51})
    assert r.status_code == 413
    assert "over the limit of 50" in r.json()["detail"]


HOSTILE: list[tuple[str, Any]] = [
    ("missing field", {k: v for k, v in GOOD.items() if k != "amount"}),
    ("wrong type", {**GOOD, "amount": "lots"}),
    ("negative amount", {**GOOD, "amount": -5}),
    ("hour out of range", {**GOOD, "hour": 24}),
    ("fractional hour", {**GOOD, "hour": 2.5}),
    ("unknown category", {**GOOD, "channel": "carrier_pigeon"}),
    ("bad country code", {**GOOD, "country": "United States"}),
    ("renamed column", {**{k: v for k, v in GOOD.items() if k != "amount"}, "amount_usd": 1.0}),
    ("null in a required field", {**GOOD, "merchant_category": None}),
    ("bad request id", {**GOOD, "request_id": "x" * 65}),
    ("not an object", [GOOD]),
    ("empty body", None),
]


@pytest.mark.parametrize(("case", "payload"), HOSTILE, ids=[c for c, _ in HOSTILE])
def test_malformed_input_is_422_with_field_errors(client: TestClient, case: str, payload: Any) -> None:
    r = client.post("/v1/predict", content=json.dumps(payload), headers={"content-type": "application/json"})
    assert r.status_code == 422, (case, r.text)
    errors = r.json()["detail"]
    assert errors and all({"loc", "msg", "type"} <= set(e) for e in errors)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_inf_are_422_not_500(client: TestClient, literal: str) -> None:
    body = json.dumps(GOOD).replace('"amount": 182.5', f'"amount": {literal}')
    r = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "amount"]


def test_wrong_content_type_and_broken_json_are_4xx(client: TestClient) -> None:
    assert (
        client.post("/v1/predict", content="amount=1", headers={"content-type": "text/plain"}).status_code
        == 422
    )
    assert (
        client.post("/v1/predict", content="{", headers={"content-type": "application/json"}).status_code
        == 422
    )


def test_oversized_body_is_refused_before_parsing(client: TestClient) -> None:
    r = client.post(
        "/v1/predict", content=b"x" * (9 * 1024 * 1024), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_admin_reload_needs_the_token(client: TestClient) -> None:
    assert client.post("/admin/reload").status_code == 401
    assert client.post("/admin/reload", headers={"authorization": "Bearer wrong"}).status_code == 401
    r = client.post("/admin/reload", headers=TOKEN)
    assert r.status_code == 200 and r.json()["version"] == "1"


def test_model_info_and_probes(client: TestClient) -> None:
    info = client.get("/v1/model").json()
    assert info["version"] == "1" and info["alias"] == "champion" and info["scorer"] == "compiled"
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json() == {"status": "ready", "model_version": "1"}


def test_metrics_expose_latency_scores_and_store_queue(client: TestClient) -> None:
    client.post("/v1/predict", json=GOOD)
    client.post("/v1/predict", json={})
    text = client.get("/metrics").text
    assert (
        'mlops_request_latency_seconds_count{method="POST",model_version="1",route="/v1/predict",'
        'status="200",variant="stable"} 1.0' in text
    )
    assert 'route="/v1/predict",status="422"' in text
    assert 'mlops_prediction_score_count{model_version="1",variant="stable"} 1.0' in text
    assert 'mlops_model_info{model_version="1",variant="stable"} 1.0' in text
    for name in ("mlops_store_queue_depth", "mlops_store_drops_total", "mlops_model_load_failures_total"):
        assert name in text
    client.get("/no/such/path/" + "x" * 50)
    assert 'route="unmatched"' in client.get("/metrics").text


def test_not_ready_without_a_champion_is_503_with_retry_after(serving_settings: Settings) -> None:
    settings = serving_settings.model_copy(update={"model_name": "no-such-model"})
    app = create_app(settings)
    with TestClient(app) as c:
        deadline = time.monotonic() + 10
        while app.state.holder.load_failures == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the first load attempt runs in the background
        for path, method in (("/readyz", "get"), ("/v1/predict", "post")):
            r = c.request(method.upper(), path, json=GOOD if method == "post" else None)
            assert r.status_code == 503
            assert r.headers["retry-after"] == str(settings.retry_after_s)
            assert "alias @champion" in r.json()["detail"]
        assert c.get("/healthz").status_code == 200


def test_a_full_prediction_log_refuses_instead_of_losing(serving_settings: Settings) -> None:
    """The database is locked (a long migration, a stuck writer): the queue fills, requests get
    503 instead of a 200 whose row would be lost, and everything acknowledged lands once it frees."""
    app = create_app(serving_settings.model_copy(update={"store_queue_size": 2, "store_flush_rows": 1}))
    db_path = serving_settings.resolved_store_url.removeprefix("sqlite:///")
    with TestClient(app) as c:
        assert app.state.holder.wait_ready(30)
        locker = sqlite3.connect(db_path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            codes = [c.post("/v1/predict", json=GOOD).status_code for _ in range(8)]
            assert 503 in codes and codes.count(200) >= 2, codes
            assert 'mlops_store_drops_total{variant="stable"} ' in c.get("/metrics").text
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        acknowledged = codes.count(200)
    assert Store(serving_settings.resolved_store_url).count_predictions() == acknowledged


def test_hot_reload_when_the_alias_moves(registry: Settings, tmp_path: Path) -> None:
    """Moving @champion is the whole deployment: the server notices and swaps, no restart."""
    client = client_for(registry)
    source = client.get_model_version(registry.model_name, "1")
    name = f"hot-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    for _ in range(2):  # two versions of the same artifact: enough to watch the swap
        mv = client.create_model_version(name, source.source, run_id=source.run_id, tags=source.tags)
    client.set_registered_model_alias(name, "champion", "1")
    s = registry.model_copy(
        update={"model_name": name, "reload_poll_s": 0.2, "store_url": f"sqlite:///{tmp_path / 'store.db'}"}
    )
    app = create_app(s)
    with TestClient(app) as c:
        assert app.state.holder.wait_ready(30)
        assert c.get("/v1/model").json()["version"] == "1"
        client.set_registered_model_alias(name, "champion", str(mv.version))
        deadline = time.monotonic() + 20
        while c.get("/v1/model").json()["version"] != "2" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.post("/v1/predict", json=GOOD).json()["model_version"] == "2"
        assert 'mlops_model_loads_total{variant="stable"} 2.0' in c.get("/metrics").text


def test_a_pinned_server_serves_its_version_whatever_the_alias_says(
    registry: Settings, tmp_path: Path
) -> None:
    """MLOPS_SERVE_VERSION pins a server to one version (the release is the manifest: GitOps, an
    Argo Rollouts pod template); a version the registry does not hold keeps it not ready."""
    client = client_for(registry)
    source = client.get_model_version(registry.model_name, "1")
    name = f"pinned-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source.source, run_id=source.run_id, tags=source.tags)
    client.set_registered_model_alias(name, "champion", "1")
    store = f"sqlite:///{tmp_path / 'store.db'}"
    pinned = registry.model_copy(update={"model_name": name, "serve_version": "2", "store_url": store})
    app = create_app(pinned)
    with TestClient(app) as c:
        assert app.state.holder.wait_ready(30)
        assert c.post("/v1/predict", json=GOOD).json()["model_version"] == "2"
    missing = pinned.model_copy(update={"serve_version": "9"})
    app = create_app(missing)
    with TestClient(app) as c:
        assert not app.state.holder.wait_ready(2)
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "no version 9" in ready.text, ready.text


def test_the_learner_parts_are_wired_like_the_reference(serving_settings: Settings) -> None:
    """`mlops-lab serve --impl exercises` passes a holder class, the handlers and a request model:
    the holder is wired to the metrics as the reference's is, every answer and both bodies go
    through what was passed."""

    class Holder(ModelHolder):
        pass

    capped = create_model("Capped", __base__=PredictRequest, amount=(float, Field(..., ge=0, le=1_000)))
    names = ("predict", "not_ready", "log_full", "validation_error")
    answers = SimpleNamespace(
        **{n: getattr(handlers, n) for n in names}, readiness=lambda _ctx: {"status": "mine"}
    )
    app = create_app(serving_settings, holder_class=Holder, handlers=answers, request_model=capped)
    with TestClient(app) as c:
        assert app.state.holder.wait_ready(30) and type(app.state.holder) is Holder
        assert c.get("/readyz").json() == {"status": "mine"}
        assert c.post("/v1/predict", json={**GOOD, "amount": 5_000.0}).status_code == 422
        batch = c.post("/v1/predict/batch", json={"rows": [{**GOOD, "amount": 5_000.0}]})
        assert batch.status_code == 422 and batch.json()["detail"][0]["loc"][-1] == "amount"
        assert c.post("/v1/predict", json=GOOD).status_code == 200
        text = c.get("/metrics").text
        assert 'mlops_model_loads_total{variant="stable"} 1.0' in text
        assert 'mlops_model_info{model_version="1",variant="stable"} 1.0' in text


def test_polling_survives_a_refresh_that_raises(serving_settings: Settings) -> None:
    """The reference refresh never raises; a learner's might. The polling thread keeps going."""

    class Flaky(ModelHolder):
        calls = 0

        def refresh(self, force: bool = False) -> bool:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("a bug in refresh")
            return super().refresh(force)

    holder = Flaky(serving_settings, "champion")
    holder.start()
    try:
        assert holder.wait_ready(30) and Flaky.calls >= 2
    finally:
        holder.stop()
