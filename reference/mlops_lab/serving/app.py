"""The model server: `create_app(settings, variant)` returns the FastAPI app.

    mlops-lab serve --variant stable --port 8001
    curl -s 127.0.0.1:8001/v1/predict -H 'content-type: application/json' \
      -d '{"amount": 182.5, "merchant_category": "electronics", "channel": "online", "country": "US",
           "hour": 2, "account_age_days": 41, "txn_count_24h": 6, "distance_from_home_km": 12.4,
           "device_os": "android"}'

Routes: POST /v1/predict, POST /v1/predict/batch, GET /v1/model, GET /healthz (alive),
GET /readyz (model loaded and warmed), GET /metrics, POST /admin/reload (bearer token).

The predict routes are rate limited per client (`mlops_lab.serving.limiter`, a token bucket; a
batch costs its row count): over the rate, 429 with Retry-After. The client is the X-Client-Id
header, else the peer address. The holder keeps its last versions in an LRU cache
(`mlops_lab.serving.cache`), so a rollback to one of them is a swap in memory; /v1/model says
where the model came from and how long its load took.

The answers (what a client and an orchestrator see) are `mlops_lab.serving.handlers`; the
request body is `mlops_lab.serving.schemas.PredictRequest`; `mlops-lab serve --impl exercises`
passes lab 1's instead (with the learner's holder class, wired to the same metrics), and lab 6's
cache and rate limiter classes.

Endpoints that score are `async def` on purpose: scoring one row takes microseconds, far less
than a hop to the threadpool, and this server runs one uvicorn worker per process.
"""

from __future__ import annotations

import asyncio
import gc
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field, create_model

from mlops_lab.lifecycle.aliases import CHALLENGER, CHAMPION
from mlops_lab.serving import handlers as reference_handlers
from mlops_lab.serving.cache import LRUCache
from mlops_lab.serving.columns import BatchRequest as ColumnarBatch
from mlops_lab.serving.columns import BatchRoute, Columns, batch_answer
from mlops_lab.serving.context import ServerContext
from mlops_lab.serving.holder import CachedLoader, LoadedModel, ModelCache, ModelHolder
from mlops_lab.serving.limiter import RateLimiter
from mlops_lab.serving.metrics import LatencyMiddleware, ServerMetrics
from mlops_lab.serving.schemas import (
    BatchRequest,
    BatchResponse,
    ModelInfo,
    PredictRequest,
    PredictResponse,
    RequestFields,
)
from mlops_lab.settings import Settings, Variant
from mlops_lab.store.db import Store
from mlops_lab.store.writer import BatchWriter, spilled_rows

MAX_BODY_BYTES = 8 * 1024 * 1024  # a 5,000-row batch is ~1.5 MB; anything far larger is refused early
MAX_CLIENT_ID = 128  # characters of X-Client-Id kept: 10,000 buckets must stay a few MB

ALIAS_OF: dict[str, str] = {"stable": CHAMPION, "canary": CHALLENGER}


class Handlers(Protocol):
    """The answers create_app asks for (mlops_lab.serving.handlers, or lab 1's exercise)."""

    def predict(self, ctx: ServerContext, body: Any, x_request_id: str | None) -> Any: ...
    def readiness(self, ctx: ServerContext) -> Any: ...
    def not_ready(self, ctx: ServerContext) -> Any: ...
    def log_full(self, ctx: ServerContext) -> Any: ...
    def validation_error(self, exc: RequestValidationError) -> Any: ...


class Limiter(Protocol):
    """What create_app asks of a rate limiter (mlops_lab.serving.limiter.RateLimiter, or lab 6's)."""

    def acquire(self, client_id: str, cost: float = 1) -> float: ...
    def __len__(self) -> int: ...


