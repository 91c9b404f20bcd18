"""Batch inference over Parquet or CSV: chunked, with a progress bar, atomic and re-runnable.

    mlops-lab batch-predict --model models:/fraud-detector@champion \
        --input var/data/batch.parquet --output var/data/scored.parquet

- Chunked: the input is read and scored `chunk_rows` at a time (constant memory).
- Atomic: rows go to a temporary file beside the output, renamed into place at the end,
  so a crash never leaves a half-written output that looks complete.
- Idempotent: a sidecar `<output>.meta.json` records the input fingerprint and the resolved
  model version; re-running with the same input and model skips the work.

`score_file` (the chunk loop and the atomic write) is what lab 1's `batch-chunks` exercise
writes; `ChunkScorer` (schema check, scores, counts) and `ScoredWriter` (the file format) are
the plumbing it uses.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mlops_lab.data.io import check_suffix
from mlops_lab.data.schema import SCHEMA
from mlops_lab.errors import BadData, InvalidValue, MissingFile
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle.tracking import client_for
from mlops_lab.lifecycle.train import threshold_of
from mlops_lab.settings import Settings


@dataclass(frozen=True)
class BatchResult:
    output: str
    rows: int
    model_version: str
    skipped: bool
    flagged: int


def resolve_model(settings: Settings, uri: str) -> tuple[str, float]:
    """models:/name@alias or models:/name/version -> (version, threshold)."""
    client = client_for(settings)
    if not uri.startswith("models:/"):
        raise InvalidValue(f"{uri}: expected models:/<name>@<alias> or models:/<name>/<version>")
    rest = uri.removeprefix("models:/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, version = rest.split("/", 1)
        mv = client.get_model_version(name, version)
    return str(mv.version), threshold_of(dict(mv.tags or {}))


def load_pinned(settings: Settings, version: str) -> Any:
    """The pipeline of the version a batch was pinned to (resolved once, before any row)."""
    client_for(settings)  # points MLflow's globals at the registry
    return mlflow.sklearn.load_model(f"models:/{settings.model_name}/{version}")


def scoring_progress(show_progress: bool) -> Progress:
    """The progress bar a batch shows on a terminal (rows scored, time left)."""
    return Progress(
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not show_progress,
    )


def meta_path_of(output_path: Path) -> Path:
    """Beside each output: what it was computed from, so that a re-run can tell it is done."""
    return output_path.with_name(output_path.name + ".meta.json")


def already_done(output_path: Path, identity: dict[str, Any]) -> BatchResult | None:
    """The recorded result when `output_path` exists and was written from the same `identity`
    (input digest, model, version, threshold, ...); None when it must be computed."""
    meta_path = meta_path_of(output_path)
    if not (output_path.exists() and meta_path.exists()):
        return None
    meta = json.loads(meta_path.read_text())
    if {k: meta.get(k) for k in identity} != identity:
        return None
    return BatchResult(
        str(output_path), int(meta["rows"]), str(meta["model_version"]), True, int(meta["flagged"])
    )


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _row_count(path: Path) -> int | None:
    return pq.ParquetFile(path).metadata.num_rows if path.suffix == ".parquet" else None


def batch_predict(
    settings: Settings,
    model_uri: str,
    input_path: Path,
    output_path: Path,
    chunk_rows: int = 50_000,
    show_progress: bool = True,
    score_file_fn: Callable[[ChunkScorer, Path, Path, int], tuple[int, int]] | None = None,
) -> BatchResult:
    """Score a file with a registered model: chunked, atomic, a no-op when already done.
    `score_file_fn` scores the chunks (default: this module's `score_file`, lab 1's exercise)."""
    check_suffix(input_path)
    check_suffix(output_path)
    if not input_path.exists():
        raise MissingFile(f"{input_path}: no such file")
    version, threshold = resolve_model(settings, model_uri)
    identity = {
        "input_sha256": _file_digest(input_path),
        "model": settings.model_name,
        "model_version": version,
        "threshold": threshold,
    }
    done = already_done(output_path, identity)
    if done is not None:
        return done

    pipeline = load_pinned(settings, version)
    progress = scoring_progress(show_progress)
    with progress:
        task = progress.add_task("rows", total=_row_count(input_path))
        scorer = ChunkScorer(
            pipeline, threshold, version, on_chunk=lambda n: progress.update(task, advance=n)
        )
        rows, flagged = (score_file_fn or score_file)(scorer, input_path, output_path, chunk_rows)
    result = BatchResult(str(output_path), rows, version, False, flagged)
    meta_path_of(output_path).write_text(json.dumps({**identity, **asdict(result)}, indent=1))
    return result


def iter_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The input file, `chunk_rows` rows at a time (Parquet by record batch, CSV by chunksize)."""
    if path.suffix == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    else:
        yield from pd.read_csv(path, chunksize=chunk_rows, dtype={"card_id": str})


