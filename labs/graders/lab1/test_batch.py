"""Grader of lab 1 / batch-chunks (exercises/lab1/batch.py): chunked, atomic batch scoring.

`score_file` gets the reference `ChunkScorer` around a real model fitted by the grader (or a
copy of it that records what it sees) and real Parquet and CSV files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_lab.data.generator import features_only, generate
from mlops_lab.labs.grading import TinyModel
from mlops_lab.serving.batch import ChunkScorer

ROWS, CHUNK = 5_000, 1_000


class WatchedModel:
    """The real model, recording how many rows each predict_proba call got and running `during`."""

    def __init__(self, pipeline: Any, during: Callable[[], None] | None = None) -> None:
        self.pipeline = pipeline
        self.calls: list[int] = []
        self.during = during

    def predict_proba(self, x: pd.DataFrame) -> Any:
        self.calls.append(len(x))
        if self.during is not None:
            self.during()
        return self.pipeline.predict_proba(x)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return features_only(generate("baseline", ROWS, seed=11))


def write_input(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, row_group_size=CHUNK, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def run(impl: ModuleType, model: Any, tiny: TinyModel, src: Path, out: Path) -> Any:
    return impl.score_file(ChunkScorer(model, tiny.threshold, "7"), src, out, chunk_rows=CHUNK)


def test_scores_every_row(
    impl: ModuleType, tmp_path: Path, frame: pd.DataFrame, tiny_model: TinyModel
) -> None:
    """every input row is in the output, in order, with its score, decision and model_version"""
    src, out = write_input(frame, tmp_path / "in.parquet"), tmp_path / "out" / "scored.parquet"
    result = run(impl, tiny_model.pipeline, tiny_model, src, out)
    assert out.is_file(), f"expected the output file {out}, got {sorted(p.name for p in tmp_path.rglob('*'))}"
    got = pd.read_parquet(out)
    assert len(got) == ROWS, f"expected {ROWS} rows in the output, got {len(got)}"
    want = tiny_model.pipeline.predict_proba(frame)[:, 1]
    assert {"score", "decision", "model_version"} <= set(got), (
        f"expected score/decision/model_version, got {list(got)}"
    )
    assert np.allclose(got["amount"].to_numpy(), frame["amount"].to_numpy()), (
        "expected the input's rows, in input order"
    )
    assert np.allclose(got["score"].to_numpy(), want), "expected each row's score from the model"
    assert (got["decision"].to_numpy() == (want >= tiny_model.threshold)).all(), (
        "expected decision == (score >= threshold) on every row"
    )
    assert set(got["model_version"].astype(str)) == {"7"}, "expected model_version '7' on every row"
    flagged = int((want >= tiny_model.threshold).sum())
    assert tuple(result) == (ROWS, flagged), f"expected (rows, flagged) == ({ROWS}, {flagged}), got {result}"


def test_in_chunks(impl: ModuleType, tmp_path: Path, frame: pd.DataFrame, tiny_model: TinyModel) -> None:
    """the model sees at most chunk_rows rows at a time (constant memory)"""
    model = WatchedModel(tiny_model.pipeline)
    run(impl, model, tiny_model, write_input(frame, tmp_path / "in.parquet"), tmp_path / "scored.parquet")
    assert model.calls and sum(model.calls) == ROWS, f"expected {ROWS} rows scored, got calls {model.calls}"
    assert max(model.calls) <= CHUNK, f"expected at most {CHUNK} rows per call, got {max(model.calls)}"


def test_streams_the_input(
    impl: ModuleType, tmp_path: Path, frame: pd.DataFrame, tiny_model: TinyModel
) -> None:
    """the first chunks are scored before the end of the input is read

    A file that does not fit in memory cannot be read whole first: iter_chunks reads the next
    chunk only when the loop asks for it.
    """
    src = write_input(frame, tmp_path / "in.csv")
    with src.open("a") as fh:
        fh.write('"1,2,3\n')  # an unterminated quote: the last line cannot be parsed
    model = WatchedModel(tiny_model.pipeline)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ValueError):
        run(impl, model, tiny_model, src, out_dir / "scored.csv")
    assert sum(model.calls) >= ROWS - CHUNK, (
        f"expected the chunks before the broken last line scored before it was read, "
        f"got {sum(model.calls)} rows scored"
    )
    left = sorted(p.name for p in out_dir.iterdir())
    assert left == [], f"expected nothing left in the output directory after the failure, found {left}"


def test_output_appears_only_when_complete(
    impl: ModuleType, tmp_path: Path, frame: pd.DataFrame, tiny_model: TinyModel
) -> None:
    """while scoring runs, rows go to a temporary file beside the output, never to the output itself

    A reader (or a crash) in the middle must never find a file at the output path that looks
    done. Beside it, not in /tmp: os.replace is only atomic within one filesystem.
    """
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "scored.parquet"
    seen: list[tuple[bool, int]] = []
    model = WatchedModel(
        tiny_model.pipeline, during=lambda: seen.append((out.exists(), len(list(out_dir.iterdir()))))
    )
    run(impl, model, tiny_model, write_input(frame, tmp_path / "in.parquet"), out)
    assert seen and not any(exists for exists, _ in seen), (
        f"expected no file at {out.name} before the last chunk was scored, got it there during scoring"
    )
    assert seen[-1][1] == 1, (
        f"expected one temporary file in the output's directory while the last chunk is scored, "
        f"got {seen[-1][1]} files there"
    )
    assert sorted(p.name for p in out_dir.iterdir()) == [out.name], (
        f"expected only {out.name} in the output directory at the end, got {sorted(out_dir.iterdir())}"
    )


def test_atomic_on_failure(
    impl: ModuleType, tmp_path: Path, frame: pd.DataFrame, tiny_model: TinyModel
) -> None:
    """a bad row in a late chunk fails the run and leaves no output and no temporary file"""
    broken = frame.copy()
    broken.loc[ROWS - 10, "channel"] = "fax"  # not in the vocabulary: the last chunk breaks the schema
    src = write_input(broken, tmp_path / "in.parquet")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ValueError):
        run(impl, tiny_model.pipeline, tiny_model, src, out_dir / "scored.parquet")
    left = sorted(p.name for p in out_dir.iterdir())
    assert left == [], f"expected nothing left in the output directory after the failure, found {left}"


def test_interrupted_run(
    impl: ModuleType, tmp_path: Path, frame: pd.DataFrame, tiny_model: TinyModel
) -> None:
    """an interrupted run (Ctrl-C) leaves no output and no temporary file

    KeyboardInterrupt (and SystemExit) are not Exceptions: a cleanup under `except Exception`
    never runs for them. Clean up under `except BaseException` (or in a finally) and re-raise.
    """

    def interrupt() -> None:
        if len(model.calls) == 3:
            raise KeyboardInterrupt

    model = WatchedModel(tiny_model.pipeline, during=interrupt)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(KeyboardInterrupt):
        run(impl, model, tiny_model, write_input(frame, tmp_path / "in.parquet"), out_dir / "scored.parquet")
    left = sorted(p.name for p in out_dir.iterdir())
    assert left == [], f"expected nothing left in the output directory after the interrupt, found {left}"


def test_empty_input(impl: ModuleType, tmp_path: Path, frame: pd.DataFrame, tiny_model: TinyModel) -> None:
    """an input without rows gives a complete, empty output with the scored columns

    ScoredWriter finishes the file when its with-block ends (for an empty Parquet output, that
    is when the file gets written at all): rename after the block, not inside it.
    """
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "scored.parquet"
    result = run(
        impl, tiny_model.pipeline, tiny_model, write_input(frame.iloc[:0], tmp_path / "in.parquet"), out
    )
    left = sorted(p.name for p in out_dir.iterdir())
    assert left == [out.name], f"expected only {out.name} in the output directory, got {left}"
    try:
        got = pd.read_parquet(out)
    except Exception as exc:
        pytest.fail(f"expected a readable Parquet output, got {exc.__class__.__name__}: {exc}", pytrace=False)
    assert len(got) == 0 and {"score", "decision", "model_version"} <= set(got), (
        f"expected no rows and the columns score/decision/model_version, got {len(got)} rows and {list(got)}"
    )
    assert tuple(result) == (0, 0), f"expected (rows, flagged) == (0, 0), got {result}"


def test_old_output_survives(
    impl: ModuleType, tmp_path: Path, frame: pd.DataFrame, tiny_model: TinyModel
) -> None:
    """a failed run leaves yesterday's complete output untouched"""
    out = tmp_path / "scored.parquet"
    run(impl, tiny_model.pipeline, tiny_model, write_input(frame, tmp_path / "good.parquet"), out)
    before = out.read_bytes()
    broken = frame.copy()
    broken.loc[ROWS - 10, "amount"] = -1.0
    with pytest.raises(ValueError):
        run(impl, tiny_model.pipeline, tiny_model, write_input(broken, tmp_path / "bad.parquet"), out)
    assert out.read_bytes() == before, "expected the previous output unchanged after a failed run"


def test_csv(impl: ModuleType, tmp_path: Path, frame: pd.DataFrame, tiny_model: TinyModel) -> None:
    """CSV in, CSV out, with a header once"""
    src, out = write_input(frame, tmp_path / "in.csv"), tmp_path / "scored.csv"
    run(impl, tiny_model.pipeline, tiny_model, src, out)
    got = pd.read_csv(out)
    assert len(got) == ROWS, f"expected {ROWS} data rows in the CSV (one header), got {len(got)}"
    assert {"score", "decision", "model_version"} <= set(got), (
        f"expected score/decision/model_version, got {list(got)}"
    )
