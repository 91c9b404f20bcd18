"""Steady background traffic with a switchable scenario: what the demo and the canary tests send.

    python -m mlops_lab.load.traffic http://127.0.0.1:8000 --rate 100 --seconds 10

Unlike a load test, which finds out how much a server can take, this is the production
stream the rest of the system watches: a fixed request rate (open loop, so a slow server does
not slow the clock), generated transactions of the current scenario (`switch` changes it, as
real traffic drifts), a unique request id per request, the card id in the router's X-Card-Id
header as well as in the body (so the router routes it without parsing the body), and a record
of every answer: which variant served it (the router's x-mlops-variant header), the status and
the latency.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np

from mlops_lab.canary.weights import CARD_ID_HEADER
from mlops_lab.data.generator import request_payloads
from mlops_lab.data.schema import ENTITY


@dataclass(frozen=True)
class Answer:
    t: float  # seconds since the traffic started
    scenario: str
    variant: str  # "stable" | "canary" | "" when no answer came
    status: int  # 0 when the connection failed
    latency_ms: float


class Traffic:
    def __init__(
        self,
        base_url: str,
        rate_rps: float,
        *,
        concurrency: int = 16,
        seed: int = 7,
        scenario: str = "baseline",
    ) -> None:
        if rate_rps <= 0 or concurrency < 1:
            raise ValueError("rate_rps and concurrency must be positive")
        self.url = base_url.rstrip("/") + "/v1/predict"
        self.rate = rate_rps
        self.concurrency = concurrency
        self.seed = seed
        self.answers: list[Answer] = []  # appended by the traffic thread only
        self._rows: dict[str, Any] = {}
        self._scenario = scenario
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self.switch(scenario)

    @property
    def scenario(self) -> str:
        return self._scenario

    def switch(self, scenario: str) -> None:
        """From the next request on, send transactions of `scenario`."""
        if scenario not in self._rows:
            self._rows[scenario] = itertools.cycle(request_payloads(scenario, 5_000, self.seed))
        self._scenario = scenario

    def start(self) -> Traffic:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def since(self, t: float) -> list[Answer]:
        return [a for a in list(self.answers) if a.t >= t]

    def now(self) -> float:
        return time.monotonic() - self._t0

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            slots = itertools.count()
            await asyncio.gather(*(self._worker(session, slots) for _ in range(self.concurrency)))

    async def _worker(self, session: aiohttp.ClientSession, slots: itertools.count[int]) -> None:
        while not self._stop.is_set():
            due = self._t0 + next(slots) / self.rate  # open loop: the schedule, not the last answer
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            scenario = self._scenario
            body = dict(next(self._rows[scenario]), request_id=uuid.uuid4().hex)
            # The card in a header too, as the body has it: the router routes on it, parsing nothing.
            headers = {CARD_ID_HEADER: str(body[ENTITY])} if body.get(ENTITY) else None
            t = time.monotonic()
            try:
                async with session.post(self.url, json=body, headers=headers) as resp:
                    await resp.read()
                    status, variant = resp.status, resp.headers.get("x-mlops-variant", "")
            except (aiohttp.ClientError, TimeoutError):
                status, variant = 0, ""
            self.answers.append(
                Answer(t - self._t0, scenario, variant, status, (time.monotonic() - t) * 1000)
            )


def summarize(answers: list[Answer]) -> dict[str, dict[str, float]]:
    """Per variant: requests, errors (non-200), p50/p99 latency in ms."""
    out: dict[str, dict[str, float]] = {}
    for variant in sorted({a.variant for a in answers}):
        mine = [a for a in answers if a.variant == variant]
        lat = np.array([a.latency_ms for a in mine])
        out[variant or "no answer"] = {
            "requests": len(mine),
            "errors": sum(a.status != 200 for a in mine),
            "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)),
        }
    return out


def _main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--scenario", default="baseline")
    args = parser.parse_args()
    traffic = Traffic(args.url, args.rate, scenario=args.scenario).start()
    time.sleep(args.seconds)
    traffic.stop()
    for variant, row in summarize(traffic.answers).items():
        print(variant, row)


if __name__ == "__main__":
    _main()
