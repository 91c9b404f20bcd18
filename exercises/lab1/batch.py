"""Lab 1, exercise `batch-chunks`: batch inference in constant memory, written atomically.

    make lab-1        grade it          make hint-1      one more hint
    Reference: reference/mlops_lab/serving/batch.py (score_file)   Docs: docs/labs/lab-1-serving.md

A nightly job scores a file that may not fit in memory, and something downstream picks the
output up as soon as it exists. `batch_predict` (the reference) resolves the model and calls
`score_file`, which you write. Written for you:

    iter_chunks(input_path, chunk_rows)   the input, chunk_rows rows at a time (DataFrames)
    scorer.score(chunk)                   the chunk checked against the schema (a ValueError
                                          naming the chunk when it breaks it) and scored; the
                                          scorer counts scorer.rows and scorer.flagged
    ScoredWriter(path, suffix)            appends scored chunks to `path` in the format of
                                          `suffix` (.parquet or .csv); use it in a `with` block,
                                          which finishes the file on a clean exit
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mlops_lab.serving.batch import ChunkScorer, ScoredWriter, iter_chunks


def score_file(
    scorer: ChunkScorer,
    input_path: Path,
    output_path: Path,
    chunk_rows: int = 50_000,
) -> tuple[int, int]:
    """Score `input_path` chunk by chunk into `output_path`. Returns (rows, flagged)."""
    # TODO(lab-1): score the input chunk by chunk and publish the output atomically.
    #  Contract:
    #  - memory stays bounded by chunk_rows whatever the input's size;
    #  - while scoring runs, rows go to a temporary file in the output's directory, never to the
    #    output itself; the output appears complete (format named by its suffix) or not at all;
    #  - a failed run raises, leaves no temporary file behind and a previous output untouched.
    #  Think: why in the output's directory and not in /tmp? What does os.replace promise there
    #  that a copy cannot?
    raise NotImplementedError("TODO(lab-1): chunked, atomic batch scoring")
