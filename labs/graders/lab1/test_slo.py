"""Grader of lab 1 / slo-check (exercises/lab1/slo.py): a real locust run judged against an SLO.

A real uvicorn server (the reference app, holding a model the grader fitted) runs in a thread;
locust sends it real HTTP for a few seconds. The same server is then slowed down by 1.2 s per
request (the lab1/slow-model scenario, exaggerated so that a busy machine cannot blur it).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn

from mlops_lab.labs.grading import TinyModel, free_port, loaded_model
from mlops_lab.serving.app import create_app
from mlops_lab.serving.holder import ModelHolder
from mlops_lab.settings import Settings

RUN = "4s"
SLO_MS = 1000.0  # generous: the grader must pass on a busy laptop; the slow run is far above it
SLOW_MS = 1200.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model: TinyModel) -> Iterator[tuple[Settings, str]]:
    home = tmp_path_factory.mktemp("load")
    settings = Settings(home=home, reload_poll_s=3600, slo_p99_ms=SLO_MS)
    holder = ModelHolder(settings, "champion", loader=lambda _s, _a: loaded_model(tiny_model, "3"))
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, holder=holder), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    yield settings, base
    srv.should_exit = True
    thread.join(timeout=10)


def report(impl: ModuleType, **fields: Any) -> Any:
    base = {
        "host": "http://x",
        "scenario": "baseline",
        "duration": "3s",
        "users": 2,
        "requests": 1000,
        "failures": 0,
        "rps": 300.0,
        "p50_ms": 2.0,
        "p95_ms": 5.0,
        "p99_ms": 20.0,
        "model_version": "3",
        "slo_p99_ms": 50.0,
        "slo_error_rate": 0.001,
    }
    return impl.LoadReport(**{**base, **fields})


def test_error_rate(impl: ModuleType) -> None:
    """the error rate is failures / requests, and 100% when nothing was sent"""
    assert report(impl, failures=5).error_rate == pytest.approx(0.005), "expected 5 failures in 1000 = 0.005"
    got = report(impl, requests=0).error_rate
    assert got == 1.0, f"expected an error rate of 1.0 when no request was sent (nothing worked), got {got}"


def test_slo_judgement(impl: ModuleType) -> None:
    """the SLO is met only with requests sent, p99 within budget and errors within budget"""
    cases = [
        ({}, True),
        ({"p99_ms": 51.0}, False),
        ({"failures": 2}, False),
        ({"requests": 0}, False),
    ]
    for fields, want in cases:
        got = report(impl, **fields).slo_met
        assert got is want, f"expected slo_met {want} for {fields or 'the baseline report'}, got {got}"


def test_real_load(impl: ModuleType, server: tuple[Settings, str], tmp_path: Path) -> None:
    """a real locust run against a healthy server: requests, no failures, sane percentiles, SLO met"""
    settings, base = server
    got = impl.run_load(settings, base, tmp_path, users=2, spawn_rate=2, duration=RUN, rate_per_user=20)
    assert got.requests > 15, f"expected more than 15 requests in {RUN}, got {got.requests}"
    assert got.failures == 0, f"expected no failures against a healthy server, got {got.failures}"
    assert 0 < got.p50_ms <= got.p99_ms, f"expected 0 < p50 <= p99, got p50 {got.p50_ms} p99 {got.p99_ms}"
    assert got.model_version == "3", f"expected model_version '3' from /v1/model, got {got.model_version!r}"
    assert got.slo_met, (
        f"expected the {settings.slo_p99_ms:.0f} ms SLO met at 40 req/s, got p99 {got.p99_ms} ms"
    )


def test_slow_model_breaks_the_slo(impl: ModuleType, server: tuple[Settings, str], tmp_path: Path) -> None:
    """the same server made 1.2 s slower per request misses the p99 SLO"""
    settings, base = server
    settings.inject_latency_ms = SLOW_MS  # the running app reads it on every request
    try:
        got = impl.run_load(settings, base, tmp_path, users=2, spawn_rate=2, duration=RUN, rate_per_user=1)
    finally:
        settings.inject_latency_ms = 0.0
    assert got.p99_ms >= 300, f"expected p99 >= 300 ms with 300 ms injected, got {got.p99_ms}"
    assert not got.slo_met, f"expected the {settings.slo_p99_ms:.0f} ms SLO missed at p99 {got.p99_ms} ms"
    assert dataclasses.asdict(got)["slo_p99_ms"] == settings.slo_p99_ms, (
        "expected the SLO budget from settings"
    )
