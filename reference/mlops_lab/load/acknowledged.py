"""A client that remembers which predictions were acknowledged (answered 200), to check later
that the store holds every one of them: the "no acknowledged prediction is ever lost" guarantee
under a fault (a database restart, a server stopped under load).

    python -c "import mlops_lab.load.acknowledged as a; help(a.Acknowledged)"

Closed loop, `concurrency` threads with a short pause between requests; each request carries a
unique request_id (the store's key), and the server echoes it in the stored row.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from mlops_lab.data.generator import features_only, generate


class Acknowledged:
    """A client that remembers the request id of every prediction answered 200 (acknowledged)."""

    def __init__(self, base_url: str, concurrency: int = 8) -> None:
        frame = features_only(generate("baseline", 5_000, seed=23))
        self.rows: list[dict[str, Any]] = [
            {str(k): v for k, v in r.items()} for r in frame.to_dict("records")
        ]
        self.url = base_url.rstrip("/") + "/v1/predict"
        self.ok: list[str] = []
        self.failed = 0
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(concurrency)
        self._futures = [self._pool.submit(self._worker, i, concurrency) for i in range(concurrency)]

    def _worker(self, start: int, step: int) -> None:
        with httpx.Client(timeout=10) as client:
            i = start
            while not self._stop.is_set():
                body = dict(self.rows[i % len(self.rows)], request_id=f"ack-{time.time_ns()}-{i}")
                try:
                    status = client.post(self.url, json=body).status_code
                except httpx.HTTPError:
                    status = 0
                if status == 200:
                    self.ok.append(body["request_id"])
                else:
                    self.failed += 1
                i += step
                time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)