def create_app(
    settings: Settings,
    variant: Variant = "stable",
    *,
    holder: ModelHolder | None = None,
    store: Store | None = None,
    holder_class: type[ModelHolder] = ModelHolder,
    handlers: Handlers = reference_handlers,
    request_model: type[RequestFields] = PredictRequest,
    cache_class: Callable[..., ModelCache] = LRUCache,
    limiter_class: Callable[..., Limiter] = RateLimiter,
) -> FastAPI:
    """The model server. `holder` (default: a `holder_class` wired to the metrics, loading
    through a `cache_class` cache), `handlers` (the answers), `request_model` (the body of
    /v1/predict) and `limiter_class` are what `mlops-lab serve --impl` swaps for a learner's;
    everything else here is plumbing."""
    metrics = ServerMetrics(variant)

    def on_load(m: LoadedModel) -> None:
        metrics.model_loads.labels(variant).inc()
        metrics.model_load_seconds.labels(variant, m.source).observe(m.load_s)
        metrics.served_version(m.version)
        # Move everything alive now (MLflow, sklearn, pandas, the model) out of the collector's
        # reach: full collections otherwise pause the worker for ~200 ms (measured by make bench).
        gc.collect()
        gc.freeze()

    if holder is None:
        cache = cache_class(settings.model_cache_versions, int(settings.model_cache_max_mb * 2**20))
        holder = holder_class(
            settings,
            ALIAS_OF[variant],
            loader=CachedLoader(cache),
            on_load=on_load,
            on_failure=lambda _msg: metrics.model_load_failures.labels(variant).inc(),
        )
    # Built even before a model is loaded: a limiter that cannot be built fails the start, not
    # the first request. A rate of 0 turns it off.
    limiter = (
        limiter_class(
            rate_per_s=settings.rate_limit_per_s,
            burst=settings.rate_limit_burst,
            max_clients=settings.rate_limit_max_clients,
        )
        if settings.rate_limit_per_s > 0
        else None
    )
    if limiter is not None:
        metrics.rate_limit_clients.labels(variant).set_function(lambda: len(limiter))
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
    metrics.store_queue_depth.labels(variant).set_function(lambda: writer.depth)
    # Counted at every scrape, so rows a previous process spilled at shutdown are seen as soon as
    # a server runs again, and stop counting once replay-spill has loaded (and removed) them.
    metrics.store_spilled_rows.labels(variant).set_function(lambda: spilled_rows(settings.home / "spill"))
    ctx = ServerContext(settings, variant, holder, metrics, writer)

    # --8<-- [start:lifespan]
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        writer.start()
        holder.start()
        try:
            yield
        finally:
            # uvicorn has finished every in-flight request by now (graceful shutdown):
            # stop reloading, then drain the prediction queue to the store.
            holder.stop()
            await asyncio.to_thread(writer.close)

    # --8<-- [end:lifespan]

    app = FastAPI(
        title=f"mlops-lab model server ({variant})",
        version="1",
        lifespan=lifespan,
        description="Fraud scoring. Serves models:/fraud-detector@" + ALIAS_OF[variant],
    )
    app.state.holder, app.state.writer, app.state.metrics, app.state.settings = (
        holder,
        writer,
        metrics,
        settings,
    )
    app.state.limiter = limiter
    app.add_middleware(BodyLimit)
    app.add_middleware(
        LatencyMiddleware,
        metrics=metrics,
        version=lambda: holder.current.version if holder.current else "none",
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Any, exc: RequestValidationError) -> Any:
        return handlers.validation_error(exc)

    def over_rate(request: Request, x_client_id: str | None, cost: int, route: str) -> JSONResponse | None:
        """The 429 for a client over its rate, or None. Only with a model loaded: a server that
        is not ready answers 503 (its Retry-After is about the server, not the client), and a
        refusal for that reason must not spend the client's tokens."""
        if limiter is None or holder.current is None:
            return None
        peer = request.client.host if request.client else "unknown"
        client = (x_client_id or peer)[:MAX_CLIENT_ID]
        wait_s = limiter.acquire(client, cost)
        if wait_s <= 0:
            return None
        metrics.rate_limited.labels(route, variant).inc()
        retry_after = max(1, math.ceil(wait_s))  # whole seconds (RFC 9110), and never "now"
        what = f"a batch of {cost} rows costs {cost}" if cost != 1 else "a request costs 1"
        return JSONResponse(
            {
                "detail": f"rate limit: client {client!r} is over {settings.rate_limit_per_s:g}/s "
                f"(burst {settings.rate_limit_burst}; {what}); retry after {retry_after} s",
            },
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )

    # The scoring endpoints return JSONResponse themselves: FastAPI would otherwise re-validate
    # every response against response_model (which stays declared for the OpenAPI schema),
    # a cost `make bench` measured on the hot path. The tests check the shape instead.
    async def predict(
        body: PredictRequest,
        request: Request,
        x_request_id: str | None = Header(None),
        x_client_id: str | None = Header(None),
    ) -> Any:
        refused = over_rate(request, x_client_id, 1, "/v1/predict")
        if refused is not None:
            return refused
        return handlers.predict(ctx, body, x_request_id)

    predict.__annotations__["body"] = request_model  # FastAPI validates the body with the model given
    app.post(
        "/v1/predict",
        response_model=PredictResponse,
        responses={429: {"description": "over the client's rate"}, 503: {"description": "not ready"}},
    )(predict)

    async def predict_batch(
        body: BatchRequest, request: Request, x_client_id: str | None = Header(None)
    ) -> Any:
        # The reference request model's batch arrives validated as columns (serving/columns.py);
        # a learner's as rows. From here on, columns: scored in one call, logged in one submit.
        columns = body.columns() if isinstance(body, ColumnarBatch) else Columns.of_rows(body.rows)
        rows = len(columns)
        if rows > settings.batch_max_rows:
            return JSONResponse(
                {"detail": f"batch of {rows} rows is over the limit of {settings.batch_max_rows}"},
                status_code=413,
            )
        model = holder.current
        if model is None:
            return handlers.not_ready(ctx)  # 503 with Retry-After and the reason, like /v1/predict
        refused = over_rate(request, x_client_id, rows, "/v1/predict/batch")
        if refused is not None:
            return refused
        if writer.free < rows:  # refused before the model's time is spent; log_batch has the last word
            ctx.count_drop()
            return handlers.log_full(ctx)
        start = time.perf_counter()
        scores = model.score_columns(columns.features).tolist()
        per_row_ms = (time.perf_counter() - start) * 1000 / rows
        request_ids = ctx.batch_request_ids(columns.request_ids)
        block = ctx.log_batch(model, request_ids, columns.features, scores, per_row_ms)
        if block is None:  # the queue had no room for every row: none was taken
            return handlers.log_full(ctx)
        answer = batch_answer(model.version, variant, request_ids, scores, block.decisions)
        return Response(answer, media_type="application/json")

    predict_batch.__annotations__["body"] = _batch_model(request_model)
    app.router.add_api_route(
        "/v1/predict/batch",
        predict_batch,
        methods=["POST"],
        response_model=BatchResponse,
        responses={
            413: {"description": "too many rows"},
            429: {"description": "over the client's rate"},
            503: {"description": "not ready"},
        },
        route_class_override=BatchRoute,  # its JSON parsed by pydantic_core (serving/columns.py)
    )

    @app.get("/v1/model", response_model=ModelInfo)
    async def model_info() -> ModelInfo:
        return describe(settings, holder)

    # --8<-- [start:probes]
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}  # alive: depends on nothing, not even a model

    @app.get("/readyz", responses={503: {"description": "not ready"}})
    async def readyz() -> Any:
        return handlers.readiness(ctx)  # ready: a model is loaded (handlers.py)

    # --8<-- [end:probes]

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/admin/reload", responses={401: {"description": "bad token"}, 503: {"description": "reload failed"}}
    )
    async def reload(authorization: str | None = Header(None)) -> Any:
        expected = f"Bearer {settings.admin_token.get_secret_value()}"
        if authorization is None or not secrets.compare_digest(authorization.encode(), expected.encode()):
            return JSONResponse(
                {"detail": "missing or wrong bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        changed = await asyncio.to_thread(forced_reload, holder)
        m = holder.current
        body = {
            "reloaded": changed,
            "version": m.version if m else None,
            "error": None if changed else holder.last_error,
        }
        return JSONResponse(body, status_code=200 if changed else 503)

    return app


def forced_reload(holder: ModelHolder) -> bool:
    """/admin/reload: `holder.reload(force=True)`, reading the served version from the registry
    again (a person asked for it) while a version the alias moved to may come from the cache."""
    served = holder.current
    if served is not None and isinstance(holder.loader, CachedLoader):
        holder.loader.forget(holder.settings, served.version)
    return holder.reload(True)


def _batch_model(request_model: type[RequestFields]) -> type[BatchRequest]:
    """The body of /v1/predict/batch: rows of `request_model`; the reference model's batch is
    validated as columns (columns.BatchRequest: the same rules, the same 422s, the same JSON schema)."""
    if request_model is PredictRequest:
        return ColumnarBatch
    rows: Any = (list[request_model], Field(..., min_length=1))  # type: ignore[valid-type]
    return create_model("BatchRequest", __base__=BatchRequest, rows=rows)


def describe(settings: Settings, holder: ModelHolder) -> ModelInfo:
    """What /v1/model answers: the model being served and the holder's health."""
    m = holder.current
    return ModelInfo(
        name=settings.model_name,
        alias=holder.alias,
        version=m.version if m else None,
        run_id=m.run_id if m else None,
        threshold=m.threshold if m else None,
        loaded_at=m.loaded_at.isoformat() if m else None,
        scorer=m.scorer_kind if m else None,
        flavour=m.flavour if m else None,
        device=m.device if m else None,
        loaded_from_cache=m.source == "cache" if m else None,
        built_from=m.built_from if m else None,
        load_s=round(m.load_s, 6) if m else None,
        ready=m is not None,
        reason=holder.not_ready_reason,
        load_failures=holder.load_failures,
        last_error=holder.last_error,
    )


class BodyLimit:
    """Refuse bodies over MAX_BODY_BYTES by Content-Length before reading them (pure ASGI)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY_BYTES):
                    response = JSONResponse(
                        {"detail": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
