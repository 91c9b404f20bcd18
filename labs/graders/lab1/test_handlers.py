"""Grader of lab 1 / predict-endpoint (exercises/lab1/handlers.py): the answers and the readiness gate.

The reference app (`mlops_lab.serving.app.create_app`) serves with the handlers under test and
its real lifespan (prediction log writer, holder thread) in TestClient; the holder loads a real
model fitted by the grader instead of going through MLflow.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.grading import TinyModel, loaded_model
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.serving.app import create_app
from mlops_lab.serving.holder import LoadError, ModelHolder
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

RETRY_AFTER = 7
READY_WAIT_S = 120  # the holder's thread loads a prebuilt model: this only bounds a hang


def settings_for(home: Path, **extra: Any) -> Settings:
    return Settings(home=home, reload_poll_s=3600, retry_after_s=RETRY_AFTER, **extra)


def client_of(app: FastAPI) -> TestClient:
    """A TestClient whose 500s say which exception the server raised (in the failure message)."""

    async def explain(_request: Any, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse(f"{exc.__class__.__name__}: {exc}", status_code=500)

    app.add_exception_handler(Exception, explain)
    return TestClient(app, raise_server_exceptions=False)


def make_client(impl: ModuleType, home: Path, loader: Any, **extra: Any) -> TestClient:
    settings = settings_for(home, **extra.pop("settings", {}))
    holder = ModelHolder(settings, "champion", loader=loader)
    return client_of(create_app(settings, "stable", holder=holder, handlers=impl, **extra))


def no_model(_settings: Settings, _alias: str) -> Any:
    raise LoadError("no version of fraud-detector has alias @champion yet")


def wait_ready(client: TestClient) -> None:
    holder = client.app.state.holder  # type: ignore[attr-defined]
    assert holder.wait_ready(READY_WAIT_S), f"the holder loaded no model: {holder.not_ready_reason}"


@pytest.fixture
def not_ready(impl: ModuleType, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(impl, tmp_path, no_model) as client:
        holder = client.app.state.holder  # type: ignore[attr-defined]
        for _ in range(READY_WAIT_S * 20):  # until the first (failing) load has been tried
            if holder.load_failures:
                break
            holder.wait_ready(0.05)
        yield client


@pytest.fixture
def ready(impl: ModuleType, tmp_path: Path, tiny_model: TinyModel) -> Iterator[TestClient]:
    with make_client(impl, tmp_path, lambda _s, _a: loaded_model(tiny_model, "3")) as client:
        wait_ready(client)
        yield client


def body(tiny: TinyModel, i: int = 0, **extra: Any) -> dict[str, Any]:
    return {**tiny.rows[i], **extra}


def show(r: Any) -> str:
    return f"{r.status_code} {r.text[:200]}"


def test_readyz_503(not_ready: TestClient) -> None:
    """/readyz answers 503 with Retry-After and the reason while no model is loaded"""
    r = not_ready.get("/readyz")
    assert r.status_code == 503, f"expected 503 from /readyz without a model, got {show(r)}"
    assert r.headers.get("retry-after") == str(RETRY_AFTER), (
        f"expected a Retry-After: {RETRY_AFTER} header (settings.retry_after_s), "
        f"got {r.headers.get('retry-after')}"
    )
    assert "alias @champion" in r.text, (
        f"expected the holder's not_ready_reason in the detail, got {r.text[:200]}"
    )


def test_predict_503(not_ready: TestClient, tiny_model: TinyModel) -> None:
    """/v1/predict answers 503 with Retry-After and the reason (not 500) while no model is loaded"""
    r = not_ready.post("/v1/predict", json=body(tiny_model))
    assert r.status_code == 503, f"expected 503 from /v1/predict without a model, got {show(r)}"
    assert r.headers.get("retry-after") == str(RETRY_AFTER), (
        f"expected a Retry-After: {RETRY_AFTER} header on the 503, got {r.headers.get('retry-after')}"
    )
    assert "alias @champion" in r.text, f"expected the reason in the detail, got {r.text[:200]}"


def test_readyz_200(ready: TestClient) -> None:
    """/readyz answers 200 with the model version once a model is loaded"""
    r = ready.get("/readyz")
    assert r.status_code == 200, f"expected 200 from /readyz with a model loaded, got {show(r)}"
    want = {"status": "ready", "model_version": "3"}
    assert r.json() == want, f"expected {want}, got {r.text[:200]}"


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
    for i in range(5):
        r = ready.post("/v1/predict", json=body(tiny_model, i))
        assert r.status_code == 200, f"expected 200 from /v1/predict, got {show(r)}"
        got = r.json()
        frame = pd.DataFrame([tiny_model.rows[i]], columns=SCHEMA.names)
        want = float(fraud_model.scores(tiny_model.pipeline, frame)[0])
        assert abs(got.get("score", -1) - want) < 1e-6, f"row {i}: expected score {want:.6f}, got {got}"
        assert got["decision"] == (want >= tiny_model.threshold), (
            f"row {i}: expected decision {want >= tiny_model.threshold} for score {want:.4f}, got {got}"
        )


def test_request_id_header(ready: TestClient, tiny_model: TinyModel) -> None:
    """without request_id in the body, the X-Request-ID header is used, else a fresh id each time"""
    r = ready.post("/v1/predict", json=body(tiny_model), headers={"X-Request-ID": "from-header"})
    assert r.status_code == 200 and r.json().get("request_id") == "from-header", (
        f"expected request_id 'from-header', got {show(r)}"
    )
    r = ready.post("/v1/predict", json=body(tiny_model, request_id="in-body"), headers={"X-Request-ID": "h"})
    assert r.status_code == 200 and r.json().get("request_id") == "in-body", (
        f"expected the body's request_id 'in-body' to win over the header, got {show(r)}"
    )
    a, b = (ready.post("/v1/predict", json=body(tiny_model)).json().get("request_id") for _ in range(2))
    assert a and b and a != b, f"expected two different generated request ids, got {a!r} and {b!r}"


@pytest.mark.parametrize("header", ["x" * 65, "id with spaces", "<script>", "a/b"])
def test_request_id_header_validated(ready: TestClient, tiny_model: TinyModel, header: str) -> None:
    """an X-Request-ID that is not a valid id is replaced by a fresh one, never stored

    The id becomes a key of the prediction log and shows up in dashboards: an id from outside
    is only trusted when it matches REQUEST_ID_PATTERN (re.fullmatch).
    """
    r = ready.post("/v1/predict", json=body(tiny_model), headers={"X-Request-ID": header})
    assert r.status_code == 200, f"expected 200 (the header is not the body), got {show(r)}"
    got = r.json().get("request_id")
    assert isinstance(got, str) and re.fullmatch(r"[0-9a-f]{32}", got), (
        f"expected a fresh uuid4 hex id for the invalid header {header!r}, got {got!r}"
    )


def test_422_field_errors(ready: TestClient, tiny_model: TinyModel) -> None:
    """invalid input is a 422 listing, per error, exactly loc, msg and type"""
    r = ready.post("/v1/predict", json=body(tiny_model, amount=-1, channel="fax"))
    assert r.status_code == 422, f"expected 422 for amount=-1, got {show(r)}"
    detail = r.json().get("detail")
    assert isinstance(detail, list) and len(detail) == 2, (
        f"expected a list of two field errors (amount, channel) in detail, got {r.text[:300]}"
    )
    keys = [sorted(e) for e in detail]
    assert all(k == ["loc", "msg", "type"] for k in keys), (
        f"expected exactly the keys loc, msg, type in each error, got {keys}"
    )
    assert all(isinstance(e["loc"], list) for e in detail), f"expected loc as a list, got {detail}"
    located = sorted(str(e["loc"][-1]) for e in detail)
    assert located == ["amount", "channel"], f"expected errors located at amount and channel, got {located}"


@pytest.mark.parametrize("literal", ["NaN", "Infinity"])
def test_422_for_nan(ready: TestClient, tiny_model: TinyModel, literal: str) -> None:
    """NaN or infinity in the body is a 422 without the input echoed (FastAPI's default is a 500)"""
    raw = json.dumps(body(tiny_model, distance_from_home_km=1234.5678)).replace("1234.5678", literal)
    r = ready.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, f"expected 422 for {literal}, got {show(r)}"
    detail = r.json().get("detail")
    keys = [sorted(e) for e in detail] if isinstance(detail, list) else detail
    assert keys and all(k == ["loc", "msg", "type"] for k in keys), (
        f"expected errors with exactly loc, msg and type (no input), got {r.text[:200]}"
    )


def test_predictions_are_logged(impl: ModuleType, tmp_path: Path, tiny_model: TinyModel) -> None:
    """every answered prediction is in the prediction store after shutdown"""
    with make_client(impl, tmp_path, lambda _s, _a: loaded_model(tiny_model, "3")) as client:
        wait_ready(client)
        answers = [client.post("/v1/predict", json=body(tiny_model, i)) for i in range(30)]
    for r in answers:
        assert r.status_code == 200, f"expected 200 from /v1/predict, got {show(r)}"
    answered = {r.json()["request_id"] for r in answers}
    assert len(answered) == 30, f"expected 30 different request ids, got {len(answered)}"
    store = Store(f"sqlite:///{(tmp_path / 'store.db').resolve()}")
    try:
        logged = store.prediction_ids()
    finally:
        store.dispose()
    missing = answered - logged
    assert not missing, f"expected every answered prediction in the store, {len(missing)} of 30 are missing"


class StuckStore:
    """A prediction store that takes nothing until `release` is set (a locked database)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.rows: list[Mapping[str, Any]] = []

    def insert_predictions(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.release.wait(READY_WAIT_S)
        self.rows.extend(rows)


def test_full_log_503(impl: ModuleType, tmp_path: Path, tiny_model: TinyModel) -> None:
    """a full prediction log answers 503 with Retry-After, and only what it took is acknowledged

    ctx.log_prediction returns None when the bounded queue refused the row: that request must
    not get a 200, since its row will never be written.
    """
    store = StuckStore()
    settings = {"store_queue_size": 2, "store_flush_rows": 1}
    loader = lambda _s, _a: loaded_model(tiny_model, "3")  # noqa: E731
    with make_client(impl, tmp_path, loader, settings=settings, store=store) as client:
        try:
            wait_ready(client)
            answers = [client.post("/v1/predict", json=body(tiny_model, i)) for i in range(8)]
        finally:
            store.release.set()  # the database is back: the queue drains at shutdown
    codes = [r.status_code for r in answers]
    for r in answers:
        assert r.status_code in (200, 503), f"expected only 200 and 503, got {show(r)}"
    assert 503 in codes, f"expected 503s once the log's queue (2 rows) is full, got {codes}"
    assert all(r.headers.get("retry-after") for r in answers if r.status_code == 503), (
        "expected a Retry-After header on every 503 of a full log"
    )
    acknowledged = {r.json()["request_id"] for r in answers if r.status_code == 200}
    logged = {str(row["request_id"]) for row in store.rows}
    assert acknowledged == logged, (
        f"expected exactly the acknowledged predictions in the log, got {len(acknowledged)} "
        f"acknowledged and {len(logged)} logged"
    )


class SwappingHolder(ModelHolder):
    """A reload lands between any two reads of `current`: every read returns another model.

    Model n has version "n", always scores SCORES[n] and has a threshold that flags it when n is
    even and clears it when n is odd, so an answer mixing two models shows in its numbers.
    """

    def __init__(self, settings: Settings, base: Any) -> None:
        super().__init__(settings, "champion")
        self.base, self.reads = base, 0
        self.lock = threading.Lock()

    @property  # type: ignore[override]
    def current(self) -> Any:
        with self.lock:  # the app's middleware reads it too
            self.reads += 1
            n = self.reads
        return replace(self.base, version=str(n), threshold=threshold_of(n), compiled=lambda _f: score_of(n))

    @current.setter
    def current(self, _value: Any) -> None:
        pass

    def start(self) -> None:  # no polling thread: the models are given
        pass


def score_of(n: int) -> float:
    """Model n's score: a different one for each of the first 400 models."""
    return round(0.1 + (n % 400) * 0.002, 3)


def threshold_of(n: int) -> float:
    return 0.0 if n % 2 == 0 else 1.0


def test_one_model_per_request(impl: ModuleType, tmp_path: Path, tiny_model: TinyModel) -> None:
    """score, decision and model_version come from one model, even when a reload swaps it mid-request

    Read ctx.holder.current once into a local and use that model for everything: scoring,
    logging and the answer.
    """
    settings = settings_for(tmp_path)
    holder = SwappingHolder(settings, loaded_model(tiny_model, "0"))
    app = create_app(settings, "stable", holder=holder, handlers=impl)
    with client_of(app) as client:
        answers = [client.post("/v1/predict", json=body(tiny_model, i)) for i in range(6)]
    for r in answers:
        assert r.status_code == 200, f"expected 200 from /v1/predict, got {show(r)}"
        got = r.json()
        version = got.get("model_version")
        n = int(version) if isinstance(version, str) and version.isdigit() else -1
        want = (version, score_of(n), score_of(n) >= threshold_of(n))
        have = (version, got.get("score"), got.get("decision"))
        assert n > 0 and have == want, (
            f"expected the score and decision of the model whose version is answered, "
            f"(version, score, decision) = {want}; got {have} (each read of holder.current "
            f"returned another model)"
        )
