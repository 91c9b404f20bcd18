"""A batch's rows as one block of the prediction log (store/block.py): its JSON, its cuts, its rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_lab.store.block import PredictionBlock, each_row, json_column, row_count

WHEN = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)


def block(n: int, /, **features: list[Any]) -> PredictionBlock:
    return PredictionBlock(
        request_ids=[f"r{i}" for i in range(n)],
        ts=WHEN,
        variant="stable",
        model_version="3",
        features=features or {"amount": [float(i) for i in range(n)], "country": ["US"] * n},
        scores=[i / n for i in range(n)],
        decisions=[i % 2 == 0 for i in range(n)],
        latency_ms=0.25,
    )


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
)


@given(st.lists(st.lists(SCALARS, min_size=1, max_size=6), min_size=1, max_size=4), st.data())
@settings(max_examples=200, deadline=None, database=None)
def test_features_json_is_the_text_json_dumps_writes(columns: list[list[Any]], data: st.DataObject) -> None:
    n = min(map(len, columns))
    names = data.draw(st.lists(st.text(), min_size=len(columns), max_size=len(columns), unique=True))
    features = {name: col[:n] for name, col in zip(names, columns, strict=True)}
    b = block(n, **features)
    assert b.features_json() == [json.dumps(r["features"]) for r in b.rows()]


@pytest.mark.parametrize(
    "values",
    [
        [1.5, None, 2],
        [float("nan"), float("inf"), -float("inf"), 0.0, -0.0],
        ["é", '"', None],
        [True, 1, 1.0, "1"],
    ],
)
def test_a_column_is_encoded_value_by_value_as_json_dumps(values: list[Any]) -> None:
    assert json_column(values) == [json.dumps(v) for v in values]


def test_rows_cut_and_count() -> None:
    b = block(5)
    rows = b.rows()
    assert [r["request_id"] for r in rows] == ["r0", "r1", "r2", "r3", "r4"]
    assert rows[2] == {
        "request_id": "r2",
        "ts": WHEN,
        "variant": "stable",
        "model_version": "3",
        "features": {"amount": 2.0, "country": "US"},
        "score": 0.4,
        "decision": True,
        "latency_ms": 0.25,
    }
    head, tail = b.split(2)
    assert (len(head), len(tail)) == (2, 3)
    assert head.rows() + tail.rows() == rows
    single = {"request_id": "x"}
    assert row_count([head, single, tail]) == 6
    assert [r["request_id"] for r in each_row([head, single, tail])] == ["r0", "r1", "x", "r2", "r3", "r4"]


def test_columns_of_other_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="must all have 2 rows"):
        block(2, amount=[1.0, 2.0, 3.0])
