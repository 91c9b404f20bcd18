"""Batch inference over Parquet or CSV: chunked, with a progress bar, atomic and re-runnable.

    mlops-lab batch-predict --model models:/fraud-detector@champion \
        --input var/data/batch.parquet --output var/data/scored.parquet

- Chunked: the input is read and scored `chunk_rows` at a time (constant memory).
- Atomic: rows go to a temporary file beside the output, renamed into place at the end,
  so a crash never leaves a half-written output that looks complete.
- Idempotent: a sidecar `<output>.meta.json` records the input fingerprint and the resolved
  model version; re-running with the same input and model skips the work.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
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
) -> BatchResult:
    check_suffix(input_path)
    check_suffix(output_path)
    if not input_path.exists():
        raise MissingFile(f"{input_path}: no such file")
    version, threshold = resolve_model(settings, model_uri)
    meta_path = output_path.with_name(output_path.name + ".meta.json")
    identity = {
        "input_sha256": _file_digest(input_path),
        "model": settings.model_name,
        "model_version": version,
        "threshold": threshold,
    }
    if output_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in identity} == identity:
            return BatchResult(str(output_path), int(meta["rows"]), version, True, int(meta["flagged"]))

    client_for(settings)  # points MLflow's globals at the registry
    pipeline = mlflow.sklearn.load_model(f"models:/{settings.model_name}/{version}")
    rows, flagged = score_file(
        pipeline, threshold, version, input_path, output_path, chunk_rows, show_progress
    )
    result = BatchResult(str(output_path), rows, version, False, flagged)
    meta_path.write_text(json.dumps({**identity, **asdict(result)}, indent=1))
    return result


def iter_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The input file, `chunk_rows` rows at a time (Parquet by record batch, CSV by chunksize)."""
    if path.suffix == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    else:
        yield from pd.read_csv(path, chunksize=chunk_rows, dtype={"card_id": str})


# --8<-- [start:score_file]
def score_file(
    pipeline: Any,
    threshold: float,
    version: str,
    input_path: Path,
    output_path: Path,
    chunk_rows: int = 50_000,
    show_progress: bool = False,
) -> tuple[int, int]:
    """Score `input_path` chunk by chunk into `output_path`, atomically. Returns (rows, flagged)."""
    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=output_path.parent, prefix=f".{output_path.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    rows = flagged = 0
    writer: pq.ParquetWriter | None = None
    progress = Progress(
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not show_progress,
    )
    try:
        with progress:
            task = progress.add_task("rows", total=_row_count(input_path))
            for i, chunk in enumerate(iter_chunks(input_path, chunk_rows)):
                problems = SCHEMA.problems(chunk, max_null_fraction=1.0)
                if problems:
                    raise BadData(f"chunk {i} (rows {rows}-{rows + len(chunk)}): " + "; ".join(problems))
                scores = fraud_model.scores(pipeline, chunk[SCHEMA.names])
                out = chunk.assign(score=scores, decision=scores >= threshold, model_version=version)
                flagged += int(out["decision"].sum())
                rows += len(out)
                if output_path.suffix == ".parquet":
                    table = pa.Table.from_pandas(out, preserve_index=False)
                    writer = writer or pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table.cast(writer.schema))
                else:
                    out.to_csv(tmp, mode="a", header=(i == 0), index=False)
                progress.update(task, advance=len(out))
        if writer is not None:
            writer.close()
            writer = None
        elif rows == 0 and output_path.suffix == ".parquet":
            pd.DataFrame(columns=[*SCHEMA.names, "score", "decision", "model_version"]).to_parquet(tmp)
        os.replace(tmp, output_path)  # the output appears complete or not at all
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return rows, flagged


# --8<-- [end:score_file]
