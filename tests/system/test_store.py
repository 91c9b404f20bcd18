"""The store and the batch writer's durability contract, against real SQLite and real Postgres.

Every test that takes the `store` fixture runs twice: on SQLite (the local default) and on
Postgres (the cluster's backend) when MLOPS_TEST_POSTGRES_URL is set (.ci/run sets it; without it
the Postgres half skips, except under CI).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mlops_lab.lifecycle import registry
from mlops_lab.store.db import Store, metadata, utcnow
from mlops_lab.store.writer import BatchWriter, replay_spill, spilled_rows

from ..conftest import needs_postgres


def row(i: int) -> dict[str, Any]:
    return {
        "request_id": f"r{i}",
        "ts": utcnow(),
        "variant": "stable",
        "model_version": "1",
        "features": {"amount": float(i)},
        "score": 0.1,
        "decision": False,
        "latency_ms": 0.5,
    }


def writer(store: Store, tmp_path: Path, **kw: Any) -> BatchWriter:
    opts: dict[str, Any] = {
        "max_queue": 1000,
        "flush_rows": 50,
        "flush_interval_s": 0.05,
        "shutdown_timeout_s": 1.0,
    }
    opts.update(kw)
    return BatchWriter(store, spill_dir=tmp_path / "spill", **opts).start()


@pytest.fixture(scope="module")
def postgres_store_url(postgres_database: Any) -> str:
    return str(postgres_database("mlops_store"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'store.db'}")
        yield s
        s.dispose()
        return
    s = Store(
        request.getfixturevalue("postgres_store_url")
    )  # one database per session, empty tables per test
    try:
        yield s
    finally:
        metadata.drop_all(s.engine)
        s.dispose()


def test_rows_are_flushed_by_time_without_closing(store: Store, tmp_path: Path) -> None:
    w = writer(store, tmp_path, flush_rows=10_000)
    assert all(w.submit(row(i)) for i in range(7))
    deadline = time.monotonic() + 5
    while store.count_predictions() < 7 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.count_predictions() == 7
    w.close()


def test_close_drains_everything_accepted(store: Store, tmp_path: Path) -> None:
    w = writer(store, tmp_path, flush_interval_s=30)
    accepted = [i for i in range(2_000) if w.submit(row(i))]
    w.close()
    assert store.prediction_ids() == {f"r{i}" for i in accepted}
    assert not w.submit(row(99_999)), "a closed writer must refuse, not silently drop"
    w.close()  # idempotent


def test_database_down_at_shutdown_spills_then_replays(tmp_path: Path) -> None:
    broken = Store(f"sqlite:///{tmp_path / 'store.db'}")
    w = writer(broken, tmp_path, flush_interval_s=30)
    for i in range(20):
        assert w.submit(row(i))
    broken.engine.dispose()
    (tmp_path / "store.db").unlink()
    (tmp_path / "store.db").mkdir()  # now the path is a directory: every write fails
    w.close()
    spilled = list((tmp_path / "spill").glob("*.jsonl"))
    assert w.spilled == 20 and len(spilled) == 1
    assert [json.loads(line)["request_id"] for line in spilled[0].read_text().splitlines()] == [
        f"r{i}" for i in range(20)
    ]
    assert spilled_rows(tmp_path / "spill") == 20  # what the next server exports as a gauge
    healthy = Store(f"sqlite:///{tmp_path / 'other.db'}")
    healthy.insert_predictions([row(0)])  # replay must skip rows that made it already
    assert replay_spill(healthy, tmp_path / "spill") == 19
    assert healthy.count_predictions() == 20 and not list((tmp_path / "spill").glob("*.jsonl"))
    assert spilled_rows(tmp_path / "spill") == 0


def test_labels_are_idempotent(store: Store) -> None:
    labels = [
        {"request_id": "a", "ts": utcnow(), "label": 1},
        {"request_id": "b", "ts": utcnow(), "label": 0},
    ]
    assert store.insert_labels(labels) == 2
    assert store.insert_labels(labels) == 0
    assert len(store.labels_frame()) == 2


def test_a_corrected_label_replaces_the_first_only_when_it_is_later(store: Store) -> None:
    first = utcnow()
    assert store.insert_labels([{"request_id": "a", "ts": first, "label": 1}]) == 1
    earlier = first - timedelta(hours=1)  # an old message delivered late changes nothing
    assert store.insert_labels([{"request_id": "a", "ts": earlier, "label": 0}]) == 0
    reversed_ = first + timedelta(days=3)  # the chargeback was reversed: the later message wins
    assert store.insert_labels([{"request_id": "a", "ts": reversed_, "label": 0}]) == 1
    assert store.labels_frame()["label"].tolist() == [0]


def test_a_retried_request_id_is_stored_once_and_does_not_block_the_writer(
    store: Store, tmp_path: Path
) -> None:
    w = writer(store, tmp_path, flush_interval_s=30)
    for i in (1, 2, 1, 3, 2):
        assert w.submit(row(i))
    w.close()
    assert store.prediction_ids() == {"r1", "r2", "r3"} and w.spilled == 0


def test_a_row_the_database_refuses_is_spilled_and_the_rest_written(store: Store, tmp_path: Path) -> None:
    w = writer(store, tmp_path, flush_interval_s=30)
    assert w.submit(row(1)) and w.submit({**row(2), "score": None}) and w.submit(row(3))  # score is NOT NULL
    w.close()
    assert store.prediction_ids() == {"r1", "r3"} and w.spilled == 1


def test_the_store_reads_back_what_it_wrote(store: Store) -> None:
    """Every read path the monitor, the judge and the labels use, on both backends."""
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    rows = [
        {
            **row(i),
            "ts": t0 + timedelta(seconds=i),
            "variant": "stable" if i % 2 else "canary",
            "features": {"amount": float(i), "country": "US", "distance_from_home_km": None},
            "decision": i % 3 == 0,
        }
        for i in range(10)
    ]
    store.insert_predictions(rows)
    store.insert_predictions(rows[:3])  # a retried batch: ON CONFLICT DO NOTHING on both backends
    assert store.count_predictions() == 10 and store.count_predictions("stable") == 5

    frame = store.predictions_frame(since=t0 + timedelta(seconds=4), variant="stable")
    assert list(frame["request_id"]) == ["r5", "r7", "r9"]
    assert list(frame["amount"]) == [5.0, 7.0, 9.0] and frame["distance_from_home_km"].isna().all()
    first = store.predictions_frame(limit=1)["id"].iloc[0]
    page = store.predictions_frame(after_id=int(first), limit=2)
    assert list(page["request_id"]) == ["r1", "r2"]
    assert store.prediction_id_at(int(first), 3) == int(first) + 4  # 0-based: the 4th id after first
    assert store.prediction_id_at(int(first), 50) is None

    scores = store.scores_frame(t0, variant="canary")
    assert list(scores["request_id"]) == ["r0", "r2", "r4", "r6", "r8"]
    assert scores["decision"].tolist() == [True, False, False, True, False]

    assert store.insert_labels([{"request_id": f"r{i}", "ts": t0, "label": i % 2} for i in range(4)]) == 4
    labelled = store.labelled_predictions(upto_id=int(first) + 9, rows=10)
    assert sorted(labelled["request_id"]) == ["r0", "r1", "r2", "r3"]
    assert len(store.unlabeled_predictions()) == 6


def test_timestamps_come_back_as_the_same_instant(store: Store) -> None:
    """Postgres hands timestamptz back in the session's zone (the test database's default is New
    York): the store pins the session to UTC, so naive-UTC comparisons stay right."""
    when = datetime(2026, 6, 1, 23, 30, tzinfo=UTC)
    store.insert_predictions([{**row(1), "ts": when}])
    ts = store.predictions_frame()["ts"][0].to_pydatetime()
    assert ts.replace(tzinfo=None) == when.replace(tzinfo=None)
    assert ts.tzinfo is None or ts.utcoffset() == timedelta(0)


def test_the_log_streams_a_window(store: Store) -> None:
    """iter_predictions (what `store top-risk` reads): [since, until) half-open, in id order, one
    variant or all, bounds in any zone, the same rows whatever the page size; ts aware UTC, no
    features."""
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    store.insert_predictions(
        [
            {
                **row(i),
                "ts": t0 + timedelta(minutes=i),
                "variant": "stable" if i % 3 else "canary",
                "score": i / 20,
            }
            for i in range(20)
        ]
    )
    since, until = t0 + timedelta(minutes=5), t0 + timedelta(minutes=15)
    window = [f"r{i}" for i in range(5, 15)]
    for page_rows in (1, 3, 10, 1000):
        got = [r["request_id"] for r in store.iter_predictions(since, until, page_rows=page_rows)]
        assert got == window, page_rows
    paris = timezone(timedelta(hours=1))
    got = [r["request_id"] for r in store.iter_predictions(since.astimezone(paris), until.astimezone(paris))]
    assert got == window
    first = next(store.iter_predictions(since))
    assert first["ts"] == since and first["ts"].utcoffset() == timedelta(0)
    assert "features" not in first and first["score"] == 0.25
    assert [r["request_id"] for r in store.iter_predictions(since, until, "canary")] == ["r6", "r9", "r12"]
    assert list(store.iter_predictions(t0 + timedelta(days=1))) == []
    with pytest.raises(ValueError, match="page_rows"):
        next(store.iter_predictions(page_rows=0))


def test_the_log_is_read_a_page_at_a_time(store: Store) -> None:
    """One short query per page, nothing read ahead: rows logged while the stream is being read
    still come out of it, in order."""
    store.insert_predictions([row(i) for i in range(4)])
    stream = store.iter_predictions(page_rows=2)
    assert [next(stream)["request_id"] for _ in range(2)] == ["r0", "r1"]
    store.insert_predictions([row(4), row(5)])
    assert [r["request_id"] for r in stream] == ["r2", "r3", "r4", "r5"]


def test_audit_log_and_champion_at(store: Store) -> None:
    store.audit("alice", "promote", model="m", alias="champion", version="1", reason="first")
    time.sleep(0.01)
    between = utcnow()
    time.sleep(0.01)
    store.audit("bob", "promote", model="m", alias="champion", version="2", reason="better")
    store.audit("bob", "note", stat=math.nan, nested={"inf": math.inf, "when": between})
    log = store.audit_log()
    assert [(e["actor"], e["action"]) for e in log] == [
        ("alice", "promote"),
        ("bob", "promote"),
        ("bob", "note"),
    ]
    assert log[0]["details"] == {"model": "m", "alias": "champion", "version": "1", "reason": "first"}
    # JSON has no NaN (Postgres refuses it): non-finite numbers are stored as null on both backends.
    assert log[2]["details"] == {"stat": None, "nested": {"inf": None, "when": str(between)}}
    assert [e["details"]["version"] for e in store.audit_log("promote")] == ["1", "2"]
    assert registry.champion_at(store, "m", between) == "1"
    assert registry.champion_at(store, "m", utcnow()) == "2"
    assert registry.champion_at(store, "m", between - timedelta(hours=1)) is None


@needs_postgres
def test_postgres_is_really_postgres(postgres_store_url: str) -> None:
    """The Postgres half above ran against a server, not a stand-in."""
    s = Store(postgres_store_url)
    try:
        assert s.engine.dialect.name == "postgresql"
        with s.engine.connect() as conn:
            assert conn.execute(sa.text("show timezone")).scalar_one() == "UTC"
    finally:
        metadata.drop_all(s.engine)
        s.dispose()
