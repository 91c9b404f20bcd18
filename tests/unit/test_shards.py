"""Batch scoring over a directory of shards: one output sorted by score, in bounded memory."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops_lab.data.generator import generate
from mlops_lab.data.io import write_frame
from mlops_lab.data.schema import SCHEMA
from mlops_lab.errors import BadData, InvalidValue, MissingFile
from mlops_lab.lifecycle.train import load_model
from mlops_lab.serving import merge
from mlops_lab.serving.shards import external_sort, merge_plan, score_shards
from mlops_lab.settings import Settings

CHAMPION = "models:/fraud-detector@champion"


def shards(folder: Path) -> pd.DataFrame:
    """Three shards (Parquet, CSV, an empty one) plus files that are not shards; the rows of
    b.csv repeat rows of a.parquet (other card ids), so equal scores cross shards."""
    folder.mkdir()
    a = generate("baseline", 1_200, seed=21)
    b = pd.concat(
        [generate("baseline", 500, seed=22), a.iloc[:200].assign(card_id=lambda f: f["card_id"] + "-b")]
    )
    write_frame(a, folder / "a.parquet")
    write_frame(b, folder / "b.csv")
    write_frame(generate("baseline", 0), folder / "c.parquet")
    write_frame(generate("baseline", 50, seed=1), folder / ".half-written.parquet")  # hidden: not a shard
    (folder / "README.txt").write_text("not a shard")
    return pd.concat([a, b], ignore_index=True)


def expected_order(registry: Settings, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows scored in memory and stably sorted: ties in shard order, then row order."""
    scores = load_model(registry, "1").predict_proba(rows[SCHEMA.names])[:, 1]
    return rows.assign(score=scores).sort_values("score", ascending=False, kind="stable")


def test_shards_become_one_output_sorted_by_score(registry: Settings, tmp_path: Path) -> None:
    rows = shards(tmp_path / "in")
    out = tmp_path / "out" / "sorted.parquet"
    # 300 rows in memory: 7 runs merged 2 at a time, in passes, 100 rows of each at a time.
    res = score_shards(registry, CHAMPION, tmp_path / "in", out, memory_rows=300, show_progress=False)
    got, want = pd.read_parquet(out), expected_order(registry, rows)
    assert res.rows == len(got) == 1_900 and not res.skipped and res.model_version == "1"
    assert list(got["card_id"]) == list(want["card_id"])  # ties included: b's copies after a's rows
    np.testing.assert_allclose(got["score"].to_numpy(), want["score"].to_numpy(), atol=1e-9)
    assert int(got["decision"].sum()) == res.flagged
    assert sorted(p.name for p in out.parent.iterdir()) == ["sorted.parquet", "sorted.parquet.meta.json"]


def test_rerun_is_a_no_op_until_a_shard_changes(registry: Settings, tmp_path: Path) -> None:
    shards(tmp_path / "in")
    out = tmp_path / "sorted.parquet"
    first = score_shards(registry, CHAMPION, tmp_path / "in", out, memory_rows=500, show_progress=False)
    mtime = out.stat().st_mtime_ns
    again = score_shards(registry, CHAMPION, tmp_path / "in", out, memory_rows=500, show_progress=False)
    assert again.skipped and again.rows == first.rows and out.stat().st_mtime_ns == mtime
    write_frame(generate("baseline", 10, seed=5), tmp_path / "in" / "d.parquet")  # a new shard
    third = score_shards(registry, CHAMPION, tmp_path / "in", out, memory_rows=500, show_progress=False)
    assert not third.skipped and third.rows == first.rows + 10


def test_a_bad_shard_is_named_and_leaves_nothing(registry: Settings, tmp_path: Path) -> None:
    shards(tmp_path / "in")
    bad = generate("baseline", 400, seed=3)
    bad.loc[350, "channel"] = "carrier_pigeon"
    write_frame(bad, tmp_path / "in" / "z.parquet")
    out = tmp_path / "out" / "sorted.parquet"
    out.parent.mkdir()
    out.write_bytes(b"yesterday")
    with pytest.raises(BadData, match=r"z\.parquet: chunk 1 \(rows 300-400\): channel: unknown categories"):
        score_shards(registry, CHAMPION, tmp_path / "in", out, memory_rows=300, show_progress=False)
    assert out.read_bytes() == b"yesterday"
    assert sorted(p.name for p in out.parent.iterdir()) == ["sorted.parquet"]  # no runs, no temp


