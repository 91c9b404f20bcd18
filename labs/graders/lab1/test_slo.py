"""Grader of lab 1 / slo-check (exercises/lab1/slo.py): locust's totals judged against an SLO.

The judgement is checked on locust's totals as its stats CSV writes them, then on real runs: a
real uvicorn server (the reference app, holding a model the grader fitted) runs in a thread
and locust sends it real HTTP, healthy and then slowed down by 1.2 s per request (the
lab1/slow-model scenario, exaggerated so that a busy machine cannot blur it). A run's duration
counts from its first request, so a cold start or a busy machine shortens nothing.
"""

from __future__ import annotations

import csv
import math
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

RUN, RUN_S = "4s", 4
USERS, RATE = 2, 20.0  # paced clients: 2 x 20 req/s, 160 requests planned in RUN
SLO_MS = 1000.0  # generous: the grader must pass on a busy laptop; the slow run is far above it
SLOW_MS = 1200.0
SLOW_RUN = "2s"  # a served request or two is enough to see 1.2 s; each one blocks the server

# The "Aggregated" row of a locust stats CSV (locust 2.x), as csv.DictReader reads it.
TOTALS = {
    "Type": "",
    "Name": "Aggregated",
    "Request Count": "1520",
    "Failure Count": "3",
    "Median Response Time": "4",
    "Average Response Time": "5.3189",
    "Min Response Time": "1.0210",
    "Max Response Time": "118.77",
    "Average Content Size": "134.0",
    "Requests/s": "251.77",
    "Failures/s": "0.4969",
    "50%": "4",
    "66%": "5",
    "75%": "6",
    "80%": "6",
    "90%": "8",
    "95%": "11",
    "98%": "19",
    "99%": "27",
    "99.9%": "110",
    "99.99%": "120",
    "100%": "120",
}
NOTHING_SENT = {
    **TOTALS,
    **dict.fromkeys(["Request Count", "Failure Count", "Median Response Time", "Min Response Time"], "0"),
    **dict.fromkeys(["Average Response Time", "Max Response Time", "Average Content Size"], "0"),
    **dict.fromkeys(["Requests/s", "Failures/s"], "0.0"),
    **dict.fromkeys(
        ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"], "N/A"
    ),
}


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
    status: object = "no answer"
    deadline = time.monotonic() + 120  # a safety net for a server that never starts, not a budget
    while status != 200 and time.monotonic() < deadline:
        try:
            status = httpx.get(f"{base}/readyz", timeout=1).status_code
        except httpx.HTTPError as exc:
            status = exc.__class__.__name__
            time.sleep(0.1)
    if status != 200:
        pytest.fail(f"expected the grader's server at {base} to be ready, got {status}", pytrace=False)
    yield settings, base
    srv.should_exit = True
    thread.join(timeout=10)


def run_of(impl: ModuleType, **fields: Any) -> Any:
    base = {"host": "http://x", "scenario": "baseline", "duration": "20s", "users": 8, "model_version": "3"}
    return impl.LoadRun(**{**base, **fields})


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


def judgement_written(impl: ModuleType) -> None:
    """An unwritten judgement fails on its TODO at once, not after seconds of locust."""
    impl.report_from_totals(TOTALS, run_of(impl), Settings()).slo_met  # noqa: B018


def test_report_from_totals(impl: ModuleType) -> None:
    """locust's totals become a report: counts, throughput, percentiles, the run, the SLO budgets"""
    settings = Settings(slo_p99_ms=40.0, slo_error_rate=0.01)
    got = impl.report_from_totals(TOTALS, run_of(impl), settings)
    assert isinstance(got, impl.LoadReport), (
        f"expected a LoadReport (the exercise's, with your judgement), got {type(got).__name__}"
    )
    want = {
        "host": "http://x",
        "scenario": "baseline",
        "duration": "20s",
        "users": 8,
        "model_version": "3",
        "requests": 1520,
        "failures": 3,
        "rps": 251.77,
        "p50_ms": 4.0,
        "p95_ms": 11.0,
        "p99_ms": 27.0,
        "slo_p99_ms": 40.0,
        "slo_error_rate": 0.01,
    }
    for field, value in want.items():
        have = getattr(got, field)
        assert have == value and type(have) is type(value), (
            f"expected {field} {value!r} ({type(value).__name__}), got {have!r} ({type(have).__name__})"
        )


