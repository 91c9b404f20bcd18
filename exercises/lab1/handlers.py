"""Lab 1, exercise `predict-endpoint`: the model server's answers and its readiness gate.

    make lab-1        grade it          make hint-1      one more hint
    Reference: reference/mlops_lab/serving/handlers.py   Docs: docs/labs/lab-1-serving.md
    Run yours: mlops-lab serve --impl exercises           (then curl 127.0.0.1:8001/readyz)

The reference app (`mlops_lab.serving.app.create_app`) owns the plumbing: the routes, the
prediction log writer, metrics, the lifespan that drains the log on shutdown, the body size
limit, the batch route, /admin/reload. It calls these five functions for what a client and an
orchestrator see. Each gets `ctx` (`mlops_lab.serving.context.ServerContext`, written):

    ctx.holder.current            the model to score with, None until one is loaded
    ctx.holder.not_ready_reason   why there is no model (for the 503)
    ctx.settings.retry_after_s    when a client or a router should come back
    ctx.score(model, features)    -> (score, latency_ms), measured for you
    ctx.log_prediction(model, request_id, features, score, latency_ms)
                                  -> the prediction log's row, or None when the log is full
    ctx.answer(row)               -> {request_id, model_version, score, decision, variant}
"""

from __future__ import annotations

import uuid

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mlops_lab.serving.context import ServerContext
from mlops_lab.serving.schemas import REQUEST_ID_PATTERN, RequestFields


def predict(ctx: ServerContext, body: RequestFields, x_request_id: str | None) -> JSONResponse:
    """POST /v1/predict: score one validated request, log it, answer it."""
    # TODO(lab-1): score `body` (its features are body.features()) and answer with ctx.answer(row).
    #  Contract:
    #  - no model loaded: your not_ready() answer, never a 500;
    #  - a 200 only for a prediction the log has taken; a full log gets your log_full() answer
    #    (an acknowledged prediction must never be lost);
    #  - the request id is body.request_id, else the X-Request-ID header when it is a valid id
    #    (REQUEST_ID_PATTERN), else a fresh uuid4 hex: a client's garbage never becomes a key
    #    of the log.
    #  Think: a reload can replace ctx.holder.current between two lines of this function. Which
    #  model must the score, the model_version and the decision threshold come from?
    raise NotImplementedError("TODO(lab-1): the predict route")


def not_ready(ctx: ServerContext) -> JSONResponse:
    """The 503 of every route that needs a model while none is loaded."""
    # TODO(lab-1): a 503 whose detail says why (the holder's reason) and whose Retry-After header
    # says when to come back (the settings). Think: who reads the header, who reads the detail?
    raise NotImplementedError("TODO(lab-1): the 503 answer")


def log_full(ctx: ServerContext) -> JSONResponse:
    """The 503 when the prediction log's bounded queue is full (back-pressure)."""
    # TODO(lab-1): a 503 that tells the client to retry shortly (a Retry-After of about a
    # second), with a detail saying the prediction log is full. Think: why 503 and not 429?
    raise NotImplementedError("TODO(lab-1): the 503 of a full prediction log")


def readiness(ctx: ServerContext) -> dict[str, str] | JSONResponse:
    """GET /readyz: 200 {"status": "ready", "model_version": ...} with a model, else not_ready()."""
    # TODO(lab-1): ready means a model is loaded. /healthz (written) answers "alive" whatever
    # happens. Think: what does Kubernetes do when each of the two fails?
    raise NotImplementedError("TODO(lab-1): the readiness gate")


def validation_error(exc: RequestValidationError) -> JSONResponse:
    """The 422 of a request that fails validation."""
    # TODO(lab-1): a 422 whose "detail" lists one object per error in exc.errors() with exactly
    # loc (a list), msg and type, and nothing else. FastAPI's default answer also echoes the
    # input: with NaN in it the answer cannot be serialised and the client gets a 500.
    raise NotImplementedError("TODO(lab-1): the 422 answer")
