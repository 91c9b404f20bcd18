"""Batch scoring over a directory of shards: one output sorted by score, riskiest first, in
bounded memory (an external merge sort).

    mlops-lab batch-predict --input var/data/shards --output var/data/sorted.parquet --memory-rows 50000
    python -m mlops_lab.serving.shards --rows 10000000 --memory-rows 50000    # the merge plan

- Shards: the .parquet and .csv files of the directory, in name order (hidden files skipped).
- Runs: each shard is scored `memory_rows` rows at a time (batch.py's `ChunkScorer`); each
  scored chunk is sorted into a run file (`merge.write_sorted_runs`) in a scratch folder beside
  the output, removed at the end whatever happens.
- Merge: at most `fan_in` runs are merged at once (`merge.merge_sorted_runs`), reading
  `batch_rows` rows of each at a time, so (fan_in + 1) * batch_rows <= memory_rows; more runs
  than that are merged in passes (the runs of a pass are the outputs of the one before).
- Atomic and idempotent like a single file: the output appears complete or not at all, and a
  sidecar `<output>.meta.json` (the shards' digest, the model version) makes a re-run a no-op.

Ties keep the shards' order (shard name, then row): the same input gives the same output.
`merge` is the module that sorts and merges (the reference's, or lab 6's `external-merge`
exercise when the CLI runs with `--impl exercises`).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import pandas as pd
import pyarrow.parquet as pq

from mlops_lab.data.io import SUFFIXES, write_frame, write_json_atomic
from mlops_lab.data.schema import SCHEMA
from mlops_lab.errors import BadData, InvalidValue, MissingFile
from mlops_lab.serving import merge as reference_merge
from mlops_lab.serving.batch import (
    BatchResult,
    ChunkScorer,
    already_done,
    iter_chunks,
    load_pinned,
    meta_path_of,
    resolve_model,
    scoring_progress,
)
from mlops_lab.settings import Settings

MIN_PIECE_ROWS = 1_000  # a smaller piece per run makes the merge a Python loop over tiny reads
MAX_FAN_IN = 64  # runs open at once: file handles, and a heap that stays small
# A CSV chunk with a missing value reads a nullable integer feature as float, one without as
# int: every run must have one schema, so these are always float.
NULLABLE_NUMERIC = {f.name: "float64" for f in SCHEMA.features if f.nullable and f.kind == "numeric"}


@dataclass(frozen=True)
class MergePlan:
    memory_rows: int
    fan_in: int  # runs merged at once
    batch_rows: int  # rows read from each run, and written to the output, at a time

    def passes(self, rows: int) -> int:
        """Merge passes for `rows` rows: runs of memory_rows rows, fan_in of them merged at once."""
        runs = math.ceil(rows / self.memory_rows)
        return 0 if runs == 0 else max(1, math.ceil(math.log(runs, self.fan_in) - 1e-9))


def merge_plan(memory_rows: int) -> MergePlan:
    """The widest merge whose pieces are still MIN_PIECE_ROWS rows (at least two runs at once)."""
    if memory_rows < 3:
        raise InvalidValue(f"memory_rows={memory_rows}: at least 3 (a piece of two runs and the output)")
    fan_in = max(2, min(MAX_FAN_IN, memory_rows // MIN_PIECE_ROWS - 1))
    return MergePlan(memory_rows, fan_in, max(1, memory_rows // (fan_in + 1)))


def list_shards(input_dir: Path) -> list[Path]:
    """The directory's .parquet and .csv files in name order; hidden ones (a writer's temporary
    files) are not shards."""
    if not input_dir.is_dir():
        raise MissingFile(f"{input_dir}: no such directory")
    shards = sorted(
        p for p in input_dir.iterdir() if p.suffix in SUFFIXES and p.is_file() and not p.name.startswith(".")
    )
    if not shards:
        raise MissingFile(f"{input_dir}: no .parquet or .csv shards in it")
    return shards


def external_sort(
    frames: Iterable[pd.DataFrame],
    output_path: Path,
    work_dir: Path,
    *,
    memory_rows: int,
    key: str = reference_merge.SCORE,
    descending: bool = True,
    merge: ModuleType | None = None,
) -> int | None:
    """Sort `frames` (each at most memory_rows rows) by `key` into `output_path` through run files
    under `work_dir`. Returns the rows written, or None when there were no rows (nothing written)."""
    sorter = merge or reference_merge
    plan = merge_plan(memory_rows)
    order = {"key": key, "descending": descending, "batch_rows": plan.batch_rows}
    runs = list(sorter.write_sorted_runs(frames, work_dir / "pass-0", **order))
    level = 0
    while len(runs) > plan.fan_in:
        # Consecutive groups keep ties in order: a group's runs are earlier than the next group's.
        level += 1
        merged = []
        for n, start in enumerate(range(0, len(runs), plan.fan_in)):
            group = runs[start : start + plan.fan_in]
            if len(group) == 1:  # the odd one out goes on to the next pass as it is: no copy
                merged.append(group[0])
                continue
            merged.append(work_dir / f"pass-{level}" / f"run-{n:06d}.parquet")
            sorter.merge_sorted_runs(group, merged[-1], **order)
            for run in group:
                run.unlink()  # the disk holds about two copies of the data, not one per pass
        runs = merged
    if not runs:
        return None
    rows = int(sorter.merge_sorted_runs(runs, output_path, **order))
    for run in runs:
        run.unlink()
    return rows


def score_shards(
    settings: Settings,
    model_uri: str,
    input_dir: Path,
    output_path: Path,
    *,
    memory_rows: int = 50_000,
    show_progress: bool = True,
    merge: ModuleType | None = None,
) -> BatchResult:
    """Score every shard of `input_dir` with a registered model into one Parquet file sorted by
    score, riskiest first, holding about `memory_rows` rows at once. A no-op when already done."""
    if output_path.suffix != ".parquet":
        raise InvalidValue(f"{output_path}: a sorted batch is written as .parquet")
    merge_plan(memory_rows)  # refuse a bad memory_rows before scoring anything
    shards = list_shards(input_dir)
    if output_path.resolve().is_relative_to(input_dir.resolve()):
        raise InvalidValue(f"{output_path}: inside {input_dir}, it would be read as a shard next time")
    version, threshold = resolve_model(settings, model_uri)
    identity = {
        "input_sha256": shards_digest(shards),
        "model": settings.model_name,
        "model_version": version,
        "threshold": threshold,
        "sorted_by": f"{reference_merge.SCORE} descending",
    }
    done = already_done(output_path, identity)
    if done is not None:
        return done

    pipeline = load_pinned(settings, version)
    known = [pq.ParquetFile(s).metadata.num_rows if s.suffix == ".parquet" else None for s in shards]
    progress = scoring_progress(show_progress)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with progress:
        task = progress.add_task("rows", total=None if None in known else sum(n or 0 for n in known))
        scorers: list[ChunkScorer] = []  # one per shard: a bad chunk is named by its rows in its shard

        def scorer() -> ChunkScorer:
            scorers.append(
                ChunkScorer(pipeline, threshold, version, on_chunk=lambda n: progress.advance(task, n))
            )
            return scorers[-1]

        # The runs live beside the output (the same disk, which must hold them) and go at the end.
        with tempfile.TemporaryDirectory(dir=output_path.parent, prefix=f".{output_path.name}.runs-") as work:
            chunks = scored_chunks(scorer, shards, memory_rows)
            rows = external_sort(chunks, output_path, Path(work), memory_rows=memory_rows, merge=merge)
    if rows is None:  # no rows in any shard: an empty output that still has the columns
        write_frame(pd.DataFrame(columns=[*SCHEMA.names, "score", "decision", "model_version"]), output_path)
    scored, flagged = sum(s.rows for s in scorers), sum(s.flagged for s in scorers)
    result = BatchResult(str(output_path), scored, version, False, flagged)
    write_json_atomic(
        meta_path_of(output_path), {**identity, **asdict(result), "shards": len(shards)}, indent=1
    )
    return result


def scored_chunks(
    new_scorer: Callable[[], ChunkScorer], shards: list[Path], chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """Every shard's rows, scored (a new scorer per shard), `chunk_rows` at a time, with one set
    of columns and types."""
    columns: list[str] | None = None
    for shard in shards:
        scorer = new_scorer()
        for chunk in iter_chunks(shard, chunk_rows):
            try:
                scored = scorer.score(chunk)
            except BadData as exc:
                raise BadData(f"{shard.name}: {exc}") from None
            columns = columns or list(scored.columns)
            if list(scored.columns) != columns:
                raise BadData(f"{shard.name}: columns {list(scored.columns)}, expected {columns}")
            yield scored.astype({c: t for c, t in NULLABLE_NUMERIC.items() if c in scored})


def shards_digest(shards: list[Path]) -> str:
    """One digest of the shards' names and contents: a renamed, added or changed shard is new input."""
    h = hashlib.sha256()
    for shard in shards:
        h.update(shard.name.encode() + b"\0")
        with shard.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _main() -> None:
    parser = argparse.ArgumentParser(description="Print the merge plan for a sorted batch.")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--memory-rows", type=int, default=50_000)
    args = parser.parse_args()
    plan = merge_plan(args.memory_rows)
    runs = math.ceil(args.rows / plan.memory_rows)
    print(
        f"{args.rows:,} rows, memory_rows {plan.memory_rows:,}: {runs:,} runs, merged {plan.fan_in} at a "
        f"time in {plan.passes(args.rows)} pass(es), reading {plan.batch_rows:,} rows of each run at a time"
    )


if __name__ == "__main__":
    _main()