def test_nothing_sent(impl: ModuleType) -> None:
    """a run that sent nothing reads as 0 requests, no latency measured, and misses the SLO

    In an empty run locust writes N/A in every percentile column, and float("N/A") raises.
    A float can say "not measured" by itself: float("nan"), which is neither <= nor > anything.
    """
    got = impl.report_from_totals(NOTHING_SENT, run_of(impl), Settings())
    assert got.requests == 0, f"expected 0 requests, got {got.requests!r}"
    assert not math.isfinite(got.p99_ms), f"expected no p99 measured (NaN), got {got.p99_ms!r}"
    assert got.slo_met is False, (
        f"expected the SLO missed by a run that sent nothing, got slo_met {got.slo_met}"
    )


def test_error_rate(impl: ModuleType) -> None:
    """the error rate is failures / requests, and 100% when nothing was sent"""
    got = report(impl, failures=5).error_rate
    assert got == pytest.approx(0.005), f"expected 5 failures in 1000 requests = 0.005, got {got}"
    got = report(impl, requests=0).error_rate
    assert got == 1.0, f"expected an error rate of 1.0 when no request was sent (nothing worked), got {got}"


def test_slo_judgement(impl: ModuleType) -> None:
    """the SLO is met only with requests sent, p99 within budget and errors within budget

    A run that sent nothing never meets an SLO, whatever its other numbers say: not even with an
    error budget of 100%.
    """
    cases = [
        ({}, True),
        ({"p99_ms": 50.0}, True),
        ({"failures": 1}, True),
        ({"p99_ms": 51.0}, False),
        ({"failures": 2}, False),
        ({"requests": 0, "failures": 0}, False),
        ({"requests": 0, "failures": 0, "slo_error_rate": 1.0}, False),  # even with no error budget
        ({"p99_ms": math.nan}, False),
    ]
    for fields, want in cases:
        got = report(impl, **fields).slo_met
        assert got is want, f"expected slo_met {want} for {fields or 'the baseline report'}, got {got}"


def test_real_load(impl: ModuleType, server: tuple[Settings, str], tmp_path: Path) -> None:
    """a real locust run against a healthy server: requests, no failures, sane percentiles, SLO met"""
    judgement_written(impl)
    settings, base = server
    got = impl.run_load(
        settings, base, tmp_path, users=USERS, spawn_rate=USERS, duration=RUN, rate_per_user=RATE
    )
    with (tmp_path / "locust_stats.csv").open(newline="") as fh:
        sent = next(int(r["Request Count"]) for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    assert got.requests == sent, f"expected the {sent} requests of locust's stats CSV, got {got.requests}"
    least = USERS * RATE * RUN_S / 4
    assert got.requests >= least, (
        f"expected at least {least:.0f} requests (a quarter of {USERS} users x {RATE:.0f} req/s x {RUN}), "
        f"got {got.requests}"
    )
    assert got.failures == 0, f"expected no failures against a healthy server, got {got.failures}"
    assert 0 < got.p50_ms <= got.p99_ms, f"expected 0 < p50 <= p99, got p50 {got.p50_ms} p99 {got.p99_ms}"
    assert got.model_version == "3", f"expected model_version '3' from /v1/model, got {got.model_version!r}"
    assert got.slo_met, f"expected the {settings.slo_p99_ms:.0f} ms SLO met, got p99 {got.p99_ms} ms"


def test_slow_model_breaks_the_slo(impl: ModuleType, server: tuple[Settings, str], tmp_path: Path) -> None:
    """the same server made 1.2 s slower per request misses the p99 SLO"""
    judgement_written(impl)
    settings, base = server
    settings.inject_latency_ms = SLOW_MS  # the running app reads it on every request
    try:
        got = impl.run_load(
            settings, base, tmp_path, users=USERS, spawn_rate=USERS, duration=SLOW_RUN, rate_per_user=1
        )
    finally:
        settings.inject_latency_ms = 0.0
    assert got.requests > 0, f"expected answers from the slow server, got {got.requests} requests"
    assert got.p99_ms >= SLOW_MS, (
        f"expected p99 >= {SLOW_MS:.0f} ms with {SLOW_MS:.0f} ms injected, got {got.p99_ms}"
    )
    assert not got.slo_met, f"expected the {settings.slo_p99_ms:.0f} ms SLO missed at p99 {got.p99_ms} ms"
