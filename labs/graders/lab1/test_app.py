"""Grader of lab 1 / predict-endpoint (exercises/lab1/app.py): routes and the readiness gate.

The app runs with its real lifespan (prediction log writer, holder thread) in TestClient; the
holder loads a real model fitted by the grader instead of going through MLflow.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.grading import TinyModel, loaded_model
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.serving.holder import LoadError, ModelHolder
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

RETRY_AFTER = 7


def make_client(impl: ModuleType, home: Path, loader: Any) -> TestClient:
    settings = Settings(home=home, reload_poll_s=3600, retry_after_s=RETRY_AFTER)
    holder = ModelHolder(settings, "champion", loader=loader)
    app = impl.create_app(settings, "stable", holder=holder)
    return TestClient(app, raise_server_exceptions=False)


def no_model(_settings: Settings, _alias: str) -> Any:
    raise LoadError("no version of fraud-detector has alias @champion yet")


@pytest.fixture
def not_ready(impl: ModuleType, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(impl, tmp_path, no_model) as client:
        yield client


@pytest.fixture
def ready(impl: ModuleType, tmp_path: Path, tiny_model: TinyModel) -> Iterator[TestClient]:
    with make_client(impl, tmp_path, lambda _s, _a: loaded_model(tiny_model, "3")) as client:
        for _ in range(200):  # the holder loads in its background thread
            if client.app.state.holder.current is not None:  # type: ignore[attr-defined]
                break
            client.app.state.holder.wait_ready(0.05)  # type: ignore[attr-defined]
        yield client


def body(tiny: TinyModel, i: int = 0, **extra: Any) -> dict[str, Any]:
    return {**tiny.rows[i], **extra}


def show(r: Any) -> str:
    return f"{r.status_code} {r.text[:200]}"


def test_alive_without_a_model(not_ready: TestClient) -> None:
    """/healthz answers 200 even before a model is loaded (alive is not ready)"""
    r = not_ready.get("/healthz")
    assert r.status_code == 200, f"expected 200 from /healthz without a model, got {show(r)}"


def test_readyz_503(not_ready: TestClient) -> None:
    """/readyz answers 503 with Retry-After and the reason while no model is loaded"""
    r = not_ready.get("/readyz")
    assert r.status_code == 503, f"expected 503 from /readyz without a model, got {show(r)}"
    assert r.headers.get("retry-after") == str(RETRY_AFTER), (
        f"expected a Retry-After: {RETRY_AFTER} header (settings.retry_after_s), "
        f"got {r.headers.get('retry-after')}"
    )
    assert "champion" in r.text, f"expected the holder's not_ready_reason in the detail, got {r.text[:200]}"


def test_predict_503(not_ready: TestClient, tiny_model: TinyModel) -> None:
    """/v1/predict answers 503 with Retry-After (not 500) while no model is loaded"""
    r = not_ready.post("/v1/predict", json=body(tiny_model))
    assert r.status_code == 503, f"expected 503 from /v1/predict without a model, got {show(r)}"
    assert r.headers.get("retry-after"), "expected a Retry-After header on the 503"


def test_readyz_200(ready: TestClient) -> None:
    """/readyz answers 200 with the model version once a model is loaded"""
    r = ready.get("/readyz")
    assert r.status_code == 200, f"expected 200 from /readyz with a model loaded, got {show(r)}"
    assert r.json().get("model_version") == "3", f"expected model_version '3' in {r.text[:200]}"


def test_predict_answer(ready: TestClient, tiny_model: TinyModel) -> None:
    """/v1/predict answers request_id, model_version, score, decision and variant"""
    r = ready.post("/v1/predict", json=body(tiny_model, request_id="grader-1"))
    assert r.status_code == 200, f"expected 200 from /v1/predict, got {show(r)}"
    got = r.json()
    want = {"request_id", "model_version", "score", "decision", "variant"}
    assert want <= set(got), f"expected the fields {sorted(want)}, got {sorted(got)}"
    assert got["request_id"] == "grader-1", f"expected the request_id back, got {got['request_id']!r}"
    assert (got["model_version"], got["variant"]) == ("3", "stable"), (
        f"expected version 3 / stable, got {got}"
    )


def test_predict_scores_with_the_model(ready: TestClient, tiny_model: TinyModel) -> None:
    """the score is the loaded model's score and the decision applies its threshold"""
    import pandas as pd

    for i in range(5):
        r = ready.post("/v1/predict", json=body(tiny_model, i))
        assert r.status_code == 200, f"expected 200 from /v1/predict, got {show(r)}"
        got = r.json()
        frame = pd.DataFrame([tiny_model.rows[i]], columns=SCHEMA.names)
        want = float(fraud_model.scores(tiny_model.pipeline, frame)[0])
        assert abs(got.get("score", -1) - want) < 1e-6, f"row {i}: expected score {want:.6f}, got {got}"
        assert got["decision"] == (want >= tiny_model.threshold), (
            f"row {i}: decision wrong for score {want:.4f}"
        )


def test_request_id_header(ready: TestClient, tiny_model: TinyModel) -> None:
    """without request_id in the body, the X-Request-ID header or a fresh id is used"""
    r = ready.post("/v1/predict", json=body(tiny_model), headers={"X-Request-ID": "from-header"})
    assert r.status_code == 200 and r.json().get("request_id") == "from-header", (
        f"expected request_id 'from-header', got {show(r)}"
    )
    a, b = (ready.post("/v1/predict", json=body(tiny_model)).json().get("request_id") for _ in range(2))
    assert a and b and a != b, f"expected two different generated request ids, got {a!r} and {b!r}"


def test_422_field_errors(ready: TestClient, tiny_model: TinyModel) -> None:
    """invalid input is a 422 listing loc, msg and type per error"""
    r = ready.post("/v1/predict", json=body(tiny_model, amount=-1))
    assert r.status_code == 422, f"expected 422 for amount=-1, got {show(r)}"
    detail = r.json().get("detail")
    assert isinstance(detail, list) and detail, (
        f"expected a list of field errors in detail, got {r.text[:200]}"
    )
    assert all({"loc", "msg", "type"} <= set(e) for e in detail), f"each error needs loc, msg, type: {detail}"
    assert any("amount" in e["loc"] for e in detail), f"expected an error located at amount, got {detail}"


def test_422_for_nan(ready: TestClient, tiny_model: TinyModel) -> None:
    """NaN in the body is a 422 without the input echoed (FastAPI's default answer is a 500 here)"""
    import json

    raw = json.dumps(body(tiny_model, distance_from_home_km=float("nan")))
    r = ready.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, f"expected 422 for NaN, got {show(r)}"
    assert "input" not in r.text, f"expected no echo of the input in the 422, got {r.text[:200]}"


def test_predictions_are_logged(impl: ModuleType, tmp_path: Path, tiny_model: TinyModel) -> None:
    """every answered prediction is in the prediction store after shutdown"""
    with make_client(impl, tmp_path, lambda _s, _a: loaded_model(tiny_model, "3")) as client:
        client.app.state.holder.wait_ready(10)  # type: ignore[attr-defined]
        answered = {
            r.json()["request_id"]
            for i in range(30)
            if (r := client.post("/v1/predict", json=body(tiny_model, i))).status_code == 200
        }
    assert len(answered) == 30, f"expected 30 answered predictions, got {len(answered)}"
    store = Store(f"sqlite:///{(tmp_path / 'store.db').resolve()}")
    try:
        logged = store.prediction_ids()
    finally:
        store.dispose()
    missing = answered - logged
    assert not missing, f"expected every answered prediction in the store, {len(missing)} of 30 are missing"
