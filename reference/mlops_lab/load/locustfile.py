"""Locust user sending realistic transactions (from the data generator) to /v1/predict.

    mlops-lab load --host http://127.0.0.1:8001 --users 8 --duration 20s --scenario baseline
    locust -f reference/mlops_lab/load/locustfile.py --host http://127.0.0.1:8001   # web UI

The scenario and seed come from MLOPS_LOAD_SCENARIO / MLOPS_LOAD_SEED, so any drift scenario
can be replayed as traffic. Every request carries its card_id (sticky routing) and a request id.
"""

from __future__ import annotations

import itertools
import os
import uuid

from locust import FastHttpUser, constant_throughput, task

from mlops_lab.data.generator import request_payloads

_SCENARIO = os.environ.get("MLOPS_LOAD_SCENARIO", "baseline")
_SEED = int(os.environ.get("MLOPS_LOAD_SEED", "7"))
# Each simulated client sends at most this many requests per second (0: as fast as it can).
_RATE = float(os.environ.get("MLOPS_LOAD_RATE_PER_USER", "0"))
_user_numbers = itertools.count()


class Transactions(FastHttpUser):
    wait_time = constant_throughput(_RATE) if _RATE > 0 else (lambda self: 0)

    def on_start(self) -> None:
        self._rows = itertools.cycle(request_payloads(_SCENARIO, 4000, _SEED + next(_user_numbers)))

    @task
    def predict(self) -> None:
        body = next(self._rows)
        with self.client.post(
            "/v1/predict",
            json=body,
            headers={"x-request-id": uuid.uuid4().hex},
            catch_response=True,
            name="/v1/predict",
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
