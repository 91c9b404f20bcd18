"""The batch writer's durability contract, against a real SQLite store."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from mlops_lab.store.db import Store, utcnow
from mlops_lab.store.writer import BatchWriter, replay_spill


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


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'store.db'}")


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
    healthy = Store(f"sqlite:///{tmp_path / 'other.db'}")
    healthy.insert_predictions([row(0)])  # replay must skip rows that made it already
    assert replay_spill(healthy, tmp_path / "spill") == 19
    assert healthy.count_predictions() == 20 and not list((tmp_path / "spill").glob("*.jsonl"))


def test_labels_are_idempotent(store: Store) -> None:
    labels = [
        {"request_id": "a", "ts": utcnow(), "label": 1},
        {"request_id": "b", "ts": utcnow(), "label": 0},
    ]
    assert store.insert_labels(labels) == 2
    assert store.insert_labels(labels) == 0
    assert len(store.labels_frame()) == 2


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
