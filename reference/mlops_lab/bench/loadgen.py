"""A small, fast HTTP/1.1 keep-alive load generator on raw asyncio streams.

    python -c "import mlops_lab.bench.loadgen as g; help(g)"

Why not httpx: from one core it spends more time building requests than a FastAPI server
spends answering them, so it cannot saturate the server. Here every request is encoded once,
up front, and a response is read by parsing the status line and Content-Length only.

Two modes:
- `closed_loop`: C connections, each sends its next request as soon as the previous answer
  arrives (throughput at saturation; C=1 gives sequential latency).
- `open_loop`: requests are due at a fixed rate whatever the server does, and latency is
  measured from each request's *scheduled* send time, so a server stall shows up in every
  request that should have been sent during it (no coordinated omission).

Only what the model server sends is supported: Content-Length bodies, no chunked encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import math
import time
from collections import Counter
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

# 1 MiB: a 1,000-row batch response is ~130 kB; asyncio's 64 kB default limit is per readuntil only,
# but a generous limit keeps large header blocks from raising LimitOverrunError.
_STREAM_LIMIT = 1 << 20


def encode_request(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """One complete HTTP/1.1 request (keep-alive), ready to write as is; `headers` are added as
    given (e.g. the canary router's card id header, so the router routes without a parse)."""
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}:{port}", "connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head + (body or b"")


@dataclass
class Result:
    """What one run measured. Latencies are of successful (2xx) requests only, in seconds."""

    mode: str
    duration_s: float  # the measured window (warm-up excluded)
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0  # connection or protocol errors (no status)
    late: int = 0  # open loop: due in the window but not sent/answered before the drain deadline

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    @property
    def failed(self) -> int:
        return sum(self.statuses.values()) - self.ok + self.errors + self.late

    @property
    def throughput_rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile (q in 0..100) of the successful latencies, in ms."""
        if not self.latencies_s:
            return math.nan
        ordered = sorted(self.latencies_s)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[rank - 1] * 1000

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures; latency fields are None when nothing succeeded."""

        def ms(x: float) -> float | None:
            return round(x, 4) if math.isfinite(x) else None

        return {
            "mode": self.mode,
            "duration_s": round(self.duration_s, 3),
            "requests_ok": self.ok,
            "requests_failed": self.failed,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "connection_errors": self.errors,
            "late": self.late,
            "throughput_rps": round(self.throughput_rps, 1),
            "p50_ms": ms(self.percentile_ms(50)),
            "p90_ms": ms(self.percentile_ms(90)),
            "p99_ms": ms(self.percentile_ms(99)),
            "max_ms": ms(self.percentile_ms(100)),
        }


def merge(results: Sequence[Result]) -> Result:
    """One result from several runs of the same kind (e.g. rounds interleaved with another endpoint)."""
    out = Result(results[0].mode, sum(r.duration_s for r in results))
    for r in results:
        out.latencies_s += r.latencies_s
        out.statuses.update(r.statuses)
        out.errors += r.errors
        out.late += r.late
    return out


class ProtocolError(Exception):
    pass


