"""A solution of lab 1's `predict-endpoint` (exercises/lab1/handlers.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab1/predict-endpoint.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

import re
import uuid

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mlops_lab.serving.context import ServerContext
from mlops_lab.serving.schemas import REQUEST_ID_PATTERN, RequestFields


def predict(ctx: ServerContext, body: RequestFields, x_request_id: str | None) -> JSONResponse:
    """POST /v1/predict: score one validated request, log it, answer it."""
    # Take the model once: a reload may replace ctx.holder.current while this request is scored,
    # and the score, the version and the threshold must all come from the same model.
    model = ctx.holder.current
    if model is None:
        return not_ready(ctx)
    features = body.features()
    score, latency_ms = ctx.score(model, features)
    # The header is a client's string: it becomes a key of the log only if it is a valid id.
    header_id = x_request_id if x_request_id and re.fullmatch(REQUEST_ID_PATTERN, x_request_id) else None
    request_id = body.request_id or header_id or uuid.uuid4().hex
    row = ctx.log_prediction(model, request_id, features, score, latency_ms)
    if row is None:  # the log did not take it: answering 200 would acknowledge a lost prediction
        return log_full(ctx)
    return JSONResponse(ctx.answer(row))


def not_ready(ctx: ServerContext) -> JSONResponse:
    """The 503 of every route that needs a model while none is loaded."""
    # Retry-After is for machines (clients, the router, a load balancer); the detail is for the
    # human reading the logs: why there is no model.
    return JSONResponse(
        {"detail": ctx.holder.not_ready_reason or "model not loaded"},
        status_code=503,
        headers={"Retry-After": str(ctx.settings.retry_after_s)},
    )


def log_full(ctx: ServerContext) -> JSONResponse:
    """The 503 when the prediction log's bounded queue is full (back-pressure)."""
    # 503, not 429: the server as a whole cannot take it now; this client did nothing wrong.
    return JSONResponse(
        {"detail": "prediction log is full; retry shortly"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def readiness(ctx: ServerContext) -> dict[str, str] | JSONResponse:
    """GET /readyz: 200 {"status": "ready", "model_version": ...} with a model, else not_ready()."""
    # Readiness takes a pod out of the Service; liveness (/healthz) restarts it. A server without
    # a model must leave rotation, not be restarted: a restart cannot bring the registry back.
    model = ctx.holder.current
    if model is None:
        return not_ready(ctx)
    return {"status": "ready", "model_version": model.version}


def validation_error(exc: RequestValidationError) -> JSONResponse:
    """The 422 of a request that fails validation."""
    # Only where, what and which kind of error: the input itself may hold NaN, which JSON cannot
    # carry, and echoing it would turn a client's mistake into a 500.
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)
