"""The router's connection pool (canary.upstream) against real servers over loopback: a uvicorn app
and, for the failures uvicorn never makes on purpose, a raw asyncio TCP server.

What the router relies on: connections are reused; one deadline bounds an exchange and a timed
out connection is never reused; a connection the server closed while idle costs nothing but a
new connection; a server that dies mid-answer is an error (not retried: it had begun answering).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from mlops_lab.canary.upstream import Upstream, UpstreamError
from tests.conftest import free_port

from ..support.asgi import read_body


class App:
    """/echo: the body back; /slow: after 2 s; /chunked: three chunks (uvicorn sends them chunked,
    no Content-Length). Keeps the client port of every request: one port per connection."""

    def __init__(self) -> None:
        self.ports: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        self.ports.append(scope["client"][1])
        if scope["path"] == "/slow":
            await asyncio.sleep(2.0)
        if scope["path"] == "/chunked":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"x/y")]})
            for part in (b"one,", b"two,", b"three"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [(b"content-type", b"application/octet-stream"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def app() -> Iterator[tuple[App, int]]:
    app, port = App(), free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", timeout_keep_alive=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    yield app, port
    server.should_exit = True
    thread.join(30)


def pool_run(port: int, fn: Any, timeout_s: float = 5.0) -> Any:
    """Run `fn(pool)` in a fresh event loop, with a pool to 127.0.0.1:`port`."""

    async def go() -> Any:
        pool = Upstream(f"http://127.0.0.1:{port}", timeout_s=timeout_s)
        try:
            return await fn(pool)
        finally:
            await pool.close()

    return asyncio.run(go())


def test_answers_are_read_whole_and_connections_reused(app: tuple[App, int]) -> None:
    server, port = app
    big = bytes(range(256)) * 8192  # 2 MiB each way

    async def fn(pool: Upstream) -> list[Any]:
        out = [await pool.request(b"POST", b"/echo", b"x-a: 1\r\n", b"%d" % i) for i in range(20)]
        out.append(await pool.request(b"POST", b"/echo", b"", big))
        out.append(await pool.request(b"GET", b"/chunked", b"", b""))
        return out

    server.ports.clear()
    got = pool_run(port, fn)
    assert got[:20] == [(201, b"%d" % i, b"application/octet-stream") for i in range(20)]
    assert got[20] == (201, big, b"application/octet-stream")
    assert got[21] == (200, b"one,two,three", b"x/y")
    assert len(set(server.ports)) == 1, "every sequential request on one keep-alive connection"


def test_concurrent_requests_open_at_most_their_number_of_connections(app: tuple[App, int]) -> None:
    server, port = app

    async def fn(pool: Upstream) -> None:
        for _ in range(3):
            answers = await asyncio.gather(*(pool.request(b"POST", b"/echo", b"", b"x") for _ in range(8)))
            assert {a[0] for a in answers} == {201}

    server.ports.clear()
    pool_run(port, fn)
    assert len(server.ports) == 24 and len(set(server.ports)) <= 8


def test_beyond_the_limit_requests_wait_for_a_connection_within_the_deadline(app: tuple[App, int]) -> None:
    server, port = app

    async def fn(_: Upstream) -> None:
        two = Upstream(f"http://127.0.0.1:{port}", timeout_s=1.0, limit=2)
        answers = await asyncio.gather(*(two.request(b"POST", b"/echo", b"", b"%d" % i) for i in range(6)))
        assert [a[1] for a in answers] == [b"%d" % i for i in range(6)]
        await two.close()
        one = Upstream(f"http://127.0.0.1:{port}", timeout_s=0.6, limit=1)
        slow = asyncio.ensure_future(one.request(b"POST", b"/slow", b"", b""))
        await asyncio.sleep(0.05)
        one.timeout_s = 0.1  # this one's deadline comes before the slow one gives its connection back
        with pytest.raises(TimeoutError, match="no free connection"):
            await one.request(b"POST", b"/echo", b"", b"late")  # its deadline passed in the queue
        with pytest.raises(TimeoutError):
            await slow
        await one.close()

    server.ports.clear()
    pool_run(port, fn)
    assert len(set(server.ports[:6])) <= 2


def test_a_connection_the_server_closed_while_idle_is_replaced(app: tuple[App, int]) -> None:
    server, port = app  # the server closes a connection after 1 s without a request

    async def fn(pool: Upstream) -> list[int]:
        first = await pool.request(b"POST", b"/echo", b"", b"a")
        await asyncio.sleep(1.5)
        second = await pool.request(b"POST", b"/echo", b"", b"b")
        return [first[0], second[0]]

    server.ports.clear()
    assert pool_run(port, fn) == [201, 201]
    assert len(set(server.ports)) == 2


def test_the_deadline_bounds_an_exchange_and_a_late_connection_is_not_reused(app: tuple[App, int]) -> None:
    server, port = app

    async def fn(pool: Upstream) -> float:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            await pool.request(b"POST", b"/slow", b"", b"")
        took = time.monotonic() - t0
        assert (await pool.request(b"POST", b"/echo", b"", b"after"))[1] == b"after"
        return took

    server.ports.clear()
    took = pool_run(port, fn, timeout_s=0.3)
    assert 0.25 < took < 1.5
    assert len(set(server.ports)) == 2, "the request after a timeout came on a new connection"


def test_nobody_listening_is_an_upstream_error() -> None:
    async def fn(pool: Upstream) -> None:
        await pool.request(b"GET", b"/readyz", b"", b"")

    with pytest.raises(UpstreamError) as err:
        pool_run(free_port(), fn)
    assert isinstance(err.value, OSError) and "cannot connect" in str(err.value)


class RawServer:
    """A TCP server speaking just enough HTTP/1.1 to misbehave on purpose. `mode`:
    "drop-second": answers a connection's first request, closes it (no answer) on its second,
    as a server does when its keep-alive timeout fires just as a request arrives;
    "half": sends half a body and closes."""

    def __init__(self, mode: str) -> None:
        self.mode, self.port, self.requests = mode, free_port(), 0
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.startswith(b"content-length")
                )
                await reader.readexactly(length)
                self.requests += 1
                n += 1
                if self.mode == "drop-second" and n == 2:
                    break
                if self.mode == "half":
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
                    await writer.drain()
                    break
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def __enter__(self) -> RawServer:
        self.thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self.handle, "127.0.0.1", self.port), self.loop
        )
        self.server = started.result(10)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_a_reused_connection_closed_before_any_answer_is_retried_once_on_a_new_one() -> None:
    with RawServer("drop-second") as raw:

        async def fn(pool: Upstream) -> list[Any]:
            return [await pool.request(b"POST", b"/p", b"", b"{}") for _ in range(3)]

        got = pool_run(raw.port, fn)
    assert got == [(200, b"ok", b"text/plain")] * 3
    # Each connection drops its second request: requests 2 and 3 were each sent twice.
    assert raw.requests == 5


def test_a_server_that_dies_mid_answer_is_an_error_and_not_retried() -> None:
    with RawServer("half") as raw:

        async def fn(pool: Upstream) -> None:
            await pool.request(b"POST", b"/p", b"", b"{}")

        with pytest.raises(UpstreamError, match="mid-answer"):
            pool_run(raw.port, fn)
    assert raw.requests == 1
