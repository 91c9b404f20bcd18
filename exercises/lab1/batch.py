"""Lab 1, exercise `batch-chunks`: batch inference in constant memory, written atomically.

    make lab-1        grade it          make hint-1      one more hint
    Reference: reference/mlops_lab/serving/batch.py (score_file)   Docs: docs/labs/lab-1-serving.md

A nightly job scores a file that may not fit in memory. `score_file` reads it `chunk_rows` rows
at a time (`iter_chunks`, imported, is written), scores each chunk, and writes the scored rows so that the
output appears complete or not at all: a crash half-way must never leave a file that looks done.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.serving.batch import iter_chunks  # written: the input, chunk_rows rows at a time


def score_file(
    pipeline: Any,
    threshold: float,
    version: str,
    input_path: Path,
    output_path: Path,
    chunk_rows: int = 50_000,
    show_progress: bool = False,
) -> tuple[int, int]:
    """Score `input_path` chunk by chunk into `output_path`, atomically. Returns (rows, flagged).

    The output has the input's columns plus score, decision (score >= threshold) and
    model_version. Parquet output when output_path ends in .parquet, CSV otherwise.
    """
    # TODO(lab-1):
    #  1. create a temporary file beside the output (tempfile.mkstemp(dir=output_path.parent))
    #  2. for each chunk of iter_chunks(input_path, chunk_rows):
    #       - refuse a chunk that breaks the schema: SCHEMA.problems(chunk, max_null_fraction=1.0)
    #         returns a list of problems; raise ValueError naming the chunk and the problems
    #       - scores = fraud_model.scores(pipeline, chunk[SCHEMA.names])
    #       - append chunk + score/decision/model_version columns to the temporary file
    #         (pq.ParquetWriter for parquet, to_csv(mode="a", header=first chunk) for CSV)
    #  3. os.replace(temporary, output_path) only after the last chunk
    #  4. on any exception: close the writer, delete the temporary file, re-raise
    raise NotImplementedError("TODO(lab-1): chunked, atomic batch scoring")
