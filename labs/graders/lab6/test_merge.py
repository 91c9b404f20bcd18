"""Grader of lab 6 / external-merge (exercises/lab6/merge.py): sorted runs and a k-way merge.

The runs are real Parquet files of scored rows (card_id, score, decision, and where the row came
from: run and pos), generated here (no model is needed to sort scores) and written in row groups
of BATCH rows, as `write_sorted_runs` writes them. Every output is compared with an in-memory
stable sort of the same rows. The memory check merges 10x more rows in a child process that
measures the merge's peak: Python objects (tracemalloc) plus Arrow's buffers (its pool's peak).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

BATCH = 100  # batch_rows of every check
MEMORY_RUNS, SMALL, LARGE = 4, 20_000, 200_000  # the memory check: 4 runs, then 10x the rows
MEMORY_BATCH = 500
GROWTH = 2.0  # the merge's peak may grow at most this much while the rows grow 10x (measured: 1.0x)
START_S = 180  # only bounds a hang: the child imports pandas and pyarrow, then merges 220,000 rows

# The memory probe: loads the implementation under test from its file, merges the small runs,
# then the large ones, and prints each merge's peak (Arrow's pool peak only grows: the large
# merge's is the larger of the two, which is what is compared).
PROBE = """
import importlib.util, json, sys, tracemalloc
from pathlib import Path
import pyarrow as pa
spec = importlib.util.spec_from_file_location("lab6_merge_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
out = {}
tracemalloc.start()
for size in sys.argv[4:]:
    runs = sorted(Path(sys.argv[2], size).glob("run-*.parquet"))
    tracemalloc.reset_peak()
    output = Path(sys.argv[2], f"sorted-{size}.parquet")
    rows = module.merge_sorted_runs(runs, output, batch_rows=int(sys.argv[3]))
    python, arrow = tracemalloc.get_traced_memory()[1], pa.default_memory_pool().max_memory()
    out[size] = {"rows": rows, "python": python, "arrow": arrow}
print(json.dumps(out))
"""


def scored(rng: np.random.Generator, run: int, rows: int, ties: bool = False) -> pd.DataFrame:
    """Scored rows as the batch writes them, unsorted; with `ties`, five distinct scores only,
    and card ids that do not sort like the rows' order (a tie broken by the row's content shows)."""
    score = rng.random(rows)
    if ties:
        score = np.round(score * 4) / 4
    return pd.DataFrame(
        {
            "card_id": pd.Series([f"card-{n:09d}" for n in rng.integers(0, 10**9, rows)], dtype="str"),
            "score": score,
            "decision": score >= 0.5,
            "run": np.full(rows, run, dtype="int64"),
            "pos": np.arange(rows, dtype="int64"),
        }
    )


def stable_sort(frame: pd.DataFrame, key: str = "score", descending: bool = True) -> pd.DataFrame:
    return frame.sort_values(key, ascending=not descending, kind="stable").reset_index(drop=True)


def write_runs(
    folder: Path, frames: list[pd.DataFrame], key: str = "score", descending: bool = True, batch: int = BATCH
) -> tuple[list[Path], pd.DataFrame]:
    """Each frame sorted into a run file (row groups of `batch` rows); with the expected merge:
    a stable sort of the runs' rows in run order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, runs = [], []
    for i, frame in enumerate(frames):
        run = stable_sort(frame, key, descending).assign(pos=np.arange(len(frame), dtype="int64"))
        path = folder / f"run-{i:03d}.parquet"
        run.to_parquet(path, index=False, row_group_size=batch)
        paths.append(path)
        runs.append(run)
    return paths, stable_sort(pd.concat(runs, ignore_index=True), key, descending)


def rows_of(frame: pd.DataFrame, at: int, key: str) -> str:
    row = frame.iloc[at]
    return f"run {row['run']} pos {row['pos']} ({row['card_id']}, {key} {row[key]:.3f})"


