"""Reliability with real processes: an MLflow server, uvicorn model servers, signals.

Each test states the fault, the signal that shows it, and the behaviour we require.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlops_lab.lifecycle.tracking import client_for
from mlops_lab.runtime.supervisor import Supervisor, mlflow_spec, server_spec
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

from ..conftest import GOOD, TOKEN, free_port


@pytest.fixture
def stable(mlflow_server: Settings, tmp_path: Path) -> Iterator[tuple[Settings, Supervisor, str]]:
    """A stable model server process with its own home (store, logs) reading the shared registry."""
    s = mlflow_server.model_copy(update={"home": tmp_path, "stable_port": free_port(), "store_url": None})
    sup = Supervisor(s)
    sup.start(server_spec(s, "stable"))
    base = f"http://{s.host}:{s.stable_port}"
    yield s, sup, base
    sup.stop_all()


def wait_for(predicate, timeout_s: float = 60, every_s: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(every_s)
    return False


def ready(base: str) -> bool:
    return httpx.get(f"{base}/readyz", timeout=2).status_code == 200


def test_sigterm_under_load_loses_no_acknowledged_prediction(
    stable: tuple[Settings, Supervisor, str],
) -> None:
    s, sup, base = stable
    assert wait_for(lambda: ready(base))
    acknowledged: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def client_loop() -> None:
        with httpx.Client(base_url=base, timeout=5) as client:
            while not stop.is_set():
                rid = uuid.uuid4().hex
                try:
                    r = client.post("/v1/predict", json={**GOOD, "request_id": rid})
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                    time.sleep(0.01)
                    continue
                if r.status_code == 200:
                    assert r.json()["request_id"] == rid
                    acknowledged.append(rid)

    threads = [threading.Thread(target=client_loop) for _ in range(6)]
    for t in threads:
        t.start()
    assert wait_for(lambda: len(acknowledged) > 300, timeout_s=30, every_s=0.05)
    pid = int(sup.read_state("stable")["pid"])  # type: ignore[index]
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not _alive(pid), timeout_s=30, every_s=0.05), "server did not exit after SIGTERM"
    stop.set()
    for t in threads:
        t.join()
    stored = Store(s.resolved_store_url).prediction_ids()
    missing = set(acknowledged) - stored
    print(
        f"\nSIGTERM under load: {len(acknowledged)} acknowledged, {len(stored)} stored, "
        f"{len(missing)} missing, {len(errors)} client errors after shutdown began"
    )
    assert not missing, f"{len(missing)} acknowledged predictions were lost"
    assert len(stored) == len(acknowledged)


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def test_corrupt_artifact_on_reload_keeps_the_old_model(
    mlflow_server: Settings, stable: tuple[Settings, Supervisor, str]
) -> None:
    _, _, base = stable
    assert wait_for(lambda: ready(base))
    files = sorted(mlflow_server.mlflow_artifacts_dir.rglob("model.skops"))
    assert files, "no model artifact found to corrupt"
    originals = {f: f.read_bytes() for f in files}
    try:
        for f in files:
            f.write_bytes(b"this is not a model")
        r = httpx.post(f"{base}/admin/reload", headers=TOKEN, timeout=30)
        assert r.status_code == 503 and r.json()["reloaded"] is False and r.json()["error"]
        info = httpx.get(f"{base}/v1/model", timeout=5).json()
        assert info["version"] == "1" and info["load_failures"] >= 1 and info["last_error"]
        assert ready(base)
        assert httpx.post(f"{base}/v1/predict", json=GOOD, timeout=5).json()["model_version"] == "1"
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert 'mlops_model_load_failures_total{variant="stable"} 1.0' in metrics
    finally:
        for f, data in originals.items():
            f.write_bytes(data)


def test_registry_down_at_start_then_back(mlflow_server: Settings, tmp_path: Path) -> None:
    registry = Supervisor(mlflow_server)
    registry.stop("mlflow")
    s = mlflow_server.model_copy(update={"home": tmp_path, "stable_port": free_port(), "store_url": None})
    sup = Supervisor(s)
    base = f"http://{s.host}:{s.stable_port}"
    try:
        sup.start(server_spec(s, "stable"))
        assert httpx.get(f"{base}/healthz", timeout=2).status_code == 200  # alive ...
        r = httpx.get(f"{base}/readyz", timeout=2)
        assert r.status_code == 503 and r.headers["retry-after"]  # ... but not ready, and says why
        assert wait_for(
            lambda: "no model loaded" in httpx.get(f"{base}/readyz", timeout=2).json()["detail"], 30
        )
        registry.start(mlflow_spec(mlflow_server))
        assert wait_for(lambda: ready(base), timeout_s=60), httpx.get(f"{base}/readyz").text
        assert httpx.post(f"{base}/v1/predict", json=GOOD, timeout=5).status_code == 200
    finally:
        sup.stop_all()
        registry.start(mlflow_spec(mlflow_server))  # leave the shared registry running


def test_down_cleans_up_after_a_crashed_component(mlflow_server: Settings, tmp_path: Path) -> None:
    s = mlflow_server.model_copy(update={"home": tmp_path, "stable_port": free_port(), "store_url": None})
    sup = Supervisor(s)
    pid = sup.start(server_spec(s, "stable"))
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not _alive(pid), 10)
    assert [r["alive"] for r in sup.status()] == [False]
    sup.stop_all()
    assert sup.status() == [] and sup.names() == []
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_a_busy_port_is_a_clear_start_error(mlflow_server: Settings, tmp_path: Path) -> None:
    from mlops_lab.runtime.supervisor import StartError

    s = mlflow_server.model_copy(update={"home": tmp_path, "stable_port": mlflow_server.mlflow_port})
    with pytest.raises(StartError, match=f"port {mlflow_server.mlflow_port} is already in use"):
        Supervisor(s).start(server_spec(s, "stable"))


def test_a_rollback_to_a_recent_version_is_served_from_memory(
    mlflow_server: Settings, tmp_path: Path
) -> None:
    """Fault: a bad release; @champion is moved back to the version served a minute ago. Signal:
    /v1/model says loaded_from_cache and its load_s; mlops_model_load_seconds{source}. Required:
    the rollback downloads nothing (the registry is only asked where the alias points)."""
    client = client_for(mlflow_server)
    source = client.get_model_version(mlflow_server.model_name, "1")
    name = f"rollback-{uuid.uuid4().hex[:8]}"  # a model of its own: the shared one stays on v1
    client.create_registered_model(name)
    for _ in range(2):  # the same logged model twice: enough to watch the swaps
        client.create_model_version(
            name,
            source.source,
            run_id=source.run_id,
            tags=source.tags,
            model_id=source.model_id or source.source.removeprefix("models:/"),
        )
    client.set_registered_model_alias(name, "champion", "1")
    s = mlflow_server.model_copy(
        update={
            "home": tmp_path,
            "stable_port": free_port(),
            "store_url": None,
            "model_name": name,
            "reload_poll_s": 0.2,
        }
    )
    sup = Supervisor(s)
    base = f"http://{s.host}:{s.stable_port}"
    try:
        sup.start(server_spec(s, "stable"))
        assert wait_for(lambda: ready(base))
        seen: dict[str, tuple[bool, float, float]] = {}
        for step, version in (("release v2", "2"), ("rollback to v1", "1")):
            moved = time.monotonic()
            client.set_registered_model_alias(name, "champion", version)
            assert wait_for(lambda v=version: _model(base)["version"] == v, timeout_s=30, every_s=0.01)
            info = _model(base)
            seen[step] = (info["loaded_from_cache"], info["load_s"], time.monotonic() - moved)
        print(
            "\n"
            + "\n".join(
                f"{step}: from {'cache' if cached else 'registry'}, load {load_s * 1000:.1f} ms, "
                f"alias moved -> serving in {total * 1000:.0f} ms (poll every {s.reload_poll_s} s)"
                for step, (cached, load_s, total) in seen.items()
            )
        )
        assert seen["release v2"][0] is False and seen["rollback to v1"][0] is True
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert 'mlops_model_load_seconds_count{source="cache",variant="stable"} 1.0' in metrics
        assert 'mlops_model_load_seconds_count{source="registry",variant="stable"} 2.0' in metrics
    finally:
        sup.stop_all()


def _model(base: str) -> dict[str, Any]:
    info: dict[str, Any] = httpx.get(f"{base}/v1/model", timeout=5).json()
    return info
