"""The batch route's bulk log: one submit per batch, one executemany per chunk, nothing lost.

Against real SQLite and, when MLOPS_TEST_POSTGRES_URL is set, real Postgres (as test_store.py);
the last tests run a real uvicorn model server and send it batches over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from mlops_lab.runtime.supervisor import Supervisor, server_spec
from mlops_lab.settings import Settings
from mlops_lab.store.block import LOGGED, PredictionBlock
from mlops_lab.store.db import Store, metadata
from mlops_lab.store.writer import BatchWriter, replay_spill

from ..conftest import GOOD, free_port, needs_postgres

WHEN = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def block(prefix: str, n: int, **changes: Any) -> PredictionBlock:
    fields: dict[str, Any] = {
        "request_ids": [f"{prefix}{i}" for i in range(n)],
        "ts": WHEN,
        "variant": "stable",
        "model_version": "1",
        "features": {
            "amount": [float(i) + 0.5 for i in range(n)],
            "country": ["US" if i % 2 else "ZZ" for i in range(n)],
            "distance_from_home_km": [None if i % 3 == 0 else i * 1.25 for i in range(n)],
        },
        "scores": [i / (n + 1) for i in range(n)],
        "decisions": [i % 4 == 0 for i in range(n)],
        "latency_ms": 0.01,
    }
    fields.update(changes)
    return PredictionBlock(**fields)


def row(request_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "ts": WHEN,
        "variant": "canary",
        "model_version": "2",
        "features": {"amount": 1.0},
        "score": 0.5,
        "decision": True,
        "latency_ms": 1.0,
    }


@pytest.fixture(scope="module")
def postgres_store_url(postgres_database: Any) -> str:
    return str(postgres_database("mlops_bulk"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'store.db'}")
        yield s
        s.dispose()
        return
    s = Store(request.getfixturevalue("postgres_store_url"))
    try:
        yield s
    finally:
        metadata.drop_all(s.engine)
        s.dispose()


def statements(store: Store) -> list[int]:
    """Rows per INSERT the store sends from now on (one number per statement: an executemany's
    parameter sets, or the rows of a multi-row VALUES list)."""
    sent: list[int] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def count(_conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        if sql.lstrip().upper().startswith("INSERT INTO PREDICTIONS"):
            sent.append(len(params) if many else len(params) // len(LOGGED))

    return sent


def test_blocks_and_rows_are_stored_as_their_rows(store: Store) -> None:
    b = block("b", 7)
    sent = statements(store)
    store.insert_predictions([row("r0"), b, row("r1")])
    assert sent == [9]  # one executemany for the whole chunk
    store.insert_predictions([b, row("r0")])  # a retried chunk: stored once
    frame = store.predictions_frame()
    assert list(frame["request_id"]) == ["r0", *b.request_ids, "r1"]
    stored = frame.set_index("request_id")
    for expected in b.rows():
        got = stored.loc[expected["request_id"]]
        assert got["score"] == expected["score"] and bool(got["decision"]) == expected["decision"]
        assert got["variant"] == "stable" and got["model_version"] == "1" and got["latency_ms"] == 0.01
        for name, value in expected["features"].items():
            assert (value is None and got[name] != got[name]) or got[name] == value  # NaN: a null
    assert (stored.loc["r0", "variant"], stored.loc["r0", "amount"]) == ("canary", 1.0)
    assert {t.replace(tzinfo=None) for t in frame["ts"]} == {WHEN.replace(tzinfo=None)}


def test_a_batch_is_queued_whole_or_not_at_all(store: Store, tmp_path: Path) -> None:
    w = BatchWriter(
        store,
        max_queue=10,
        flush_rows=4,
        flush_interval_s=30,
        shutdown_timeout_s=1.0,
        spill_dir=tmp_path / "spill",
    )
    assert w.submit_batch(block("a", 8)) and w.depth == 8
    assert not w.submit_batch(block("b", 3)) and w.depth == 8 and w.refused == 3  # 11 > 10
    assert w.submit_batch(block("c", 2)) and w.free == 0
    assert not w.submit(row("d")) and w.refused == 4
    sent = statements(store)
    w.start()
    w.close()  # drains: chunks of at most 4 rows, the 8-row block cut in two
    assert sent == [4, 4, 2]
    assert store.prediction_ids() == {f"a{i}" for i in range(8)} | {"c0", "c1"}
    assert (w.written, w.spilled, w.depth) == (10, 0, 0)
    assert not w.submit_batch(block("e", 1)), "a closed writer must refuse, not silently drop"


def test_a_batch_flushes_by_size_without_closing(store: Store, tmp_path: Path) -> None:
    w = BatchWriter(
        store,
        max_queue=1000,
        flush_rows=50,
        flush_interval_s=30,
        shutdown_timeout_s=1.0,
        spill_dir=tmp_path / "spill",
    ).start()
    try:
        assert w.submit_batch(block("s", 120))
        deadline = time.monotonic() + 10
        while store.count_predictions() < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.count_predictions() >= 100  # two full chunks went without waiting 30 s
    finally:
        w.close()
    assert store.count_predictions() == 120


def test_database_down_at_shutdown_spills_a_batch_then_replays_it(tmp_path: Path) -> None:
    broken = Store(f"sqlite:///{tmp_path / 'store.db'}")
    w = BatchWriter(
        broken,
        max_queue=100,
        flush_rows=50,
        flush_interval_s=30,
        shutdown_timeout_s=0.5,
        spill_dir=tmp_path / "spill",
    ).start()
    b = block("x", 12)
    assert w.submit_batch(b) and w.submit(row("single"))
    broken.engine.dispose()
    (tmp_path / "store.db").unlink()
    (tmp_path / "store.db").mkdir()  # every write fails from now on
    w.close()
    assert w.spilled == 13 and w.written == 0
    spilled = [
        json.loads(line) for f in (tmp_path / "spill").glob("*.jsonl") for line in f.read_text().splitlines()
    ]
    assert [r["request_id"] for r in spilled] == [*b.request_ids, "single"]
    healthy = Store(f"sqlite:///{tmp_path / 'other.db'}")
    assert replay_spill(healthy, tmp_path / "spill") == 13
    frame = healthy.predictions_frame().set_index("request_id")
    assert frame.loc["x4", "amount"] == 4.5 and frame.loc["x4", "country"] == "ZZ"
    assert frame.loc["x3", "distance_from_home_km"] != frame.loc["x3", "distance_from_home_km"]  # null


def test_a_row_the_database_refuses_is_spilled_and_the_rest_of_its_batch_written(
    store: Store, tmp_path: Path
) -> None:
    poisoned = block("p", 4, scores=[0.1, None, 0.3, 0.4])  # score is NOT NULL
    w = BatchWriter(
        store,
        max_queue=100,
        flush_rows=50,
        flush_interval_s=30,
        shutdown_timeout_s=1.0,
        spill_dir=tmp_path / "spill",
    ).start()
    assert w.submit_batch(poisoned)
    w.close()
    assert store.prediction_ids() == {"p0", "p2", "p3"} and w.spilled == 1


# --- through a real model server --------------------------------------------------------------


@pytest.fixture
def server(
    registry: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Settings, str]]:
    """A stable uvicorn model server on the shared registry; `request.param`: settings to change."""
    changes = getattr(request, "param", {})
    s = registry.model_copy(
        update={"home": tmp_path, "stable_port": free_port(), "store_url": None, **changes}
    )
    sup = Supervisor(s)
    sup.start(server_spec(s, "stable"))
    base = f"http://{s.host}:{s.stable_port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    try:
        yield s, base
    finally:
        sup.stop_all()


def stop(s: Settings) -> None:
    """SIGTERM the server (it drains its log) and wait until it is gone."""
    pid = int(Supervisor(s).read_state("stable")["pid"])  # type: ignore[index]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return
        time.sleep(0.05)
    raise AssertionError("the server did not exit after SIGTERM")


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{**GOOD, "amount": float(start + i), "hour": (start + i) % 24} for i in range(n)]


def test_a_batch_is_scored_answered_and_logged_whole(server: tuple[Settings, str]) -> None:
    s, base = server
    batch = rows(1000)
    batch[7]["request_id"] = "mine-7"
    r = httpx.post(f"{base}/v1/predict/batch", json={"rows": batch}, timeout=30)
    assert r.status_code == 200, r.text
    answer = r.json()
    preds = answer["predictions"]
    assert answer["variant"] == "stable" and len(preds) == 1000 and preds[7]["request_id"] == "mine-7"
    generated = [p["request_id"] for i, p in enumerate(preds) if i != 7]
    assert len(set(generated)) == 999 and all(len(g) == 32 and int(g, 16) >= 0 for g in generated)
    single = httpx.post(f"{base}/v1/predict", json=batch[500], timeout=10).json()
    assert preds[500]["score"] == pytest.approx(single["score"], abs=1e-9)
    assert preds[500]["decision"] == single["decision"]
    stop(s)
    stored = Store(s.resolved_store_url).predictions_frame().set_index("request_id")
    assert set(stored.index) == {p["request_id"] for p in preds} | {single["request_id"]}
    for i in (0, 7, 999):
        got, sent = stored.loc[preds[i]["request_id"]], batch[i]
        assert got["score"] == preds[i]["score"] and bool(got["decision"]) == preds[i]["decision"]
        assert {k: got[k] for k in ("amount", "hour", "country")} == {
            k: sent[k] for k in ("amount", "hour", "country")
        }


@pytest.mark.parametrize(
    "server",
    [{"store_queue_size": 10, "store_flush_rows": 1000, "store_flush_interval_s": 60}],
    indirect=True,
)
def test_a_full_log_refuses_the_whole_batch_and_logs_none_of_it(server: tuple[Settings, str]) -> None:
    s, base = server

    def post(n: int, start: int) -> httpx.Response:
        return httpx.post(f"{base}/v1/predict/batch", json={"rows": rows(n, start)}, timeout=30)

    first, refused, last = post(8, 0), post(8, 100), post(2, 200)
    assert [first.status_code, refused.status_code, last.status_code] == [200, 503, 200]
    assert refused.headers.get("retry-after") and "full" in refused.json()["detail"]
    assert 'mlops_store_drops_total{variant="stable"} 1.0' in httpx.get(f"{base}/metrics").text
    stop(s)
    acknowledged = {p["request_id"] for r in (first, last) for p in r.json()["predictions"]}
    assert Store(s.resolved_store_url).prediction_ids() == acknowledged and len(acknowledged) == 10
