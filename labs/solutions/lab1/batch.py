"""A solution of lab 1's `batch-chunks` (exercises/lab1/batch.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab1/batch-chunks.toml applied to it (a check must fail on each).
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
    output_path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file lives beside the output: the same filesystem, so os.replace below is one
    # atomic rename. From /tmp (often another filesystem) it would be a copy, which a reader can
    # catch half done.
    fd, tmp_name = tempfile.mkstemp(dir=output_path.parent, prefix=f".{output_path.name}.", suffix=".part")
    os.close(fd)  # ScoredWriter opens the file by its path
    tmp = Path(tmp_name)
    try:
        # The output's suffix names the format: the temporary file's own suffix is ".part".
        with ScoredWriter(tmp, output_path.suffix) as out:
            # One chunk in memory at a time: iter_chunks reads the next one only when asked.
            for chunk in iter_chunks(input_path, chunk_rows):
                out.append(scorer.score(chunk))
        # Only after the with-block ended cleanly (the file is finished): the output appears
        # complete, or not at all, and yesterday's output stays until then.
        os.replace(tmp, output_path)
    except BaseException:
        # Any failure (a bad chunk, a full disk, Ctrl-C): no half-written file is left behind.
        tmp.unlink(missing_ok=True)
        raise
    return scorer.rows, scorer.flagged
