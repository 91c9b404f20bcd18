"""A solution of lab 6's `external-merge` (exercises/lab6/merge.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab6/external-merge.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SCORE = "score"  # the column a batch is sorted by
BATCH_ROWS = 1_000  # the default piece: rows read from a run, and written, at a time


def write_sorted_runs(
    frames: Iterable[pd.DataFrame],
    run_dir: Path,
    *,
    key: str = SCORE,
    descending: bool = True,
    batch_rows: int = BATCH_ROWS,
) -> list[Path]:
    """Sort each frame by `key` (stably) and write it to its own Parquet run file in `run_dir`,
    in row groups of at most `batch_rows` rows. Empty frames write no run. Returns the runs'
    paths in the order of the frames."""
    run_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    # A plain for loop: one frame at a time, and the previous one is dropped when `chunk` is
    # rebound. list(frames) would hold the whole night in memory, the thing runs exist to avoid.
    for chunk in frames:
        if len(chunk) == 0:
            continue  # nothing to merge: an empty file would only be one more reader to open
        # mergesort is stable: equal scores keep the chunk's order. The default quicksort is not,
        # and the same shards could then give a different review queue on every run.
        run = chunk.sort_values(by=key, ascending=not descending, kind="mergesort")
        # Zero-padded numbers list in creation order, so sorting the names keeps the frames' order.
        target = run_dir / f"run-{len(written):06d}.parquet"
        # Row groups of batch_rows: the merge reads a Parquet file one row group at a time at best.
        run.to_parquet(target, index=False, row_group_size=batch_rows)
        written.append(target)
    return written


class _Descending:
    """A key that sorts backwards: heapq is a min-heap, and negating only works for numbers."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return bool(self.value > other.value)

    # Tuples compare their items with == first and only then with <: without __eq__ two equal
    # scores would be "different" (identity), decided by __lt__ (False both ways), and the run
    # index after them would never be looked at, so ties would leave in heap order.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and bool(self.value == other.value)

    __hash__ = None  # type: ignore[assignment]  # equal by value and mutable: not a dict key


def _read_run(path: Path, batch_rows: int) -> Iterator[dict[str, Any]]:
    # pre_buffer=False, or pyarrow reads every row group's bytes up front and "batches" only
    # slice what is already in memory. Measured: the Arrow pool's peak grew 10x with the run.
    with pq.ParquetFile(path, pre_buffer=False) as parquet:
        for batch in parquet.iter_batches(batch_size=batch_rows):
            yield from batch.to_pylist()  # at most batch_rows rows of this run in Python at once


def merge_sorted_runs(
    run_paths: Sequence[Path],
    output_path: Path,
    *,
    key: str = SCORE,
    descending: bool = True,
    batch_rows: int = BATCH_ROWS,
) -> int:
    """Merge runs, each sorted by `key`, into one Parquet file sorted the same way, holding about
    (len(run_paths) + 1) * batch_rows rows at once; ties in run order. Atomic. Returns the rows."""
    schema = pq.read_schema(run_paths[0])  # every run has the batch's columns; the output too
    readers = [_read_run(Path(p), batch_rows) for p in run_paths]

    def entry(index: int, row: dict[str, Any]) -> tuple[Any, int, dict[str, Any]]:
        # (key, run index, row): on equal keys the run index decides, so earlier runs come first
        # and the row dicts themselves are never compared (they cannot be, and should not be).
        value = row[key]
        return (_Descending(value) if descending else value, index, row)

    # The heap holds one head per run: k entries, whatever the runs' lengths.
    heap = []
    for index, reader in enumerate(readers):
        head = next(reader, None)
        if head is not None:  # an empty run simply has no head
            heap.append(entry(index, head))
    heapq.heapify(heap)

    output_path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file sits beside the output: a rename within one filesystem is atomic.
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{output_path.name}.", suffix=".tmp", dir=output_path.parent
    )
    os.close(handle)
    temp = Path(temp_name)
    count = 0
    try:
        writer = pq.ParquetWriter(temp, schema)
        try:
            pending: list[dict[str, Any]] = []
            while heap:
                _, index, row = heap[0]
                pending.append(row)
                following = next(readers[index], None)
                if following is None:
                    heapq.heappop(heap)  # this run is done
                else:
                    heapq.heapreplace(heap, entry(index, following))  # pop + push in one sift
                if len(pending) == batch_rows:  # a full piece: write it and let it go
                    writer.write_table(pa.Table.from_pylist(pending, schema=schema))
                    count += len(pending)
                    pending = []
            if pending:
                writer.write_table(pa.Table.from_pylist(pending, schema=schema))
                count += len(pending)
        finally:
            writer.close()  # with no rows at all this still writes a file with the columns
        # Only a complete file takes the output's name; a reader sees the old one or the new one.
        os.replace(temp, output_path)
    except BaseException:
        temp.unlink(missing_ok=True)  # nothing half-written stays behind, whatever failed
        raise
    return count
