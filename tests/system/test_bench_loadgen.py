"""The benchmark's load generator against a tiny real uvicorn server: it counts what it sends.

No timing goals here: the only time-based checks are lower bounds the server's own sleep
guarantees (a request to /slow cannot take less than its sleep).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from mlops_lab.bench import loadgen
from tests.conftest import free_port

SLOW_S = 0.05


class TinyApp:
    """Raw ASGI: 200 with the body length, 503 on /fail, a 50 ms sleep on /slow; counts per path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        self.hits[path] += 1
        if path == "/slow":
            await asyncio.sleep(SLOW_S)
        payload = json.dumps({"n": len(body)}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        status = 503 if path == "/fail" else 200
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture(scope="module")
def tiny() -> Iterator[tuple[TinyApp, int]]:
    app, port = TinyApp(), free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield app, port
    server.should_exit = True
    thread.join(timeout=10)


def _req(port: int, path: str, body: bytes | None = b'{"a": 1}') -> bytes:
    return loadgen.encode_request("127.0.0.1", port, "POST" if body is not None else "GET", path, body)


def test_call_reads_status_and_body(tiny: tuple[TinyApp, int]) -> None:
    _, port = tiny

    async def go() -> list[tuple[int, bytes]]:
        conn = await loadgen.Connection.open("127.0.0.1", port)
        try:  # several calls on one keep-alive connection, with and without a body
            return [
                await conn.call(r) for r in (_req(port, "/a"), _req(port, "/g", None), _req(port, "/fail"))
            ]
        finally:
            await conn.close()

    got = loadgen.run(go())
    assert got == [(200, b'{"n": 8}'), (200, b'{"n": 0}'), (503, b'{"n": 8}')]


def test_closed_loop_by_count_excludes_warmup(tiny: tuple[TinyApp, int]) -> None:
    app, port = tiny
    reqs = [_req(port, "/count"), _req(port, "/count2")]
    before = app.hits["/count"] + app.hits["/count2"]
    res = loadgen.run(
        loadgen.closed_loop("127.0.0.1", port, reqs, concurrency=1, max_requests=40, warmup_requests=7)
    )
    assert app.hits["/count"] + app.hits["/count2"] - before == 47  # the server saw the warm-up too
    assert res.ok == 40 and len(res.latencies_s) == 40 and res.failed == 0
    assert res.duration_s > 0 and res.throughput_rps == pytest.approx(40 / res.duration_s)


def test_closed_loop_by_time_counts_statuses(tiny: tuple[TinyApp, int]) -> None:
    app, port = tiny
    before = app.hits["/ok"] + app.hits["/fail"]
    reqs = [_req(port, "/ok"), _req(port, "/fail")]
    res = loadgen.run(
        loadgen.closed_loop("127.0.0.1", port, reqs, concurrency=4, duration_s=0.8, warmup_s=0.2)
    )
    measured = sum(res.statuses.values())
    assert set(res.statuses) == {200, 503} and abs(res.statuses[200] - res.statuses[503]) <= 4
    assert len(res.latencies_s) == res.ok == res.statuses[200]  # latencies of successes only
    assert res.failed == res.statuses[503] and res.errors == 0
    assert app.hits["/ok"] + app.hits["/fail"] - before >= measured > 0  # plus the unrecorded warm-up
    assert res.duration_s == 0.8 and res.throughput_rps == pytest.approx(res.ok / 0.8)


def test_open_loop_sends_on_schedule_and_charges_queueing(tiny: tuple[TinyApp, int]) -> None:
    app, port = tiny
    before = app.hits["/slow"]
    # 100 rps for 0.3 s over ONE connection to a handler that sleeps 50 ms: at most 20 rps get
    # served, so request k waits for k-1 others. Measured from its due time (not from when it
    # was finally sent), request k takes at least 50 ms + k * 40 ms.
    res = loadgen.run(
        loadgen.open_loop(
            "127.0.0.1",
            port,
            [_req(port, "/slow")],
            rate_rps=100,
            duration_s=0.3,
            warmup_s=0.1,
            connections=1,
            drain_s=10,
        )
    )
    assert app.hits["/slow"] - before == 40  # warm-up (10) + measured (30), every one sent
    assert res.ok == 30 and res.late == 0 and res.errors == 0
    assert min(res.latencies_s) >= SLOW_S
    assert max(res.latencies_s) >= SLOW_S + 29 * (SLOW_S - 0.01)
    assert res.percentile_ms(100) == pytest.approx(max(res.latencies_s) * 1000)


def test_percentiles_are_nearest_rank() -> None:
    res = loadgen.Result("x", 1.0, latencies_s=[i / 1000 for i in range(1, 101)])
    assert res.percentile_ms(50) == pytest.approx(50) and res.percentile_ms(99) == pytest.approx(99)
    assert res.summary()["p50_ms"] == pytest.approx(50)
