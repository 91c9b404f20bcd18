"""The model server's answers: what a client and an orchestrator see.

    python -c "import mlops_lab.serving.handlers as h; help(h)"

`create_app` (app.py) owns the plumbing (routes, the prediction log writer, metrics, the
lifespan, the body limit, the batch route, /admin/reload, latency) and calls these functions
for the answers. Lab 1's `predict-endpoint` exercise writes them (exercises/lab1/handlers.py),
and `mlops-lab serve --impl exercises` serves with the learner's.

- `predict`: POST /v1/predict. Scores with the model taken once from the holder (a reload may
  swap it meanwhile), acknowledges only what the prediction log has taken.
- `readiness`: GET /readyz. Ready only with a model loaded; /healthz (alive) needs nothing.
- `not_ready`: the 503 of every route that needs a model, with Retry-After and the reason.
- `log_full`: the 503 when the prediction log's bounded queue is full (back-pressure).
- `validation_error`: the 422, with field errors only (loc, msg, type): FastAPI's default
  echoes the input, which fails to serialise for NaN/inf and turns a client error into a 500.
"""

from __future__ import annotations

import uuid

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mlops_lab.serving.context import ServerContext
from mlops_lab.serving.schemas import RequestFields


# --8<-- [start:predict]
def predict(ctx: ServerContext, body: RequestFields, x_request_id: str | None) -> JSONResponse:
    model = ctx.holder.current  # once: a reload may swap holder.current while this request scores
    if model is None:
        return not_ready(ctx)
    features = body.features()
    score, latency_ms = ctx.score(model, features)
    request_id = body.request_id or _valid_id(x_request_id) or uuid.uuid4().hex
    row = ctx.log_prediction(model, request_id, features, score, latency_ms)
    if row is None:
        return log_full(ctx)
    return JSONResponse(ctx.answer(row))


# --8<-- [end:predict]


# --8<-- [start:not_ready]
def not_ready(ctx: ServerContext) -> JSONResponse:
    return JSONResponse(
        {"detail": ctx.holder.not_ready_reason or "model not loaded"},
        status_code=503,
        headers={"Retry-After": str(ctx.settings.retry_after_s)},
    )


# --8<-- [end:not_ready]


def log_full(_ctx: ServerContext) -> JSONResponse:
    return JSONResponse(
        {"detail": "prediction log is full; retry shortly"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


# --8<-- [start:readiness]
def readiness(ctx: ServerContext) -> dict[str, str] | JSONResponse:
    m = ctx.holder.current
    if m is None:
        return not_ready(ctx)
    return {"status": "ready", "model_version": m.version}


# --8<-- [end:readiness]


# --8<-- [start:validation_error]
def validation_error(exc: RequestValidationError) -> JSONResponse:
    # Field errors only: where, what, and the error type. Never the input (NaN cannot be serialised).
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


# --8<-- [end:validation_error]


def _valid_id(value: str | None) -> str | None:
    """A client's X-Request-ID, if it is one we would store (it becomes a key of the log)."""
    if value and 0 < len(value) <= 64 and all(c.isalnum() or c in "_.:-" for c in value):
        return value
    return None
