"""Locust user sending realistic transactions (from the data generator) to /v1/predict.

    mlops-lab load --host http://127.0.0.1:8001 --users 8 --duration 20s --scenario baseline
    locust -f reference/mlops_lab/load/locustfile.py --host http://127.0.0.1:8001   # web UI

The scenario and seed come from MLOPS_LOAD_SCENARIO / MLOPS_LOAD_SEED, so any drift scenario
can be replayed as traffic. Every request carries its card_id (sticky routing; also in the
router's X-Card-Id header, so the router routes without parsing the body), a request id
and its user's client id (X-Client-Id: load-user-N): each simulated user is a client of its own
to the model servers' rate limit, as distinct customers would be.

Run by `mlops_lab.load.slo.run_load`, the test times itself instead of using locust's
`--run-time`: that clock starts at gevent's cached loop time, taken while `import locust`
runs, so a cold import of this file (pandas, the data generator: seconds) is eaten from the
test. Here every user's payloads are generated before any user starts (locust's `init`), and
the runner is stopped MLOPS_LOAD_DURATION_S seconds after the first request was sent (or
MLOPS_LOAD_START_TIMEOUT_S after the start if none ever was). At exit the final numbers are
written to MLOPS_LOAD_CSV_PREFIX_stats.csv / _failures.csv (locust's own CSV writer, once):
locust's `--csv` files are snapshots taken every second and not rewritten at exit, so they
miss the last second of a test (all of a test shorter than that).
"""

from __future__ import annotations

import csv
import itertools
import logging
import os
import time
import uuid
from typing import Any

import gevent
from locust import FastHttpUser, constant_throughput, events, task
from locust.env import Environment
from locust.runners import Runner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

from mlops_lab.canary.weights import CARD_ID_HEADER
from mlops_lab.data.generator import request_payloads
from mlops_lab.data.schema import ENTITY

_SCENARIO = os.environ.get("MLOPS_LOAD_SCENARIO", "baseline")
_SEED = int(os.environ.get("MLOPS_LOAD_SEED", "7"))
# Each simulated client sends at most this many requests per second (0: as fast as it can).
_RATE = float(os.environ.get("MLOPS_LOAD_RATE_PER_USER", "0"))
# How long the test runs, counted from its first request (0: until locust stops it).
_DURATION_S = float(os.environ.get("MLOPS_LOAD_DURATION_S", "0"))
_START_TIMEOUT_S = float(os.environ.get("MLOPS_LOAD_START_TIMEOUT_S", "60"))
_CSV_PREFIX = os.environ.get("MLOPS_LOAD_CSV_PREFIX", "")
_PAYLOADS_PER_USER = 4000

_payloads: dict[int, list[dict[str, Any]]] = {}
_user_numbers = itertools.count()
_first_request: list[float] = []  # time.monotonic() when the first request was sent
_environment: list[Environment] = []
log = logging.getLogger(__name__)


def payloads(user: int) -> list[dict[str, Any]]:
    """The transactions user number `user` sends (cycling), generated once."""
    if user not in _payloads:
        _payloads[user] = request_payloads(_SCENARIO, _PAYLOADS_PER_USER, _SEED + user)
    return _payloads[user]


class Transactions(FastHttpUser):
    wait_time = constant_throughput(_RATE) if _RATE > 0 else (lambda self: 0)

    def on_start(self) -> None:
        user = next(_user_numbers)
        self._rows = itertools.cycle(payloads(user))
        self._client_id = f"load-user-{user}"

    @task
    def predict(self) -> None:
        body = next(self._rows)
        if not _first_request:
            _first_request.append(time.monotonic())
        with self.client.post(
            "/v1/predict",
            json=body,
            headers={"x-request-id": uuid.uuid4().hex, "x-client-id": self._client_id, **self._card(body)},
            catch_response=True,
            name="/v1/predict",
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")

    @staticmethod
    def _card(body: dict[str, Any]) -> dict[str, str]:
        """The body's card_id as the router's header: through the router it routes without a parse."""
        return {CARD_ID_HEADER: str(body[ENTITY])} if body.get(ENTITY) else {}


@events.init.add_listener
def _prepare(environment: Environment, **_: Any) -> None:
    """Before any user starts: every user's payloads (on_start would block the others' requests)."""
    _environment.append(environment)
    options = environment.parsed_options
    for user in range((getattr(options, "num_users", None) or 1) if options else 1):
        payloads(user)


@events.test_start.add_listener
def _start_clock(environment: Environment, **_: Any) -> None:
    if _DURATION_S > 0 and environment.runner is not None:
        gevent.spawn(_stop_when_done, environment.runner)


def _stop_when_done(runner: Runner) -> None:
    """Quit the runner _DURATION_S after the first request (time.monotonic, not gevent's
    cached loop time), or _START_TIMEOUT_S after the start if no request was ever sent."""
    started = time.monotonic()
    while not _first_request and time.monotonic() - started < _START_TIMEOUT_S:
        gevent.sleep(0.05)
    if not _first_request:
        log.warning("no request was sent within %.0f s of the start: stopping", _START_TIMEOUT_S)
    else:
        end = _first_request[0] + _DURATION_S
        while (left := end - time.monotonic()) > 0:
            gevent.sleep(min(left, 0.1))
    runner.quit()


@events.quit.add_listener
def _write_final_stats(**_: Any) -> None:
    """After the runner stopped (every answered request counted): the stats and failures CSVs."""
    if not _CSV_PREFIX or not _environment:
        return
    writer = StatsCSV(_environment[0], PERCENTILES_TO_REPORT)
    for suffix, write in (("stats", writer.requests_csv), ("failures", writer.failures_csv)):
        with open(f"{_CSV_PREFIX}_{suffix}.csv", "w", newline="") as fh:
            write(csv.writer(fh))
