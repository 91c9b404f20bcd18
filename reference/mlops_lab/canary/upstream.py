"""A keep-alive HTTP/1.1 connection pool to one model server: what the canary router forwards through.

    python -m mlops_lab.canary.upstream http://127.0.0.1:8001 /readyz   # one GET: status, type, body

Why not aiohttp (the router's client before) or httpx: the router is a pass-through whose whole
cost is per request, and a general client spends most of it on generality. Measured on the lab's
2 cores, 3,000 sequential predictions to a model server: aiohttp's ClientSession ~250 us of CPU
per request (a ClientRequest, a CIMultiDict of headers, timers, a response object), raw asyncio
streams ~70-85 us, this pool the same (most of it the socket calls; asyncio.timeout() alone had
cost ~10 us more). Here a request is one bytes string written to a pooled connection, the answer
is read by httptools' C parser (the one uvicorn parses requests with), keeping three things of it:
the status, the content type and the body.

What the router relies on (the same as with its aiohttp session):
  one deadline   `timeout_s` bounds the whole exchange: waiting for a free connection, connecting,
                 sending, the whole answer; past it TimeoutError, and the connection is closed
                 (its state is unknown, so it is never reused);
  errors         anything else that keeps the answer from the router is an UpstreamError (an
                 OSError, as a refused connection is): closed mid-answer, a malformed answer;
  limits         at most `limit` connections to the server; requests beyond wait for one;
  keep-alive     an answered connection goes back to the pool (last in, first out, so a quiet
                 period keeps few connections warm) unless the server asked to close it; an idle
                 connection is dropped after IDLE_S, under uvicorn's 5 s keep-alive, so the router
                 seldom picks one the server is closing, and at once when the server closes it.
                 Should it pick one all the same (closed before a byte of the answer came), the
                 request is sent once more on a new connection: a keep-alive close never read
                 it (and were it a crash, a prediction is idempotent on its request_id).
Only what a model server sends is read: HTTP/1.1 answers with Content-Length or chunked bodies.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import httptools

# An idle connection older than this is not reused: uvicorn (every model server) closes one after
# 5 s without a request, and a connection picked as the server closes it costs a retry.
IDLE_S = 4.0

Answer = tuple[int, bytes, bytes]  # status, body, content type


class UpstreamError(OSError):
    """The model server's answer could not be read (not a timeout: that is TimeoutError)."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.open = True  # False once the server (or we) closed it
        self.received = False  # any byte of the current answer arrived
        self.idle_since = 0.0
        self.status = 0
        self.keep_alive = False
        self.content_type = b"application/json"
        self.chunks: list[bytes] = []

    # ---------------------------------------------------------------- asyncio transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():  # bytes nobody asked for: unusable now
            self.close()
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as err:
            self._fail(UpstreamError(f"malformed answer: {err}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        when = "mid-answer" if self.received else "before answering"
        self._fail(UpstreamError(f"the server closed the connection {when}" + (f": {exc}" if exc else "")))

    # ---------------------------------------------------------------- httptools parser callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 12 and name.lower() == b"content-type":
            self.content_type = value

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()  # here: after the body it reads False

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # ---------------------------------------------------------------- the exchange
    async def exchange(self, raw: bytes, deadline: float) -> Answer:
        """Send one complete request and wait for the whole answer, until `deadline` (loop time)."""
        assert self.transport is not None
        self.received, self.keep_alive, self.status = False, False, 0
        self.content_type, self.chunks = b"application/json", []
        self.waiter = self.loop.create_future()
        # A timer handle, not asyncio.timeout(): a third of the pool's own cost per request.
        timer = self.loop.call_at(deadline, self._expire)
        try:
            self.transport.write(raw)
            await self.waiter
        finally:
            timer.cancel()
            self.waiter = None
        if not self.keep_alive:
            self.close()
        return self.status, b"".join(self.chunks), self.content_type

    def _expire(self) -> None:
        self._fail(TimeoutError("no complete answer within the router's timeout"))

    def _fail(self, err: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(err)

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()


class Upstream:
    """The pool of one model server (`base_url`, e.g. http://127.0.0.1:8001). Make it inside the
    event loop that will use it (the router's lifespan startup)."""

    def __init__(self, base_url: str, *, timeout_s: float, limit: int = 256) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"an http://host:port URL, not {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout_s = timeout_s
        self.loop = asyncio.get_running_loop()
        self._host_line = f"host: {self.host}:{self.port}\r\n".encode()
        self._limit = limit
        self._in_use = 0
        self._waiting: deque[asyncio.Future[None]] = deque()  # for a connection, beyond the limit
        self._idle: list[_Connection] = []
        self._closed = False

    async def request(self, method: bytes, path: bytes, headers: bytes, body: bytes) -> Answer:
        """(status, body, content type) of one request. `headers` is a block of complete header
        lines ("name: value\r\n" each), without host and content-length: those are added here."""
        raw = b"%s %s HTTP/1.1\r\n%scontent-length: %d\r\n%s\r\n%s" % (
            method,
            path,
            self._host_line,
            len(body),
            headers,
            body,
        )
        deadline = self.loop.time() + self.timeout_s
        while self._in_use >= self._limit:
            await self._wait_for_a_slot(deadline)
        self._in_use += 1
        try:
            conn = self._reuse()
            if conn is not None:
                try:
                    return await self._send(conn, raw, deadline)
                except UpstreamError:
                    if conn.received:  # the server had begun answering: not a stale connection
                        raise
            return await self._send(await self._connect(deadline), raw, deadline)
        finally:
            self._in_use -= 1
            while self._waiting:  # wake the next request still waiting (not one that gave up)
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    break

    async def _wait_for_a_slot(self, deadline: float) -> None:
        waiter = self.loop.create_future()
        self._waiting.append(waiter)
        try:
            await asyncio.wait_for(waiter, max(0.0, deadline - self.loop.time()))
        except TimeoutError:
            raise TimeoutError(f"no free connection to {self.host}:{self.port} in time") from None

    async def _send(self, conn: _Connection, raw: bytes, deadline: float) -> Answer:
        done = False
        try:
            answer = await conn.exchange(raw, deadline)
            done = True
            return answer
        finally:
            if done and conn.open and not self._closed:
                conn.idle_since = self.loop.time()
                self._idle.append(conn)
            else:  # a timeout, an error or a cancelled request: never reuse it
                conn.close()

    def _reuse(self) -> _Connection | None:
        now = self.loop.time()
        while self._idle:
            conn = self._idle.pop()
            if conn.open and now - conn.idle_since < IDLE_S:
                return conn
            conn.close()
        return None

    async def _connect(self, deadline: float) -> _Connection:
        connecting = self.loop.create_connection(lambda: _Connection(self.loop), self.host, self.port)
        try:
            _, conn = await asyncio.wait_for(connecting, max(0.0, deadline - self.loop.time()))
        except TimeoutError:  # an OSError too, but the deadline's
            raise
        except OSError as err:
            raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {err}") from err
        return conn

    async def close(self) -> None:
        """Close the idle connections; those in use close when their request ends."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
        await asyncio.sleep(0)  # let the transports run their close callbacks


def _main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m mlops_lab.canary.upstream http://HOST:PORT /PATH")

    async def once() -> Answer:
        pool = Upstream(sys.argv[1], timeout_s=10.0)
        try:
            return await pool.request(b"GET", sys.argv[2].encode(), b"", b"")
        finally:
            await pool.close()

    try:
        status, body, content_type = asyncio.run(once())
    except (OSError, TimeoutError) as err:
        raise SystemExit(f"no answer: {err or type(err).__name__}") from None
    print(status, content_type.decode("latin-1"))
    print(body.decode("utf-8", "replace"))


if __name__ == "__main__":
    _main()
