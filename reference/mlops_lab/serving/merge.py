"""External merge sort: scored rows bigger than memory, into one file sorted by score.

    python -m mlops_lab.serving.merge --rows 200000 --runs 4 --batch-rows 1000

(the demo: writes sorted runs of random scores, merges them, checks the order and prints the
time and the peak memory of the merge.)

The review team works a batch's output from the top, riskiest first, and a night's shards do
not fit in memory. So `mlops_lab.serving.shards` scores the shards chunk by chunk, and:

- `write_sorted_runs`: each chunk (at most the rows memory allows) is sorted by the key and
  written as one run file, in row groups of `batch_rows` rows so it can be read back in pieces;
- `merge_sorted_runs`: a k-way merge of the runs (a heap of the runs' heads) streams them into
  one output, reading each run `batch_rows` rows at a time and writing `batch_rows` at a time,
  atomically (a temporary file beside the output, renamed at the end).

Rows held at once: about (runs + 1) x batch_rows, whatever the total. Ties keep their input
order (runs in the order given, rows in run order): the same output for the same input, which a
review queue split between people needs. Lab 6's `external-merge` exercise writes this module.
"""

from __future__ import annotations

import argparse
import heapq
import os
import tempfile
import time
import tracemalloc
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SCORE = "score"
BATCH_ROWS = 1_000  # rows read from a run, and written to the output, at a time


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
    paths: list[Path] = []
    for frame in frames:
        if frame.empty:
            continue
        # "stable": ties keep the frame's order; quicksort (pandas' default) would not, and the
        # same input could give a different output on each run.
        ordered = frame.sort_values(key, ascending=not descending, kind="stable")
        path = run_dir / f"run-{len(paths):06d}.parquet"
        # Small row groups: a reader can only skip through a Parquet file a row group at a time.
        ordered.to_parquet(path, index=False, row_group_size=batch_rows)
        paths.append(path)
    return paths


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
    if not run_paths:
        raise ValueError("no runs to merge")
    schema = pq.read_schema(run_paths[0])  # the output's columns and types: the runs'
    at = schema.get_field_index(key)
    if at < 0:
        raise KeyError(f"{run_paths[0]}: no column {key!r} to sort by")
    # heapq.merge keeps a heap of one head per run and pulls from a run only when its head was
    # taken: each run is read lazily. It breaks ties by run index, in either direction.
    rows = heapq.merge(
        *(_rows(path, schema.names, batch_rows) for path in run_paths),
        key=itemgetter(at),
        reverse=descending,
    )
    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=output_path.parent, prefix=f".{output_path.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)  # beside the output: the same filesystem, so os.replace is atomic
    written = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:  # no rows at all: a file with the columns
            for piece in iter(lambda: list(islice(rows, batch_rows)), []):
                columns = [
                    pa.array(values, type=field.type)
                    for values, field in zip(zip(*piece, strict=True), schema, strict=True)
                ]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
                written += len(piece)
        os.replace(tmp, output_path)  # the output appears complete or not at all
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written


def _rows(path: Path, names: list[str], batch_rows: int) -> Iterator[tuple[Any, ...]]:
    """A run's rows as tuples, read `batch_rows` at a time (never the whole file)."""
    # pre_buffer=False: by default pyarrow fetches every row group's bytes before the first
    # batch, so "reading in batches" would still hold the whole run (measured: Arrow's peak
    # grew 10x with the run's length; with pre_buffer=False it stays flat).
    with pq.ParquetFile(path, pre_buffer=False) as run:
        if run.schema_arrow.names != names:  # a row of other columns would land in the wrong ones
            raise ValueError(f"{path}: columns {run.schema_arrow.names}, expected {names}")
        for batch in run.iter_batches(batch_size=batch_rows):
            yield from zip(*(column.to_pylist() for column in batch.columns), strict=True)


def _main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--batch-rows", type=int, default=BATCH_ROWS)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    per_run = -(-args.rows // args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        frames = (
            pd.DataFrame(
                {"card_id": [f"card-{i:08d}" for i in range(start, stop)], SCORE: rng.random(stop - start)}
            )
            for start, stop in ((s, min(s + per_run, args.rows)) for s in range(0, args.rows, per_run))
        )
        runs = write_sorted_runs(frames, Path(tmp) / "runs", batch_rows=args.batch_rows)
        tracemalloc.start()
        started = time.perf_counter()
        rows = merge_sorted_runs(runs, Path(tmp) / "sorted.parquet", batch_rows=args.batch_rows)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        scores = pq.read_table(Path(tmp) / "sorted.parquet", columns=[SCORE])[SCORE].to_numpy()
        ordered = bool((np.diff(scores) <= 0).all())
    print(
        f"merged {rows:,} rows from {len(runs)} runs in {seconds:.2f} s (under tracemalloc); "
        f"sorted: {ordered}; Python peak {peak / 2**20:.1f} MiB, batch_rows {args.batch_rows:,}"
    )


if __name__ == "__main__":
    _main()
