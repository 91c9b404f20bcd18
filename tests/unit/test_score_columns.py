"""`LoadedModel.score_columns` (a batch as columns) equals `score_many` of its rows.

    .venv/bin/pytest -p no:cacheprovider tests/unit/test_score_columns.py -q

Against a real fitted pipeline: the compiled linear scorer vectorised with numpy, and the
pipeline fallback, on rows with missing numbers, unseen categories and integer-valued floats.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import pytest

from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle.scorer import LinearScorer
from mlops_lab.serving.holder import LoadedModel


@pytest.fixture(scope="module")
def pipeline() -> Any:
    data = generate("baseline", 3_000, seed=3)
    return fraud_model.build_pipeline(fraud_model.Hyperparams()).fit(data[SCHEMA.names], data[SCHEMA.label])


def _model(pipeline: Any, compiled: bool) -> LoadedModel:
    return LoadedModel(
        version="1",
        alias="champion",
        run_id=None,
        threshold=0.5,
        pipeline=pipeline,
        compiled=fraud_model.compile_scorer(pipeline) if compiled else None,
        loaded_at=datetime.now(UTC),
    )


def _rows() -> list[dict[str, Any]]:
    rows = cast(
        list[dict[str, Any]], features_only(generate("missing_values", 300, seed=5)).to_dict("records")
    )
    rows[0] |= {"country": "ZZ", "merchant_category": "spaceships", "device_os": "beos"}  # unseen
    rows[1] |= {"account_age_days": None, "distance_from_home_km": None}  # None, not NaN
    rows[2] |= {"hour": 3.0}  # an integer-valued float matches the category 3
    rows[3] |= {"hour": 99}  # an hour the encoder never saw
    assert any(
        isinstance(r["distance_from_home_km"], float) and math.isnan(r["distance_from_home_km"]) for r in rows
    )
    return rows


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [r[name] for r in rows] for name in SCHEMA.names}


def test_the_compiled_scorer_is_linear(pipeline: Any) -> None:
    assert isinstance(fraud_model.compile_scorer(pipeline), LinearScorer)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "pipeline"])
def test_columns_as_lists_equal_score_many(pipeline: Any, compiled: bool) -> None:
    model = _model(pipeline, compiled)
    rows = _rows()
    got = model.score_columns(_columns(rows))
    assert got.shape == (len(rows),)
    np.testing.assert_allclose(got, model.score_many(rows), rtol=0, atol=1e-9)


def test_compiled_and_pipeline_agree_on_columns(pipeline: Any) -> None:
    rows = _rows()
    rows[2]["hour"] = 3  # the pipeline's frame must keep hour an integer column to compare
    cols = _columns(rows)
    np.testing.assert_allclose(
        _model(pipeline, True).score_columns(cols),
        _model(pipeline, False).score_columns(cols),
        rtol=0,
        atol=1e-9,
    )


def test_columns_as_numpy_arrays(pipeline: Any) -> None:
    model = _model(pipeline, True)
    rows = _rows()
    frame = features_only(generate("missing_values", 300, seed=5))
    arrays = {name: frame[name].to_numpy() for name in SCHEMA.names}  # float NaN, object, int64
    arrays["hour"] = arrays["hour"].astype(float)  # 3.0 must match 3
    np.testing.assert_allclose(
        model.score_columns(arrays),
        model.score_many(cast(list[dict[str, Any]], frame.to_dict("records"))),
        atol=1e-9,
    )
    assert len(rows) == len(frame)


def test_a_left_out_column_is_missing_in_every_row(pipeline: Any) -> None:
    model = _model(pipeline, True)
    rows = _rows()[:20]
    cols = _columns(rows)
    del cols["distance_from_home_km"], cols["device_os"]
    expected = model.score_many([{k: v for k, v in r.items() if k in cols} for r in rows])
    np.testing.assert_allclose(model.score_columns(cols), expected, atol=1e-9)


def test_columns_of_different_lengths_are_refused(pipeline: Any) -> None:
    cols = _columns(_rows()[:5])
    cols["amount"] = cols["amount"][:3]
    with pytest.raises(ValueError, match="different lengths"):
        _model(pipeline, True).score_columns(cols)


def test_an_empty_batch_scores_nothing(pipeline: Any) -> None:
    assert _model(pipeline, True).score_columns({name: [] for name in SCHEMA.names}).shape == (0,)
