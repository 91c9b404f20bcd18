"""Lab 6, exercise `external-merge`: sort scored shards bigger than memory into one output.

    make lab-6        grade it          make hint-6      one more hint
    Reference: reference/mlops_lab/serving/merge.py     Docs: docs/labs/lab-6-coding.md

`mlops-lab batch-predict --input <directory of shards> --output sorted.parquet` scores a
night's shards into one file sorted by score, riskiest first (the review team works it from the
top), while holding at most --memory-rows rows. The scoring is done for you (lab 1's chunks);
`mlops_lab.serving.shards` hands you the scored chunks and calls your two functions, the two
halves of an external merge sort:

  write_sorted_runs   each chunk, sorted, into its own run file on disk
  merge_sorted_runs   a k-way merge of the runs into one output, streaming, atomically

`shards` gives each call at most `fan_in` runs (more are merged in passes, the outputs of one
pass being the runs of the next) and a batch_rows such that (runs + 1) x batch_rows <=
memory_rows: one piece per run, plus the output's. `python -m mlops_lab.serving.shards` prints
that plan.

What they work with:

    frame.sort_values(key, ascending=..., kind="stable")   kind="stable": ties keep their order
    frame.to_parquet(path, index=False, row_group_size=n)   a run file, in row groups of n rows
    pq.read_schema(path)                                    a run's columns and types (.names,
                                                            .get_field_index(name), iterable)
    pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=n)
        a run, n rows at a time: RecordBatches (.columns, each with .to_pylist()). Without
        pre_buffer=False pyarrow fetches every row group's bytes before the first batch.
    pq.ParquetWriter(path, schema).write_table(table)       one row group per call; close() it
    pa.Table.from_pylist(rows_as_dicts, schema=schema)  or  pa.Table.from_arrays(arrays, schema=schema)
    heapq.merge(*iterators, key=..., reverse=...)           lazy; ties go to the earlier iterator
    heapq.heappush / heappop                                 or a heap of the runs' heads yourself
    tempfile.mkstemp(dir=folder), os.replace(src, dst)      a temporary file, renamed atomically
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from operator import itemgetter
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
    # TODO(lab-6): one run file per non-empty frame.
    #  - Create run_dir (and its parents) if needed.
    #  - Sort by `key`, riskiest first when `descending`, ascending otherwise. Stably: equal
    #    keys keep the frame's order (pandas' default sort does not), so the same input always
    #    gives the same output.
    #  - Write it to run_dir as Parquet without the index, in row groups of at most batch_rows
    #    rows: a Parquet file is read a row group at a time, so the merge can only read a run
    #    in small pieces if it was written in small row groups.
    #  - Name the files so they list in order (run-000000.parquet, run-000001.parquet, ...).
    #  - `frames` may be a generator over a night of shards: take one frame at a time, never
    #    keep the frames (or the sorted copies) in a list.
    #  Return the paths, in the order of the frames.
    #  Think about: what decides how many runs there are, and why must one run fit in memory?
    raise NotImplementedError("TODO(lab-6): write each chunk as a sorted run")


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
    # TODO(lab-6): a k-way merge that streams.
    #  - Read each run lazily, batch_rows rows at a time (a generator per run that yields its
    #    rows, e.g. as tuples), never the whole file (pd.read_parquet and pq.read_table do).
    #  - Merge: repeatedly take the riskiest (or, when not descending, the smallest) head among
    #    the runs, then advance that run. Equal keys come out in run order (an earlier run
    #    first), and in each run's own order. Runs may be empty; there may be one run.
    #  - Write the merged rows batch_rows at a time (one row group per write), with the runs'
    #    columns and types (the first run's schema); never collect every row first. With no
    #    rows at all the output still has the columns.
    #  - Atomically: write to a temporary file in output_path's folder (create the folder),
    #    os.replace it onto output_path once complete; on any exception delete the temporary
    #    file and re-raise: an older output stays as it was, and nothing is left behind.
    #  Return the number of rows written.
    #  Think about: how many rows are in memory at once, and what grows if the number of runs
    #  grows instead of their length? What would you do with 10,000 runs?
    raise NotImplementedError("TODO(lab-6): merge the sorted runs")
