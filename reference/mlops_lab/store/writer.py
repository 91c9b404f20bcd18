"""Background batch writer for predictions, and its durability contract.

    python -c "import mlops_lab.store.writer as w; help(w.BatchWriter)"

Durability contract (also in docs/architecture.md):

1. A prediction is acknowledged (HTTP 200) only after its row is in the writer's queue.
   If the queue is full, the request gets a 503 with
   Retry-After, the refusal is counted (`mlops_store_drops_total`), and the client may retry:
   nothing is acknowledged and then lost. A batch request's rows are queued in one
   `submit_batch`, all or none: a 503 never leaves half a batch logged.
2. Rows are flushed in chunks, by size (`store_flush_rows`) or age (`store_flush_interval_s`),
   one transaction and one executemany per chunk (a batch's block is cut where a chunk ends).
   A failed flush is retried with backoff; while the database is down the queue fills and
   rule 1 applies (back-pressure instead of unbounded memory: at most `store_queue_size`
   queued plus `store_flush_rows` in the batch being written).
3. On graceful shutdown (SIGTERM: uvicorn stops accepting, finishes in-flight requests, then
   runs the app's shutdown) `close()` drains the queue. If the database still refuses after
   `store_shutdown_timeout_s`, the remaining rows are written to `home/spill/*.jsonl`, so even
   then nothing acknowledged is lost; `mlops-lab store replay-spill` loads them later.
4. A crash (SIGKILL, power loss) can lose at most the rows queued since the last flush:
   at most `store_flush_rows` rows or `store_flush_interval_s` seconds of traffic.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc

from mlops_lab.store.block import PredictionBlock, each_row, row_count
from mlops_lab.store.db import Store

log = logging.getLogger(__name__)
SPILL_GLOB = "predictions-*.jsonl"  # what _spill writes and replay_spill reads

Item = Mapping[str, Any] | PredictionBlock  # what the queue holds: one row, or a batch's rows


class BatchWriter:
    def __init__(
        self,
        store: Store,
        *,
        max_queue: int,
        flush_rows: int,
        flush_interval_s: float,
        shutdown_timeout_s: float,
        spill_dir: Path,
    ) -> None:
        self.store = store
        self.flush_rows = flush_rows
        self.flush_interval_s = flush_interval_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self.spill_dir = spill_dir
        self.max_queue = max_queue
        # A deque, not a queue.Queue: append/popleft are atomic and never wake the writer, so the
        # request path pays ~0.1 us and the writer runs once per flush, not once per row (each
        # wake-up costs the event loop a GIL hand-off; measured by `make bench`).
        self._items: deque[Item] = deque()
        self._queued = 0  # rows in _items (a block counts its rows); changed under _accepting
        # Makes "not closing and room left, so append" atomic against close() and other submits.
        self._accepting = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._closing = False
        self.written = 0
        self.refused = 0
        self.flush_failures = 0
        self.spilled = 0

    def start(self) -> BatchWriter:
        self._thread.start()
        return self

    @property
    def depth(self) -> int:
        """Rows queued, not yet taken by a flush."""
        return self._queued

    @property
    def free(self) -> int:
        return self.max_queue - self._queued

    def submit(self, row: Mapping[str, Any]) -> bool:
        """Queue one row. False means "not accepted": the caller must not acknowledge it."""
        return self._queue(row, 1)

    def submit_batch(self, block: PredictionBlock) -> bool:
        """Queue a batch's rows, all of them or none (False: none was taken, acknowledge none)."""
        return self._queue(block, len(block))

    def _queue(self, item: Item, rows: int) -> bool:
        with self._accepting:
            if self._closing or self._queued + rows > self.max_queue:
                self.refused += rows
                return False
            self._items.append(item)
            self._queued += rows
            queued = self._queued
        if queued >= self.flush_rows:
            self._wake.set()
        return True

    def close(self) -> None:
        """Drain everything queued, then stop. Safe to call twice."""
        with self._accepting:
            if self._closing:
                return
            self._closing = True
        self._wake.set()
        self._thread.join()

    # -- the writer thread -------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            closing = self._closing  # read before draining: rows can only arrive before it is set
            while chunk := self._take(self.flush_rows):
                self._flush(chunk)
            if closing:
                return

    def _take(self, limit: int) -> list[Item]:
        """Up to `limit` rows from the head of the queue; a block that straddles the limit is
        cut, its rest left at the head. Only this thread takes from the left."""
        chunk: list[Item] = []
        rows, limit = 0, max(1, limit)
        while rows < limit and self._items:
            item = self._items.popleft()
            if isinstance(item, PredictionBlock) and len(item) > limit - rows:
                item, rest = item.split(limit - rows)
                self._items.appendleft(rest)
            chunk.append(item)
            rows += len(item) if isinstance(item, PredictionBlock) else 1
        with self._accepting:
            self._queued -= rows
        return chunk

    def _flush(self, batch: list[Item]) -> None:
        give_up_at: float | None = None
        delay = 0.05
        rows = row_count(batch)
        while True:
            try:
                self.store.insert_predictions(batch)
                self.written += rows
                return
            except sa_exc.OperationalError as exc:  # down, locked, disk full: transient, retry
                self.flush_failures += 1
                log.warning("store flush of %d rows failed (%s); retrying", rows, exc.__class__.__name__)
                if self._closing:  # shutting down: retry for a bounded time, then spill
                    give_up_at = give_up_at or time.monotonic() + self.shutdown_timeout_s
                    if time.monotonic() >= give_up_at:
                        self._spill(batch)
                        return
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            except sa_exc.SQLAlchemyError:
                # Not transient: one bad row must not block every row behind it forever.
                self.flush_failures += 1
                self._flush_row_by_row(batch)
                return

    def _flush_row_by_row(self, batch: list[Item]) -> None:
        poisoned = []
        for row in each_row(batch):
            try:
                self.store.insert_predictions([row])
                self.written += 1
            except sa_exc.SQLAlchemyError:
                poisoned.append(row)
        if poisoned:
            log.error("%d rows the database refuses; spilled for inspection", len(poisoned))
            self._spill(poisoned)

    def _spill(self, batch: Sequence[Item]) -> None:
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self.spill_dir / f"predictions-{time.time_ns()}.jsonl"
        rows = 0
        with path.open("w") as fh:
            for row in each_row(batch):
                fh.write(json.dumps(dict(row), default=str) + "\n")
                rows += 1
        self.spilled += rows
        log.error("database unavailable at shutdown: spilled %d rows to %s", rows, path)


def spilled_rows(spill_dir: Path) -> int:
    """Rows waiting in spill_dir for replay_spill (0 when there is no folder)."""
    total = 0
    for path in spill_dir.glob(SPILL_GLOB):
        with suppress(OSError), path.open("rb") as fh:  # OSError: replayed since the glob
            total += sum(1 for line in fh if line.strip())
    return total


def replay_spill(store: Store, spill_dir: Path) -> int:
    """Insert spilled rows (skipping ones already stored), then delete each replayed file."""
    from datetime import datetime

    count = 0
    for path in sorted(spill_dir.glob(SPILL_GLOB)):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        have = store.prediction_ids()
        fresh = [{**r, "ts": datetime.fromisoformat(r["ts"])} for r in rows if r["request_id"] not in have]
        store.insert_predictions(fresh)
        count += len(fresh)
        path.unlink()
    return count
