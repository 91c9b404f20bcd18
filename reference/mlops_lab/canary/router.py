"""The canary router: a small ASGI app in front of the stable and canary model servers.

    mlops-lab route                        # serves on settings.router_port (8000)
    curl -s 127.0.0.1:8000/v1/predict -H 'content-type: application/json' -d '{...}'
    curl -s -H 'authorization: Bearer change-me-local-only' 127.0.0.1:8000/admin/state

What it does, and why each part is there:
  weighted split   `canary_weight` percent of entities go to the canary ...
  sticky           ... chosen by a hash of card_id (else request_id), so one card sees one model
                   for the whole step instead of flapping between two decisions;
  card id header   X-Card-Id, when the client sends it, is routed on (as a service mesh routes
                   on headers) and the body, forwarded byte for byte, is not parsed. It must equal
                   the body's card_id: when it does not, the header wins. Without it the body's
                   card_id is parsed; shadow mode parses the body either way (its copy is rewritten);
  shadow mode      stable answers every request; a copy goes to the canary, its answer is
                   discarded and stored under `<request_id>:shadow`, so the judge can pair the
                   two scores of the same request;
  passive health   a canary error or timeout is retried on stable (the client never sees it;
                   counted as a fallback); after `router_unhealthy_after` failures in a row the
                   canary gets no traffic until one probe `router_probe_after_s` later succeeds;
  admin            GET /admin/state and POST /admin/weights need the bearer token; weights are
                   written atomically to disk and read back on start, so a restart keeps them.
  client identity  X-Client-Id is passed on to the model servers, set to the caller's address
                   when absent: their rate limit is per client, not one bucket for the router.
Batch and model-info requests always go to stable. Retrying a prediction on stable is safe:
predictions have no side effect but the log row, which is idempotent on request_id.
Cost (`python -m mlops_lab.bench.router`): no parse without a rollout or with the header, one pass
over the headers, pooled keep-alive connections (`canary.upstream`), metric children resolved once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import importlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mlops_lab.canary.upstream import Upstream
from mlops_lab.canary.weights import CARD_ID_HEADER, Weights, shadow_id, validate_weights
from mlops_lab.parts import Part
from mlops_lab.serving.metrics import LATENCY_BUCKETS
from mlops_lab.settings import Settings

SPLIT = "mlops_lab.canary.split"  # the lab 5 exercise `router-split`: the routing decision

log = logging.getLogger("mlops_lab.router")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 8 * 1024 * 1024
# Mirrored requests in flight beyond this are dropped (counted): shadow traffic must never
# slow the answer the client is waiting for.
MAX_SHADOW_IN_FLIGHT = 64
# What a model server is told of the client's request (x-client-id: whose rate limit it is).
FORWARDED_HEADERS = ("content-type", "x-request-id", "accept", "x-client-id")
_FORWARDED = frozenset(name.encode() for name in FORWARDED_HEADERS)
_CARD_ID = CARD_ID_HEADER.encode()
UPSTREAM_CONNECTIONS = 256  # per model server: far above the 8-64 in flight of the lab's load
# A connection or answer that failed (UpstreamError is an OSError), or router_timeout_s passed.
UPSTREAM_ERRORS = (OSError, TimeoutError)
_PROMETHEUS_TYPE = b"text/plain; version=0.0.4"
_VARIANT_HEADER = {v: (b"x-mlops-variant", v.encode()) for v in ("stable", "canary")}


class RouterMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlops_router_requests_total",
            "Prediction requests per variant that handled them; outcome ok|error|fallback",
            ["variant", "outcome"],
            registry=r,
        )
        self.upstream_latency = Histogram(
            "mlops_router_upstream_latency_seconds",
            "Time the upstream model server took, per variant",
            ["variant"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter(
            "mlops_router_fallbacks_total", "Canary failures retried on stable", registry=r
        )
        self.shadow_dropped = Counter(
            "mlops_router_shadow_dropped_total", "Mirrored requests dropped (too many in flight)", registry=r
        )
        self.canary_weight = Gauge(
            "mlops_router_canary_weight", "Percent of entities routed to the canary", registry=r
        )
        self.shadow = Gauge("mlops_router_shadow", "1 when requests are mirrored to the canary", registry=r)
        self.canary_healthy = Gauge(
            "mlops_router_canary_healthy", "0 while passive health keeps traffic off the canary", registry=r
        )


class Router:
    """The ASGI app. One instance per process; `settings` decides ports, token and health, `part`
    whose routing decision it runs (the reference's `canary.split` unless a learner's is given)."""

    def __init__(self, settings: Settings, part: Part = importlib.import_module) -> None:
        self.settings = settings
        self.split = part(SPLIT)
        self.upstream = {
            "stable": settings.url_of("stable", settings.stable_port),
            "canary": settings.url_of("canary", settings.canary_port),
        }
        self.state_path = settings.router_state_path
        self.weights = Weights.load(self.state_path)
        self.health = self.split.CanaryHealth(settings.router_unhealthy_after, settings.router_probe_after_s)
        self.metrics = RouterMetrics()
        # What the canary judge reads: requests and errors per variant since this process started.
        self.counts = {v: {"requests": 0, "errors": 0} for v in ("stable", "canary")}
        self.started = time.time()
        self._pools: dict[str, Upstream] = {}  # made at lifespan startup, in the serving loop
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._token = settings.admin_token.get_secret_value().encode()
        # Metric children, resolved on first use (a series appears once it has a sample, as before)
        # and then reused: labels() takes a lock and a dict lookup on every call.
        self._request_counters: dict[tuple[str, str], Any] = {}
        self._latency_histograms: dict[str, Any] = {}
        self._healthy_published: bool | None = None
        self._publish_weights()

    # ------------------------------------------------------------------ ASGI plumbing
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        try:
            if path == "/v1/predict" and method == "POST":
                await self._predict(scope, receive, send)
            elif path in ("/v1/predict/batch", "/v1/model", "/openapi.json", "/docs"):
                body = await _read_body(receive) if method == "POST" else b""
                headers = _header_block(_client_headers(scope))
                status, payload, ctype, _ = await self._forward("stable", method, path, body, headers)
                await _respond(send, status, payload, ctype, [_VARIANT_HEADER["stable"]])
            elif path == "/healthz":
                await _json(send, 200, {"status": "ok"})
            elif path == "/readyz":
                await self._readyz(send)
            elif path == "/metrics":
                await _respond(send, 200, generate_latest(self.metrics.registry), _PROMETHEUS_TYPE)
            elif path == "/admin/state" and method == "GET":
                if await self._authorized(scope, send):
                    await _json(send, 200, self.state())
            elif path == "/admin/weights" and method == "POST":
                if await self._authorized(scope, send):
                    await self._set_weights(receive, send)
            else:
                await _json(send, 404, {"detail": f"no route {method} {path}"})
        except _BodyTooLarge:
            await _json(send, 413, {"detail": f"body over {MAX_BODY} bytes"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                timeout = self.settings.router_timeout_s
                self._pools = {
                    variant: Upstream(url, timeout_s=timeout, limit=UPSTREAM_CONNECTIONS)
                    for variant, url in self.upstream.items()
                }
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._shadow_tasks:  # let mirrored requests finish so their pairs are complete
                    await asyncio.wait(self._shadow_tasks, timeout=self.settings.router_timeout_s)
                for pool in self._pools.values():
                    await pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ predictions
    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        headers, card, request_id = _scan(scope)
        w = self.weights
        if not w.shadow and w.canary_weight == 0:  # the common case: no rollout, nothing to parse
            await self._answer_from_stable(send, body, headers, outcome="ok")
            return
        # With the card id header the body is not read (the header wins, as a mesh routes);
        # shadow mode reads it all the same: the canary's copy is a rewritten body.
        parsed = _parse(body) if card is None or w.shadow else None
        key = card
        if key is None and parsed is not None:
            key = str(parsed.get("card_id") or parsed.get("request_id") or uuid.uuid4().hex)
        route = self.split.choose(w, key, self.health, time.monotonic())
        if route.mirror and parsed is not None:
            # Both copies need the same request id to be paired; give the request one if it has none.
            rid = parsed.get("request_id") or request_id or uuid.uuid4().hex
            parsed["request_id"] = rid
            body = json.dumps(parsed).encode()
            self._mirror(parsed, headers)
        if route.variant == "canary":
            try:
                status, payload, ctype, elapsed = await self._forward(
                    "canary", "POST", "/v1/predict", body, headers
                )
            except UPSTREAM_ERRORS as err:
                status, payload, ctype, elapsed = 599, str(err).encode(), b"text/plain", 0.0
            if status < 500:
                self._count("canary", ok=True, elapsed=elapsed)
                self.health.success()
                await _respond(send, status, payload, ctype, [_VARIANT_HEADER["canary"]])
                return
            # The canary failed: the client gets stable's answer instead, and the judge an error.
            self._count("canary", ok=False, elapsed=elapsed)
            self.health.failure(time.monotonic())
            self._publish_health()
            self.metrics.fallbacks.inc()
            await self._answer_from_stable(send, body, headers, outcome="fallback")
            return
        await self._answer_from_stable(send, body, headers, outcome="ok")

    async def _answer_from_stable(self, send: Send, body: bytes, headers: bytes, outcome: str) -> None:
        try:
            status, payload, ctype, elapsed = await self._forward(
                "stable", "POST", "/v1/predict", body, headers
            )
        except UPSTREAM_ERRORS as err:
            self._count("stable", ok=False, elapsed=0.0)
            await _json(
                send,
                503,
                {"detail": f"stable model server unreachable: {_describe(err)}"},
                retry_after=self.settings.retry_after_s,
            )
            return
        self._count("stable", ok=status < 500, elapsed=elapsed, outcome=outcome if status < 500 else "error")
        self._publish_health()
        await _respond(send, status, payload, ctype, [_VARIANT_HEADER["stable"]])

    def _mirror(self, parsed: dict[str, Any], headers: bytes) -> None:
        if len(self._shadow_tasks) >= MAX_SHADOW_IN_FLIGHT:
            self.metrics.shadow_dropped.inc()
            return
        copy = dict(parsed, request_id=shadow_id(str(parsed["request_id"])))
        task = asyncio.create_task(self._shadow(json.dumps(copy).encode(), headers))
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(self, body: bytes, headers: bytes) -> None:
        try:
            status, _, _, elapsed = await self._forward("canary", "POST", "/v1/predict", body, headers)
        except UPSTREAM_ERRORS:
            status, elapsed = 599, 0.0
        self._count("canary", ok=status < 500, elapsed=elapsed, outcome="shadow" if status < 500 else "error")
        if status < 500:
            self.health.success()
        else:
            self.health.failure(time.monotonic())
            self._publish_health()

    def _count(self, variant: str, *, ok: bool, elapsed: float, outcome: str | None = None) -> None:
        counts = self.counts[variant]
        counts["requests"] += 1
        if not ok:
            counts["errors"] += 1
        key = (variant, outcome or ("ok" if ok else "error"))
        if key not in self._request_counters:
            self._request_counters[key] = self.metrics.requests.labels(*key)
        self._request_counters[key].inc()
        if elapsed:
            if variant not in self._latency_histograms:
                self._latency_histograms[variant] = self.metrics.upstream_latency.labels(variant)
            self._latency_histograms[variant].observe(elapsed)

    def _publish_health(self) -> None:
        """The canary_healthy gauge, set only when it changes (this runs for every answer)."""
        healthy = bool(self.health.healthy)
        if healthy is not self._healthy_published:
            self.metrics.canary_healthy.set(1 if healthy else 0)
            self._healthy_published = healthy

    async def _forward(
        self, variant: str, method: str, path: str, body: bytes, headers: bytes
    ) -> tuple[int, bytes, bytes, float]:
        """(status, body, content type, seconds) of one request to a model server; raises one of
        UPSTREAM_ERRORS when no answer came within router_timeout_s."""
        assert self._pools, "the lifespan startup did not run"
        t0 = time.perf_counter()
        status, payload, ctype = await self._pools[variant].request(
            method.encode(), path.encode(), headers, body
        )
        return status, payload, ctype, time.perf_counter() - t0

    # ------------------------------------------------------------------ readiness and admin
    async def _readyz(self, send: Send) -> None:
        try:
            status, payload, ctype, _ = await self._forward("stable", "GET", "/readyz", b"", b"")
        except UPSTREAM_ERRORS as err:
            await _json(
                send,
                503,
                {"ready": False, "reason": f"stable unreachable: {_describe(err)}"},
                retry_after=self.settings.retry_after_s,
            )
            return
        extra = [(b"retry-after", str(self.settings.retry_after_s).encode())] if status != 200 else []
        await _respond(send, status, payload, ctype, extra)

    async def _authorized(self, scope: Scope, send: Send) -> bool:
        given = _headers(scope).get("authorization", "")
        if hmac.compare_digest(given.encode(), b"Bearer " + self._token):
            return True
        await _json(send, 401, {"detail": "admin calls need 'Authorization: Bearer <MLOPS_ADMIN_TOKEN>'"})
        return False

    async def _set_weights(self, receive: Receive, send: Send) -> None:
        body, errors = validate_weights(_parse(await _read_body(receive)))
        if body is None:
            await _json(send, 422, {"detail": errors})
            return
        new = Weights(
            canary_weight=int(body["canary_weight"]),
            shadow=bool(body.get("shadow", False)),
            updated=time.time(),
            actor=str(body.get("actor", "admin")),
            reason=str(body.get("reason", "")),
        )
        new.save(self.state_path)  # on disk first: a crash right after still restarts with these weights
        self.weights = new
        if new.canary_weight > 0 or new.shadow:
            self.health.success()  # a new rollout starts with a healthy canary
        self._publish_weights()
        log.info(
            "weights -> canary %s%%, shadow %s (%s: %s)", new.canary_weight, new.shadow, new.actor, new.reason
        )
        await _json(send, 200, self.state())

    def _publish_weights(self) -> None:
        self.metrics.canary_weight.set(self.weights.canary_weight)
        self.metrics.shadow.set(1 if self.weights.shadow else 0)
        self._publish_health()

    def state(self) -> dict[str, Any]:
        return {
            **asdict(self.weights),
            "canary_healthy": self.health.healthy,
            "counts": {v: dict(c) for v, c in self.counts.items()},
            "started": self.started,
        }


def create_router(settings: Settings, part: Part = importlib.import_module) -> Router:
    return Router(settings, part)


class _BodyTooLarge(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def _client_headers(scope: Scope) -> dict[str, str]:
    """The request's headers with X-Client-Id set to the caller's address when it has none: behind
    the router every request's peer is the router, which would make all clients one."""
    headers = _headers(scope)
    if "x-client-id" not in headers and scope.get("client"):
        headers["x-client-id"] = str(scope["client"][0])
    return headers


