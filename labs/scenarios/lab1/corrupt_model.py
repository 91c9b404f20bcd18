"""lab1/corrupt-model: a version whose artifact is corrupt is promoted while traffic flows.

    make scenario S=lab1/corrupt-model [IMPL=exercises]

The server polls @champion, tries to load the new version, fails, and must keep serving the
old one: zero failed requests, the failure visible in /v1/model and the metrics. Rolling the
alias back ends the incident.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import httpx

from mlops_lab.data.generator import generate, request_payloads
from mlops_lab.labs.scenarios import Context
from mlops_lab.lifecycle import registry
from mlops_lab.lifecycle.tracking import client_for
from mlops_lab.lifecycle.train import train
from mlops_lab.store.db import Store


def run(ctx: Context) -> None:
    ctx.start_registry()
    v1 = ctx.train_champion()
    base = ctx.start_server("stable")
    ctx.info(f"stable server ready on {base}, serving v{v1}")

    before = set(ctx.settings.mlflow_artifacts_dir.rglob("model.skops"))
    v2 = train(ctx.settings, generate("baseline", 4_000, seed=5)).version
    corrupt = sorted(set(ctx.settings.mlflow_artifacts_dir.rglob("model.skops")) - before)
    ctx.check(bool(corrupt), f"found v{v2}'s model file to corrupt")
    for path in corrupt:
        path.write_bytes(path.read_bytes()[:200])  # a truncated upload

    statuses: dict[int, int] = {}
    versions: set[str] = set()
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=base, timeout=5) as client:
            for body in itertools.cycle(request_payloads("baseline", 2_000, seed=3)):
                if stop.is_set():
                    return
                r = client.post("/v1/predict", json=body)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    versions.add(r.json()["model_version"])

    thread = threading.Thread(target=traffic)
    thread.start()
    store = Store(ctx.settings.resolved_store_url)
    client = client_for(ctx.settings)
    try:
        registry.promote(client, store, ctx.settings.model_name, v2, actor="scenario", reason="new upload")
        ctx.inject(f"@champion -> v{v2}, whose model file is truncated")

        def failed_load() -> Any:
            info = httpx.get(f"{base}/v1/model", timeout=2).json()
            return info if info.get("load_failures", 0) >= 1 else None

        ctx.check(ctx.wait_for(failed_load, timeout_s=30), "the server tried to load the new version")
        info = failed_load()
        ctx.symptom(f"the load failed: {info['last_error']}")
        ctx.signal(f"/v1/model: version {info['version']}, load_failures {info['load_failures']}")
        metrics = httpx.get(f"{base}/metrics", timeout=2).text
        counter = [ln for ln in metrics.splitlines() if ln.startswith("mlops_model_load_failures_total")]
        ctx.signal(f"metrics: {counter[0] if counter else 'no load-failure counter exported'}")
        ctx.check(info["version"] == v1, f"v{v1} keeps serving (got v{info['version']})")
        ctx.check(ctx.ready(base), "/readyz stays 200: the server is still useful")

        name = ctx.settings.model_name
        target = registry.rollback(client, store, name, actor="scenario", reason="corrupt artifact")
        ctx.mitigate(f"registry rollback: @champion -> v{target} (audited)")
    finally:
        stop.set()
        thread.join()
        store.dispose()
    errors = sum(n for code, n in statuses.items() if code != 200)
    ctx.info(f"traffic during the incident: {sum(statuses.values())} requests, statuses {statuses}")
    ctx.check(errors == 0, f"no failed request during the incident ({errors} failed)")
    ctx.check(versions == {v1}, f"every answer came from v{v1} (saw {sorted(versions)})")