class ChunkScorer:
    """Scores the chunks of one batch run, in order, and keeps count (chunks, rows, flagged).

    A chunk that breaks the schema is refused (BadData, a ValueError, naming the chunk and its
    rows); a good one comes back with score, decision (score >= threshold) and model_version.
    """

    def __init__(
        self,
        pipeline: Any,
        threshold: float,
        version: str,
        on_chunk: Callable[[int], None] | None = None,  # rows scored (the progress bar)
    ) -> None:
        self.pipeline, self.threshold, self.version, self.on_chunk = pipeline, threshold, version, on_chunk
        self.chunks = self.rows = self.flagged = 0

    def score(self, chunk: pd.DataFrame) -> pd.DataFrame:
        first, last = self.rows, self.rows + len(chunk)
        problems = SCHEMA.problems(chunk, max_null_fraction=1.0)
        if problems:
            raise BadData(f"chunk {self.chunks} (rows {first}-{last}): " + "; ".join(problems))
        scores = fraud_model.scores(self.pipeline, chunk[SCHEMA.names])
        out = chunk.assign(score=scores, decision=scores >= self.threshold, model_version=self.version)
        self.chunks, self.rows = self.chunks + 1, last
        self.flagged += int(out["decision"].sum())
        if self.on_chunk:
            self.on_chunk(len(out))
        return out


class ScoredWriter:
    """Appends scored chunks to `path` in the format `suffix` names (.parquet, else CSV with one
    header). Used as a context manager: a clean exit finishes the file (an empty Parquet output
    still gets its columns); an exception only closes it."""

    def __init__(self, path: Path, suffix: str) -> None:
        self.path, self.suffix = path, suffix
        self.appended = 0
        self._parquet: pq.ParquetWriter | None = None

    def append(self, frame: pd.DataFrame) -> None:
        if self.suffix == ".parquet":
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._parquet = self._parquet or pq.ParquetWriter(self.path, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        else:
            frame.to_csv(self.path, mode="a", header=self.appended == 0, index=False)
        self.appended += 1

    def __enter__(self) -> ScoredWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        elif exc_type is None and self.appended == 0 and self.suffix == ".parquet":
            pd.DataFrame(columns=[*SCHEMA.names, "score", "decision", "model_version"]).to_parquet(self.path)


# --8<-- [start:score_file]
def score_file(
    scorer: ChunkScorer, input_path: Path, output_path: Path, chunk_rows: int = 50_000
) -> tuple[int, int]:
    """Score `input_path` chunk by chunk into `output_path`, atomically. Returns (rows, flagged)."""
    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=output_path.parent, prefix=f".{output_path.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)  # beside the output: same filesystem, so the rename below is atomic
    try:
        with ScoredWriter(tmp, output_path.suffix) as out:
            for chunk in iter_chunks(input_path, chunk_rows):
                out.append(scorer.score(chunk))
        os.replace(tmp, output_path)  # the output appears complete or not at all
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return scorer.rows, scorer.flagged


# --8<-- [end:score_file]