def _header_block(headers: dict[str, str]) -> bytes:
    """The FORWARDED_HEADERS of `headers` as header lines, for the upstream request."""
    lines = (f"{name}: {value}\r\n" for name, value in headers.items() if name in FORWARDED_HEADERS)
    return "".join(lines).encode("latin-1")


def _scan(scope: Scope) -> tuple[bytes, str | None, str | None]:
    """One pass over a prediction's headers: the lines forwarded to a model server (those of
    _header_block(_client_headers(scope)) without the two dicts; a repeated one goes as sent), the
    card id header (None when absent, empty or not UTF-8: the body decides) and the x-request-id."""
    block = b""
    card = request_id = None
    has_client = False
    for name, value in scope["headers"]:
        if name in _FORWARDED:
            block += name + b": " + value + b"\r\n"
            if name == b"x-client-id":
                has_client = True
            elif name == b"x-request-id":
                request_id = value.decode("latin-1")
        elif name == _CARD_ID and value:
            with contextlib.suppress(UnicodeDecodeError):
                card = value.decode()
    if not has_client and scope.get("client"):
        block += b"x-client-id: " + str(scope["client"][0]).encode("latin-1") + b"\r\n"
    return block, card, request_id


def _describe(err: BaseException) -> str:
    """An upstream error for a 503's detail (a bare TimeoutError has no message of its own)."""
    return str(err) or type(err).__name__


def _parse(body: bytes) -> dict[str, Any] | None:
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        parsed = json.loads(body)
        if isinstance(parsed, dict):
            return parsed
    return None  # not JSON: stable answers with its 422


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, payload: Any, retry_after: int | None = None) -> None:
    extra = [(b"retry-after", str(retry_after).encode())] if retry_after is not None else None
    await _respond(send, status, json.dumps(payload).encode(), b"application/json", extra)
