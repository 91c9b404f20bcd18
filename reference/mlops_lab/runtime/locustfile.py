"""Locust user sending realistic transactions (from the data generator) to /v1/predict.

    mlops-lab load --host http://127.0.0.1:8001 --users 8 --duration 20s --scenario baseline
    locust -f reference/mlops_lab/runtime/locustfile.py --host http://127.0.0.1:8001   # web UI

The scenario and seed come from MLOPS_LOAD_SCENARIO / MLOPS_LOAD_SEED, so any drift scenario
can be replayed as traffic. Every request carries its card_id (sticky routing) and a request id.
"""

from __future__ import annotations

import itertools
import os
import uuid
from typing import Any, cast

from locust import FastHttpUser, constant_throughput, task

from mlops_lab.data.generator import generate
from mlops_lab.data.schema import ENTITY, SCHEMA

_SCENARIO = os.environ.get("MLOPS_LOAD_SCENARIO", "baseline")
_SEED = int(os.environ.get("MLOPS_LOAD_SEED", "7"))
# Each simulated client sends at most this many requests per second (0: as fast as it can).
_RATE = float(os.environ.get("MLOPS_LOAD_RATE_PER_USER", "0"))
_user_numbers = itertools.count()


def _payloads(scenario: str, seed: int, n: int = 4000) -> list[dict[str, object]]:
    frame = generate(scenario, n, seed=seed)
    cols = [c for c in [*SCHEMA.names, ENTITY] if c in frame.columns] + [
        c for c in frame.columns if c not in SCHEMA.names and c not in (ENTITY, SCHEMA.label)
    ]
    # to_dict types its keys as Hashable; a frame of named columns has str keys.
    records = cast(list[dict[str, Any]], frame[cols].to_dict("records"))
    # NaN is not JSON: a missing value travels as null.
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in records]


class Transactions(FastHttpUser):
    wait_time = constant_throughput(_RATE) if _RATE > 0 else (lambda self: 0)

    def on_start(self) -> None:
        self._rows = itertools.cycle(_payloads(_SCENARIO, _SEED + next(_user_numbers)))

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
