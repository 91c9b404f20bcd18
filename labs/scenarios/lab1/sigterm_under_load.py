"""lab1/sigterm-under-load: SIGTERM while answering requests loses no acknowledged prediction.

    make scenario S=lab1/sigterm-under-load [IMPL=exercises]

Six clients send predictions; the server gets SIGTERM (a deploy, a node drain). It must finish
in-flight requests and drain its prediction log before exiting: every prediction a client got
a 200 for is in the store.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
import uuid

import httpx

from mlops_lab.data.generator import request_payloads
from mlops_lab.labs.scenarios import Context
from mlops_lab.store.db import Store


def run(ctx: Context) -> None:
    ctx.start_registry()
    ctx.train_champion()
    base = ctx.start_server("stable")
    acknowledged: list[str] = []
    refused: list[str] = []
    stop = threading.Event()
    bodies = request_payloads("baseline", 500, seed=4)

    def client_loop(n: int) -> None:
        with httpx.Client(base_url=base, timeout=5) as client:
            for body in itertools.cycle(bodies[n::6]):
                if stop.is_set():
                    return
                rid = uuid.uuid4().hex
                try:
                    r = client.post("/v1/predict", json={**body, "request_id": rid})
                except httpx.HTTPError as exc:
                    refused.append(type(exc).__name__)
                    time.sleep(0.02)
                    continue
                if r.status_code == 200:
                    acknowledged.append(rid)

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    ctx.wait_for(lambda: len(acknowledged) > 500, timeout_s=30, every_s=0.05)
    state = ctx.supervisor.read_state("stable") or {}
    pid = int(state["pid"])
    at_kill = len(acknowledged)
    os.kill(pid, signal.SIGTERM)
    ctx.inject(f"SIGTERM to the server (pid {pid}) after {at_kill} acknowledged predictions")
    exited = ctx.wait_for(lambda: not ctx.supervisor.is_running("stable"), timeout_s=40, every_s=0.05)
    stop.set()
    for t in threads:
        t.join()
    ctx.check(exited, "the server exited after SIGTERM")
    ctx.symptom(f"clients saw {len(refused)} refused connections once it stopped listening")
    store = Store(ctx.settings.resolved_store_url)
    try:
        stored = store.prediction_ids()
    finally:
        store.dispose()
    missing = set(acknowledged) - stored
    ctx.signal(f"{len(acknowledged)} acknowledged, {len(stored)} in the store, {len(missing)} missing")
    ctx.check(not missing, "every acknowledged prediction is in the store")
    ctx.mitigate("graceful shutdown: stop accepting, finish in-flight requests, drain the log queue")
