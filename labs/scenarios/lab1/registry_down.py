"""lab1/registry-down: the registry is down when a model server starts.

    make scenario S=lab1/registry-down [IMPL=exercises]

A server that cannot load a model must still start (alive), stay out of rotation (not ready,
503 + Retry-After with the reason), keep retrying, and become ready by itself when the
registry is back: no restart, no operator.
"""

from __future__ import annotations

import httpx

from mlops_lab.data.generator import request_payloads
from mlops_lab.labs.scenarios import Context
from mlops_lab.runtime.supervisor import mlflow_spec


def run(ctx: Context) -> None:
    ctx.start_registry()
    v1 = ctx.train_champion()
    ctx.stop_registry()
    ctx.inject("the MLflow server is stopped")

    base = ctx.start_server("stable", wait_ready=False)
    health = httpx.get(f"{base}/healthz", timeout=5)
    ctx.check(health.status_code == 200, f"/healthz answers {health.status_code}: the process is alive")
    ready = httpx.get(f"{base}/readyz", timeout=5)
    ctx.symptom(f"/readyz answers {ready.status_code}: {ready.text[:120]}")
    ctx.check(ready.status_code == 503, "not ready while no model could be loaded")
    ctx.check(bool(ready.headers.get("retry-after")), f"Retry-After: {ready.headers.get('retry-after')}")
    predict = httpx.post(f"{base}/v1/predict", json=request_payloads("baseline", 1, seed=1)[0], timeout=5)
    ctx.check(predict.status_code == 503, f"/v1/predict answers {predict.status_code}, not a 500")

    def failures() -> int:
        return int(httpx.get(f"{base}/v1/model", timeout=5).json()["load_failures"])

    ctx.wait_for(lambda: failures() >= 2, timeout_s=60)
    info = httpx.get(f"{base}/v1/model", timeout=5).json()
    ctx.signal(f"/v1/model: load_failures {info['load_failures']} and counting; {str(info['reason'])[:90]}")

    ctx.supervisor.start(mlflow_spec(ctx.settings))
    ctx.mitigate("the MLflow server is back (no action on the model server)")
    ctx.check(ctx.wait_for(lambda: ctx.ready(base), timeout_s=60), "the server became ready by itself")
    version = httpx.get(f"{base}/v1/model", timeout=5).json()["version"]
    ctx.check(version == v1, f"it serves v{version}")