def same_rows(got: pd.DataFrame, want: pd.DataFrame, what: str = "the output", key: str = "score") -> None:
    """`got` holds want's rows, in want's order, with its columns and types."""
    assert list(got.columns) == list(want.columns), (
        f"expected {what} to have the runs' columns {list(want.columns)}, got {list(got.columns)}"
    )
    assert len(got) == len(want), f"expected {len(want)} rows in {what}, got {len(got)}"
    moved = np.flatnonzero(
        (got["run"].to_numpy() != want["run"].to_numpy()) | (got["pos"].to_numpy() != want["pos"].to_numpy())
    )
    if len(moved):
        at = int(moved[0])
        tie = bool(got[key].iloc[at] == want[key].iloc[at])
        why = " (a tie: equal keys keep run order, then row order)" if tie else ""
        raise AssertionError(
            f"expected row {at} of {what} to be {rows_of(want, at, key)}, got {rows_of(got, at, key)}{why}"
        )
    for column in want.columns:
        assert str(got[column].dtype) == str(want[column].dtype), (
            f"expected column {column!r} of {what} to stay {want[column].dtype}, got {got[column].dtype}"
        )
        assert got[column].tolist() == want[column].tolist(), (
            f"expected column {column!r} of {what} to carry the runs' values, got other values"
        )


def merge(impl: ModuleType, paths: list[Path], out: Path, **kw: object) -> int:
    return int(impl.merge_sorted_runs(paths, out, batch_rows=kw.pop("batch_rows", BATCH), **kw))


def leftovers(folder: Path, *expected: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p not in expected)


# ---------------------------------------------------------------- write_sorted_runs
def test_runs_sorted_in_frame_order(impl: ModuleType, tmp_path: Path) -> None:
    """each non-empty frame becomes one run file in run_dir, sorted riskiest first, ties in frame order

    frame.sort_values(key, ascending=not descending, kind="stable") (pandas' default
    quicksort does not keep ties in order), then frame.to_parquet(path, index=False). Create
    run_dir; name the runs so they list in order; skip empty frames; return the paths in
    the frames' order.
    """
    rng = np.random.default_rng(9)
    frames = [
        scored(rng, 0, 400, ties=True),
        scored(rng, 1, 0),
        scored(rng, 2, 1),
        scored(rng, 3, 999, ties=True),
    ]
    run_dir = tmp_path / "runs" / "pass-0"
    paths = [
        Path(p)
        for p in impl.write_sorted_runs(iter(frames), run_dir, key="score", descending=True, batch_rows=BATCH)
    ]
    assert len(paths) == 3, f"expected 3 runs (one per non-empty frame), got {len(paths)}"
    assert all(p.parent == run_dir and p.is_file() for p in paths), (
        f"expected run files in {run_dir}, got {paths}"
    )
    assert sorted(paths) == paths, (
        f"expected the runs' names to list in the frames' order, got {[p.name for p in paths]}"
    )
    for path, frame in zip(paths, [frames[0], frames[2], frames[3]], strict=True):
        same_rows(pd.read_parquet(path), stable_sort(frame), f"run {path.name}")


def test_runs_key_and_ascending(impl: ModuleType, tmp_path: Path) -> None:
    """runs follow `key` and descending=False

    Sort by the column named `key`, ascending when descending is False.
    """
    rng = np.random.default_rng(10)
    frame = scored(rng, 0, 500).assign(amount=lambda f: (f["pos"] * 7919) % 13 * 2.5)
    (path,) = impl.write_sorted_runs(
        [frame], tmp_path / "runs", key="amount", descending=False, batch_rows=BATCH
    )
    same_rows(
        pd.read_parquet(path),
        stable_sort(frame, "amount", descending=False),
        "the run sorted by amount, ascending",
        key="amount",
    )


