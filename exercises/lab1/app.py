"""Lab 1, exercise `predict-endpoint`: the model server's routes and its readiness gate.

    make lab-1        grade it          make hint-1      one more hint
    Reference: reference/mlops_lab/serving/app.py        Docs: docs/labs/lab-1-serving.md
    Run yours: mlops-lab serve --impl exercises           (then curl 127.0.0.1:8001/readyz)

`create_app(settings, variant, holder=..., store=...)` returns the FastAPI app. The plumbing is
written (the prediction log writer, metrics, the lifespan that drains the log on shutdown); you
write what a client and an orchestrator see:

- POST /v1/predict scores one request with `holder.current`, logs it, answers
  {request_id, model_version, score, decision, variant};
- GET /healthz says "alive" (always 200), GET /readyz says "ready" only with a model loaded;
- while no model is loaded, /readyz and /v1/predict answer 503 with a Retry-After header;
- invalid requests get a 422 whose detail lists, per error, only loc, msg and type.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Header
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mlops_lab.serving.app import ALIAS_OF, describe
from mlops_lab.serving.holder import LoadedModel, ModelHolder
from mlops_lab.serving.metrics import ServerMetrics
from mlops_lab.serving.schemas import ModelInfo, PredictRequest, PredictResponse
from mlops_lab.settings import Settings, Variant
from mlops_lab.store.db import Store, utcnow
from mlops_lab.store.writer import BatchWriter


def create_app(
    settings: Settings,
    variant: Variant = "stable",
    *,
    holder: ModelHolder | None = None,
    store: Store | None = None,
) -> FastAPI:
    metrics = ServerMetrics(variant)
    holder = holder or ModelHolder(
        settings, ALIAS_OF[variant], on_load=lambda m: metrics.served_version(m.version)
    )
    settings.ensure_dirs()
    store = store or Store(settings.resolved_store_url)
    writer = BatchWriter(
        store,
        max_queue=settings.store_queue_size,
        flush_rows=settings.store_flush_rows,
        flush_interval_s=settings.store_flush_interval_s,
        shutdown_timeout_s=settings.store_shutdown_timeout_s,
        spill_dir=settings.home / "spill",
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        writer.start()
        holder.start()
        try:
            yield
        finally:
            # uvicorn has finished every in-flight request by now: drain the log to the store.
            holder.stop()
            await asyncio.to_thread(writer.close)

    app = FastAPI(title=f"mlops-lab model server ({variant}, lab 1 exercise)", lifespan=lifespan)
    app.state.holder, app.state.writer = holder, writer

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Any, exc: RequestValidationError) -> JSONResponse:
        # TODO(lab-1): answer 422 with {"detail": [{"loc": [...], "msg": "...", "type": "..."}, ...]}
        # built from exc.errors(). Do not echo the input: NaN in it cannot be serialised (a 500).
        raise NotImplementedError("TODO(lab-1): the 422 answer")

    def not_ready() -> JSONResponse:
        # TODO(lab-1): a 503 whose detail says why (holder.not_ready_reason) and whose
        # Retry-After header (settings.retry_after_s) tells clients and routers when to come back.
        raise NotImplementedError("TODO(lab-1): the 503 answer")

    def score_features(model: LoadedModel, features: dict[str, Any]) -> float:
        score = model.score_one(features)
        if settings.inject_latency_ms:  # the lab1/slow-model scenario: a slow model blocks the worker
            time.sleep(settings.inject_latency_ms / 1000)
        return score

    def record(model: LoadedModel, request_id: str, features: dict[str, Any], score: float) -> dict[str, Any]:
        """The prediction log row (also the source of the answer)."""
        decision = score >= model.threshold
        metrics.observe_prediction(model.version, score, decision)
        return {
            "request_id": request_id,
            "ts": utcnow(),
            "variant": variant,
            "model_version": model.version,
            "features": features,
            "score": score,
            "decision": decision,
            "latency_ms": 0.0,
        }

    @app.post("/v1/predict", response_model=PredictResponse, responses={503: {"description": "not ready"}})
    async def predict(body: PredictRequest, x_request_id: str | None = Header(None)) -> Any:
        # TODO(lab-1): score one request.
        #  1. take the model once (model = holder.current): a reload may swap it meanwhile;
        #     no model -> not_ready()
        #  2. features = body.features(); score = score_features(model, features)
        #  3. row = record(model, request_id, features, score) where request_id is
        #     body.request_id, else the X-Request-ID header, else uuid.uuid4().hex
        #  4. writer.submit(row) returns False when the log is full: answer 503, never drop silently
        #  5. answer {request_id, model_version, score, decision, variant} from the row
        raise NotImplementedError("TODO(lab-1): the predict route")

    @app.get("/v1/model", response_model=ModelInfo)
    async def model_info() -> ModelInfo:
        return describe(settings, holder)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", responses={503: {"description": "not ready"}})
    async def readyz() -> Any:
        # TODO(lab-1): 200 {"status": "ready", "model_version": ...} with a model, else not_ready().
        raise NotImplementedError("TODO(lab-1): the readiness gate")

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
