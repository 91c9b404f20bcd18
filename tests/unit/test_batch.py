"""Batch inference: chunked, atomic, idempotent, equal to online scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_lab.data.generator import generate
from mlops_lab.data.io import read_frame, write_frame
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle.train import load_model
from mlops_lab.serving.batch import ChunkScorer, batch_predict, score_file
from mlops_lab.settings import Settings

CHAMPION = "models:/fraud-detector@champion"


@pytest.mark.parametrize(("src", "dst"), [(".parquet", ".parquet"), (".csv", ".csv"), (".csv", ".parquet")])
def test_scores_every_row_in_chunks_like_the_model(
    registry: Settings, tmp_path: Path, src: str, dst: str
) -> None:
    frame = generate("baseline", 2_345, seed=9)
    inp = write_frame(frame, tmp_path / f"in{src}")
    res = batch_predict(registry, CHAMPION, inp, tmp_path / f"out{dst}", chunk_rows=500, show_progress=False)
    out = read_frame(tmp_path / f"out{dst}")
    assert res.rows == len(out) == 2_345 and not res.skipped and res.model_version == "1"
    expected = load_model(registry, "1").predict_proba(frame[SCHEMA.names])[:, 1]
    np.testing.assert_allclose(out["score"].to_numpy(), expected, atol=1e-9)
    assert list(out["card_id"].astype(str)) == list(frame["card_id"])
    assert int(out["decision"].sum()) == res.flagged


def test_rerun_with_same_input_and_model_is_a_no_op(registry: Settings, tmp_path: Path) -> None:
    inp = write_frame(generate("baseline", 300), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    first = batch_predict(registry, CHAMPION, inp, out, show_progress=False)
    mtime = out.stat().st_mtime_ns
    second = batch_predict(registry, CHAMPION, inp, out, show_progress=False)
    assert second.skipped and second.rows == first.rows and out.stat().st_mtime_ns == mtime
    write_frame(generate("baseline", 301), inp)  # new input: recomputed
    assert not batch_predict(registry, CHAMPION, inp, out, show_progress=False).skipped


def test_a_bad_chunk_leaves_no_partial_output(registry: Settings, tmp_path: Path) -> None:
    good = generate("baseline", 1_000)
    bad = good.copy()
    bad.loc[900, "channel"] = "carrier_pigeon"
    inp = write_frame(bad, tmp_path / "in.parquet")
    with pytest.raises(ValueError, match=r"chunk 2 \(rows 800-1000\): channel: unknown categories"):
        batch_predict(registry, CHAMPION, inp, tmp_path / "out.parquet", chunk_rows=400, show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_empty_input_gives_an_empty_output(registry: Settings, tmp_path: Path) -> None:
    inp = write_frame(generate("baseline", 0), tmp_path / "in.parquet")
    res = batch_predict(registry, CHAMPION, inp, tmp_path / "out.parquet", show_progress=False)
    assert res.rows == 0 and pd.read_parquet(tmp_path / "out.parquet").empty


def test_score_file_scores_chunk_by_chunk_and_reports_progress(registry: Settings, tmp_path: Path) -> None:
    inp = write_frame(generate("baseline", 1_000, seed=4), tmp_path / "in.csv")
    seen: list[int] = []
    scorer = ChunkScorer(load_model(registry, "1"), 0.5, "1", on_chunk=seen.append)
    rows, flagged = score_file(scorer, inp, tmp_path / "out.csv", chunk_rows=400)
    assert seen == [400, 400, 200] and (rows, scorer.chunks) == (1_000, 3)
    assert flagged == int(read_frame(tmp_path / "out.csv")["decision"].sum())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]