def test_runs_in_row_groups(impl: ModuleType, tmp_path: Path) -> None:
    """runs are written in row groups of at most batch_rows rows, so the merge can read them in pieces

    Parquet is read a row group at a time: a run written as one row group is read whole
    however small the batches asked for. frame.to_parquet(path, index=False,
    row_group_size=batch_rows).
    """
    frame = scored(np.random.default_rng(11), 0, 1_050)
    (path,) = impl.write_sorted_runs(
        [frame], tmp_path / "runs", key="score", descending=True, batch_rows=BATCH
    )
    meta = pq.ParquetFile(path).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sum(sizes) == 1_050, f"expected 1050 rows in the run, got {sum(sizes)}"
    assert max(sizes) <= BATCH, (
        f"expected row groups of at most batch_rows={BATCH} rows, got up to {max(sizes)}"
    )


def test_runs_one_frame_at_a_time(impl: ModuleType, tmp_path: Path) -> None:
    """frames are taken one at a time: no earlier frame is kept while the next one is made

    `frames` is a generator over chunks of a night's shards: list(frames) (or keeping them
    in a list) holds them all in memory, which is what sorting in runs is meant to avoid.
    """
    rng = np.random.default_rng(12)
    made: list[weakref.ref[pd.DataFrame]] = []
    most_alive = 0

    def frames() -> Iterator[pd.DataFrame]:
        nonlocal most_alive
        for i in range(8):
            most_alive = max(most_alive, sum(ref() is not None for ref in made))
            frame = scored(rng, i, 200)
            made.append(weakref.ref(frame))
            yield frame
            del frame

    paths = impl.write_sorted_runs(
        frames(), tmp_path / "runs", key="score", descending=True, batch_rows=BATCH
    )
    assert len(paths) == 8, f"expected 8 runs, got {len(paths)}"
    assert most_alive <= 1, (
        f"expected at most the frame just sorted to be alive when the next one is made, got {most_alive} "
        "earlier frames still held"
    )


# ---------------------------------------------------------------- merge_sorted_runs
def test_merges_runs_into_one_sorted_output(impl: ModuleType, tmp_path: Path) -> None:
    """runs of different lengths merge into one output sorted by score, riskiest first

    heapq.merge(*readers, key=..., reverse=True) over one lazy reader per run, or a heap of
    (score, run index, row) heads: pop the riskiest, push the next row of the run it came
    from. Return the number of rows written; create the output's folder if needed.
    """
    rng = np.random.default_rng(1)
    paths, want = write_runs(
        tmp_path / "runs", [scored(rng, i, n) for i, n in enumerate([1, 37, 400, 1_000, 2_345])]
    )
    out = tmp_path / "out" / "sorted.parquet"
    rows = merge(impl, paths, out)
    assert out.is_file(), f"expected the output {out}, got {sorted(p.name for p in tmp_path.rglob('*'))}"
    same_rows(pd.read_parquet(out), want)
    assert rows == len(want), f"expected merge_sorted_runs to return {len(want)} (rows written), got {rows}"
    assert leftovers(out.parent, out) == [], (
        f"expected only {out.name} in its folder, got {leftovers(out.parent, out)} too"
    )


def test_ties_keep_run_order(impl: ModuleType, tmp_path: Path) -> None:
    """ties keep their input order: earlier runs first, then each run's order; the same runs, the same output

    Equal scores must not be ordered by the rest of the row (a heap of (score, row) tuples
    compares card ids on a tie): put the run's index (and the row's position) after the key,
    as heapq.merge does. The review queue is split between people by position.
    """
    rng = np.random.default_rng(2)
    paths, want = write_runs(
        tmp_path / "runs", [scored(rng, i, n, ties=True) for i, n in enumerate([500, 80, 1_200, 3])]
    )
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    merge(impl, paths, first)
    same_rows(pd.read_parquet(first), want)
    merge(impl, paths, second)
    assert pd.read_parquet(second).equals(pd.read_parquet(first)), (
        "expected the same output from the same runs"
    )