class Connection:
    """One keep-alive connection; `call` sends one pre-encoded request and reads the whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=_STREAM_LIMIT)
        return cls(reader, writer)

    async def call(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        # drain() only waits when the kernel buffer is full (large batch bodies); cheap otherwise.
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = -1
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise ProtocolError("chunked responses are not supported")
        if length < 0:
            raise ProtocolError(f"response without content-length: {head[:80]!r}")
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def closed_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    concurrency: int,
    duration_s: float | None = None,
    warmup_s: float = 0.0,
    max_requests: int | None = None,
    warmup_requests: int = 0,
) -> Result:
    """C connections, each sending back to back.

    Either time-bounded (`duration_s` measured after `warmup_s`) or count-bounded
    (`max_requests` measured after `warmup_requests`); warm-up is sent but not recorded."""
    if (duration_s is None) == (max_requests is None):
        raise ValueError("give exactly one of duration_s and max_requests")
    conns = [await Connection.open(host, port) for _ in range(concurrency)]
    cycle = itertools.cycle(requests)
    result = Result(f"closed c={concurrency}", 0.0)
    measure_from = time.perf_counter() + warmup_s if duration_s is not None else math.inf
    end = measure_from + duration_s if duration_s is not None else math.inf
    limit = warmup_requests + max_requests if max_requests is not None else math.inf
    sent = 0  # shared by the workers: one event loop thread, so a plain counter is safe

    async def worker(conn: Connection) -> None:
        nonlocal sent, measure_from
        while sent < limit:
            sent += 1
            t0 = time.perf_counter()
            if t0 >= end:
                return
            if sent == warmup_requests + 1 and max_requests is not None:
                measure_from = t0  # count-bounded: the window opens with the first measured request
            try:
                status, _ = await conn.call(next(cycle))
            except (OSError, asyncio.IncompleteReadError, ProtocolError, ValueError):
                result.errors += 1
                return  # this connection is unusable; the others carry on
            t1 = time.perf_counter()
            if t0 < measure_from:
                continue
            result.statuses[status] += 1
            if 200 <= status < 300:
                result.latencies_s.append(t1 - t0)

    try:
        await asyncio.gather(*(worker(c) for c in conns))
        finished = time.perf_counter()
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    result.duration_s = duration_s if duration_s is not None else max(0.0, finished - measure_from)
    return result


async def open_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    rate_rps: float,
    duration_s: float,
    warmup_s: float = 0.0,
    connections: int = 64,
    drain_s: float = 5.0,
) -> Result:
    """Requests due every 1/rate seconds for warmup_s + duration_s; latency from the due time.

    A due request waits for a free connection (that wait is part of its latency, as it would
    be for a real client). Requests due in the warm-up are sent but not recorded."""
    conns = [await Connection.open(host, port) for _ in range(connections)]
    result = Result(f"open {rate_rps:.0f} rps", duration_s)
    due: asyncio.Queue[tuple[float, bool, bytes] | None] = asyncio.Queue()
    interval = 1.0 / rate_rps
    # Warm-up by index, not by comparing float times, so the measured count is exact.
    n_warm, n_measured = round(warmup_s * rate_rps), round(duration_s * rate_rps)
    total = n_warm + n_measured
    start = time.perf_counter() + 0.01

    async def scheduler() -> None:
        cycle = itertools.cycle(requests)
        i = 0
        while i < total:
            now = time.perf_counter()
            # Enqueue everything due by now: asyncio.sleep is coarser than the interval at
            # thousands of requests per second, and lateness is charged to the request anyway.
            while i < total and start + i * interval <= now:
                due.put_nowait((start + i * interval, i >= n_warm, next(cycle)))
                i += 1
            if i < total:
                wait = start + i * interval - time.perf_counter()
                # The loop's timers are millisecond-grained (libuv), so a timed sleep would send
                # up to ~1 ms late; within 2 ms of the next due time, yield instead (the load
                # generator has a core of its own, so spinning costs nothing that matters).
                await asyncio.sleep(wait - 0.002 if wait > 0.003 else 0)
        for _ in conns:
            due.put_nowait(None)

    async def worker(conn: Connection) -> None:
        while (item := await due.get()) is not None:
            t_due, measured, raw = item
            try:
                status, _ = await conn.call(raw)
            except (OSError, asyncio.IncompleteReadError, ProtocolError, ValueError):
                result.errors += measured
                return
            if not measured:
                continue
            result.statuses[status] += 1
            if 200 <= status < 300:
                result.latencies_s.append(time.perf_counter() - t_due)

    try:
        tasks = [asyncio.ensure_future(worker(c)) for c in conns]
        await scheduler()
        _, pending = await asyncio.wait(tasks, timeout=duration_s + warmup_s + drain_s)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    result.late = max(0, n_measured - sum(result.statuses.values()) - result.errors)
    return result


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop when installed (a faster loop means a faster generator), else asyncio.

    The garbage collector is off while it runs: a full collection in a process holding many
    objects pauses the generator for up to hundreds of ms, and an open loop would charge that
    pause to the server. A run lasts seconds, so the garbage that piles up meanwhile is small.
    (Callers with a large heap should also `gc.freeze()` it once; the benchmark does.)"""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(coro)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    finally:
        if was_enabled:
            gc.enable()