def test_refusals_name_the_problem(registry: Settings, tmp_path: Path) -> None:
    shards(tmp_path / "in")
    (tmp_path / "empty").mkdir()
    cases: list[tuple[type[Exception], str, Path, Path, int]] = [
        (InvalidValue, "inside", tmp_path / "in", tmp_path / "in" / "sorted.parquet", 300),
        (InvalidValue, r"written as \.parquet", tmp_path / "in", tmp_path / "sorted.csv", 300),
        (MissingFile, "no .parquet or .csv shards", tmp_path / "empty", tmp_path / "sorted.parquet", 300),
        (MissingFile, "no such directory", tmp_path / "nope", tmp_path / "sorted.parquet", 300),
        (InvalidValue, "at least 3", tmp_path / "in", tmp_path / "sorted.parquet", 2),
    ]
    for error, message, src, out, memory_rows in cases:
        with pytest.raises(error, match=message):
            score_shards(registry, CHAMPION, src, out, memory_rows=memory_rows, show_progress=False)


def test_only_empty_shards_give_an_empty_output_with_columns(registry: Settings, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_frame(generate("baseline", 0), tmp_path / "in" / "a.parquet")
    out = tmp_path / "sorted.parquet"
    res = score_shards(registry, CHAMPION, tmp_path / "in", out, memory_rows=300, show_progress=False)
    got = pd.read_parquet(out)
    assert res.rows == 0 and got.empty and {"score", "decision", "model_version"} <= set(got.columns)


def test_merge_plan_keeps_every_merge_within_memory_rows() -> None:
    for memory_rows in (3, 300, 5_000, 50_000, 10_000_000):
        plan = merge_plan(memory_rows)
        assert plan.fan_in >= 2 and (plan.fan_in + 1) * plan.batch_rows <= memory_rows
    assert merge_plan(50_000).batch_rows >= 1_000  # pieces big enough to amortise Python per row
    assert merge_plan(50_000).passes(10_000_000) == 2  # 200 runs, 49 at a time: 5 runs, then one
    assert merge_plan(300).passes(2_000) == 3  # 7 runs, 2 at a time: 4, 2, 1
    assert merge_plan(300).passes(0) == 0


def test_external_sort_merges_in_passes_within_memory(tmp_path: Path) -> None:
    """Every merge gets at most fan_in runs and pieces that fit: (runs + 1) * batch_rows <= memory_rows."""
    calls: list[tuple[int, int]] = []

    def spy_merge(run_paths: list[Path], output_path: Path, **kw: Any) -> int:
        calls.append((len(run_paths), kw["batch_rows"]))
        return merge.merge_sorted_runs(run_paths, output_path, **kw)

    spy = SimpleNamespace(write_sorted_runs=merge.write_sorted_runs, merge_sorted_runs=spy_merge)
    rng = np.random.default_rng(0)
    frames = [
        pd.DataFrame({"card_id": [f"c{i}-{j}" for j in range(n)], "score": np.round(rng.random(n), 1)})
        for i, n in enumerate([300, 300, 120, 300, 1, 300, 300, 300, 299])
    ]

    def chunks() -> Iterator[pd.DataFrame]:
        yield from frames

    out = tmp_path / "sorted.parquet"
    rows = external_sort(chunks(), out, tmp_path / "work", memory_rows=300, merge=spy)  # type: ignore[arg-type]
    want = pd.concat(frames, ignore_index=True).sort_values("score", ascending=False, kind="stable")
    assert rows == len(want) and list(pd.read_parquet(out)["card_id"]) == list(want["card_id"])
    plan = merge_plan(300)
    assert all(k <= plan.fan_in and (k + 1) * batch <= 300 for k, batch in calls), calls
    # 9 runs, 2 at a time: 4 merges (the 9th run waits) -> 5; 2 -> 3; 1 -> 2; the output.
    assert [k for k, _ in calls] == [2] * 8
    assert not list((tmp_path / "work").rglob("*.parquet"))  # merged runs are deleted as it goes
    assert pq.ParquetFile(out).metadata.num_row_groups == math.ceil(len(want) / plan.batch_rows)