def test_empty_runs(impl: ModuleType, tmp_path: Path) -> None:
    """empty runs are merged like any other; only empty runs give an empty output that keeps the columns

    A run with no rows has no head: it must neither stop the merge nor end it early. With no
    rows at all the output still has the runs' columns (take them from a run's schema:
    pq.read_schema(path)), and the count is 0.
    """
    rng = np.random.default_rng(3)
    frames = [
        scored(rng, 0, 0),
        scored(rng, 1, 250),
        scored(rng, 2, 0),
        scored(rng, 3, 90),
        scored(rng, 4, 0),
    ]
    paths, want = write_runs(tmp_path / "runs", frames)
    out = tmp_path / "sorted.parquet"
    rows = merge(impl, paths, out)
    same_rows(pd.read_parquet(out), want)
    assert rows == 340, f"expected 340 rows written, got {rows}"
    empty = tmp_path / "empty.parquet"
    rows = merge(impl, [paths[0], paths[2]], empty)
    assert empty.is_file(), "expected an output file even when every run is empty"
    got = pd.read_parquet(empty)
    assert len(got) == 0 and rows == 0, f"expected 0 rows (returned and written), got {rows} and {len(got)}"
    assert list(got.columns) == list(want.columns), (
        f"expected the columns {list(want.columns)}, got {list(got.columns)}"
    )


def test_one_run(impl: ModuleType, tmp_path: Path) -> None:
    """a single run comes out as it went in

    k = 1 is still a merge: read the run in pieces and write them; no special case needed.
    """
    paths, want = write_runs(tmp_path / "runs", [scored(np.random.default_rng(4), 0, 777, ties=True)])
    out = tmp_path / "sorted.parquet"
    rows = merge(impl, paths, out)
    same_rows(pd.read_parquet(out), want)
    assert rows == 777, f"expected 777 rows written, got {rows}"


def test_key_and_ascending(impl: ModuleType, tmp_path: Path) -> None:
    """`key` names the column, and descending=False merges runs sorted ascending

    Sort by the column `key` names (not always "score"), and reverse only when descending:
    heapq.merge(..., reverse=descending). Negating the key works for numbers only.
    """
    rng = np.random.default_rng(5)
    frames = [
        scored(rng, i, n, ties=True).assign(amount=lambda f: f["pos"] % 7 * 1.5)
        for i, n in enumerate([300, 20, 450])
    ]
    paths, want = write_runs(tmp_path / "runs", frames, key="amount", descending=False)
    out = tmp_path / "sorted.parquet"
    merge(impl, paths, out, key="amount", descending=False)
    same_rows(pd.read_parquet(out), want, "the output sorted by amount, ascending", key="amount")


def test_output_in_pieces(impl: ModuleType, tmp_path: Path) -> None:
    """the output is written batch_rows rows at a time (row groups): the next merge pass reads it in pieces

    Collect at most batch_rows merged rows, write them (pq.ParquetWriter(path, schema) and
    writer.write_table(table): one row group per call), and go on. Never collect every row.
    """
    rng = np.random.default_rng(6)
    paths, want = write_runs(tmp_path / "runs", [scored(rng, i, 1_000) for i in range(3)])
    out = tmp_path / "sorted.parquet"
    merge(impl, paths, out)
    meta = pq.ParquetFile(out).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sum(sizes) == len(want), f"expected {len(want)} rows in the output's row groups, got {sum(sizes)}"
    assert max(sizes) <= BATCH, (
        f"expected row groups of at most batch_rows={BATCH} rows, got up to {max(sizes)}"
    )


