"""Grader of lab 1 / batch-chunks (exercises/lab1/batch.py): chunked, atomic batch scoring."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_lab.data.generator import features_only, generate
from mlops_lab.labs.grading import TinyModel

ROWS, CHUNK = 5_000, 1_000


class CountingModel:
    """The real model, recording how many rows each predict_proba call got."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.calls: list[int] = []

    def predict_proba(self, x: pd.DataFrame) -> Any:
        self.calls.append(len(x))
        return self.pipeline.predict_proba(x)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return features_only(generate("baseline", ROWS, seed=11))


def write_input(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, row_group_size=CHUNK, index=False)
    return path


def run(impl: ModuleType, model: Any, tiny: TinyModel, src: Path, out: Path) -> Any:
    return impl.score_file(model, tiny.threshold, "7", src, out, chunk_rows=CHUNK)


def test_scores_every_row(
    impl: ModuleType, tmp_path: Path, frame: pd.DataFrame, tiny_model: TinyModel
) -> None:
    """every input row is in the output with its score, decision and model_version"""
    src, out = write_input(frame, tmp_path / "in.parquet"), tmp_path / "out" / "scored.parquet"
    result = run(impl, tiny_model.pipeline, tiny_model, src, out)
    assert out.is_file(), f"expected the output file {out}"
    got = pd.read_parquet(out)
    assert len(got) == ROWS, f"expected {ROWS} rows in the output, got {len(got)}"
    want = tiny_model.pipeline.predict_proba(frame)[:, 1]
    assert {"score", "decision", "model_version"} <= set(got), (
        f"expected score/decision/model_version, got {list(got)}"
    )
    assert np.allclose(got["score"].to_numpy(), want), (
        "expected each row's score from the model, in input order"
    )
    assert (got["decision"].to_numpy() == (want >= tiny_model.threshold)).all(), (
        "decision must be score >= threshold"
    )
    assert set(got["model_version"].astype(str)) == {"7"}, "expected model_version '7' on every row"
    assert tuple(result) == (ROWS, int((want >= tiny_model.threshold).sum())), (
        f"expected (rows, flagged) == ({ROWS}, {int((want >= tiny_model.threshold).sum())}), got {result}"
    )


def test_in_chunks(impl: ModuleType, tmp_path: Path, frame: pd.DataFrame, tiny_model: TinyModel) -> None:
    """the model sees at most chunk_rows rows at a time (constant memory)"""
    model = CountingModel(tiny_model.pipeline)
    run(impl, model, tiny_model, write_input(frame, tmp_path / "in.parquet"), tmp_path / "scored.parquet")
    assert model.calls and sum(model.calls) == ROWS, f"expected {ROWS} rows scored, got calls {model.calls}"
    assert max(model.calls) <= CHUNK, f"expected at most {CHUNK} rows per call, got {max(model.calls)}"


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
    src, out = tmp_path / "in.csv", tmp_path / "scored.csv"
    frame.to_csv(src, index=False)
    run(impl, tiny_model.pipeline, tiny_model, src, out)
    got = pd.read_csv(out)
    assert len(got) == ROWS, f"expected {ROWS} data rows in the CSV (one header), got {len(got)}"