def test_atomic_on_failure(impl: ModuleType, tmp_path: Path) -> None:
    """a merge that fails midway leaves no partial output and no temporary file; an older output stays intact

    Write to a temporary file beside the output (tempfile.mkstemp(dir=output_path.parent))
    and os.replace it onto the output once complete; on any exception delete it and re-raise.
    Here one run breaks after 800 rows (a null score cannot be compared).
    """
    rng = np.random.default_rng(7)
    paths, _ = write_runs(tmp_path / "runs", [scored(rng, i, 1_000) for i in range(3)])
    broken = pd.read_parquet(paths[1])
    broken["score"] = broken["score"].astype("object")
    broken.loc[800, "score"] = None  # still sorted before it: the merge fails once it gets there
    broken.to_parquet(paths[1], index=False, row_group_size=BATCH)
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "sorted.parquet"
    out.write_bytes(b"yesterday's complete output")
    with pytest.raises(Exception) as caught:
        merge(impl, paths, out)
    if isinstance(caught.value, NotImplementedError):
        raise caught.value
    assert out.read_bytes() == b"yesterday's complete output", (
        "expected the older output untouched by a failed merge, got it overwritten "
        "(write to a temporary file, then os.replace)"
    )
    assert leftovers(folder, out) == [], (
        f"expected no temporary file left after the failure, got {leftovers(folder, out)}"
    )


def test_memory_does_not_grow(impl: ModuleType, tmp_path: Path) -> None:
    """the merge's peak memory stays flat when the runs grow 10x (20,000 vs 200,000 rows, same batch_rows)

    Read each run piece by piece (pq.ParquetFile(path).iter_batches(batch_size=batch_rows)),
    never whole (pd.read_parquet, pq.read_table), and keep only batch_rows merged rows before
    writing them: memory ~ (runs + 1) x batch_rows, whatever the input.
    """
    rng = np.random.default_rng(8)
    warmup, _ = write_runs(tmp_path / "warmup", [scored(rng, i, 50) for i in range(2)])
    merge(impl, warmup, tmp_path / "warmup.parquet")  # a TODO fails here, not in the child
    for size in (SMALL, LARGE):
        frames = [scored(rng, i, size // MEMORY_RUNS).drop(columns=["decision"]) for i in range(MEMORY_RUNS)]
        write_runs(tmp_path / str(size), frames, batch=MEMORY_BATCH)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            str(impl.__file__),
            str(tmp_path),
            str(MEMORY_BATCH),
            str(SMALL),
            str(LARGE),
        ],
        capture_output=True,
        text=True,
        timeout=START_S,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert proc.returncode == 0, (
        f"expected the merges of {SMALL:,} and {LARGE:,} rows to succeed, got: {proc.stderr.strip()[-600:]}"
    )
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    small, large = got[str(SMALL)], got[str(LARGE)]
    assert (small["rows"], large["rows"]) == (SMALL, LARGE), (
        f"expected {SMALL} and {LARGE} rows merged, got {small['rows']} and {large['rows']}"
    )
    before, after = small["python"] + small["arrow"], large["python"] + large["arrow"]
    mib = 2**20
    assert after <= GROWTH * before, (
        f"expected the peak to stay flat with 10x the rows (at most {GROWTH:.0f}x), got "
        f"{before / mib:.1f} MiB for {SMALL:,} rows and {after / mib:.1f} MiB for {LARGE:,} "
        f"(Python objects {large['python'] / mib:.1f} MiB, Arrow buffers {large['arrow'] / mib:.1f} MiB): "
        "something holds whole runs or the whole output"
    )


def test_runs_then_merge(impl: ModuleType, tmp_path: Path) -> None:
    """write_sorted_runs then merge_sorted_runs: 20 chunks come out as one stable sort of all their rows

    The two halves of an external sort: runs written by your write_sorted_runs, merged by
    your merge_sorted_runs, equal to sorting everything at once.
    """
    rng = np.random.default_rng(13)
    frames = [scored(rng, i, int(n), ties=True) for i, n in enumerate(rng.integers(0, 400, 20))]
    paths = impl.write_sorted_runs(
        iter(frames), tmp_path / "runs", key="score", descending=True, batch_rows=BATCH
    )
    out = tmp_path / "sorted.parquet"
    merge(impl, [Path(p) for p in paths], out)
    same_rows(pd.read_parquet(out), stable_sort(pd.concat(frames, ignore_index=True)))
