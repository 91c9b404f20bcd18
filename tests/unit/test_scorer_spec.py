"""The serving spec: what training logs of the compiled scorer, and what a server accepts from it.

    .venv/bin/pytest -p no:cacheprovider tests/unit/test_scorer_spec.py -q

A real fitted pipeline; the spec goes through JSON as it does through the registry. The server
side of the spec (holder, sources, REST client) imports none of MLflow, sklearn, scipy, pandas.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle.scorer import SPEC_VERSION, LinearScorer, SpecError, check_parity, from_spec
from mlops_lab.lifecycle.train import PARITY_ROWS, serving_spec


@pytest.fixture(scope="module")
def pipeline() -> Any:
    data = generate("baseline", 3_000, seed=4)
    return fraud_model.build_pipeline(fraud_model.Hyperparams()).fit(data[SCHEMA.names], data[SCHEMA.label])


@pytest.fixture(scope="module")
def spec(pipeline: Any) -> dict[str, Any]:
    made = serving_spec(pipeline, "run-1", seed=42)
    assert made is not None
    parsed: dict[str, Any] = json.loads(json.dumps(made, allow_nan=False))  # as the registry stores it
    return parsed


def test_the_spec_rebuilds_the_compiled_scorer(pipeline: Any, spec: dict[str, Any]) -> None:
    scorer = from_spec(spec)
    assert scorer == fraud_model.compile_scorer(pipeline)  # every weight, median and moment
    assert check_parity(scorer, spec) == PARITY_ROWS + 2
    rows = features_only(generate("covariate_shift", 200, seed=9))
    np.testing.assert_allclose(
        [scorer(r) for r in rows.to_dict("records")], fraud_model.scores(pipeline, rows), rtol=0, atol=1e-9
    )


def test_the_parity_rows_carry_unseen_and_missing_values(spec: dict[str, Any]) -> None:
    rows = spec["parity"]["rows"]
    assert spec["run_id"] == "run-1" and len(rows) == len(spec["parity"]["scores"])
    assert any(r["country"] == "ZZ" for r in rows)
    assert any(r["distance_from_home_km"] is None and r["account_age_days"] is None for r in rows)


def test_a_scorer_that_disagrees_with_the_recorded_scores_is_refused(spec: dict[str, Any]) -> None:
    tampered = copy.deepcopy(spec)
    tampered["parity"]["scores"][3] += 1e-6
    with pytest.raises(SpecError, match="disagrees with the pipeline"):
        check_parity(from_spec(tampered), tampered)
    no_rows = copy.deepcopy(spec) | {"parity": {"rows": [], "scores": []}}
    with pytest.raises(SpecError, match="no parity rows"):
        check_parity(from_spec(no_rows), no_rows)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"version": SPEC_VERSION + 1}, "unknown scorer spec"),
        ({"format": "something-else"}, "unknown scorer spec"),
        ({"link": "probit"}, "only a logistic link"),
        ({"intercept": None}, "malformed"),
        ({"numeric": [{"column": "amount"}]}, "malformed"),
    ],
)
def test_a_spec_this_code_cannot_read_is_refused(
    spec: dict[str, Any], change: dict[str, Any], words: str
) -> None:
    with pytest.raises(SpecError, match=words):
        from_spec(copy.deepcopy(spec) | change)


def test_no_spec_for_a_model_that_does_not_compile_to_the_linear_scorer() -> None:
    class Opaque:
        named_steps: dict[str, Any] = {}

    assert serving_spec(Opaque(), "run-1", seed=1) is None


def test_the_linear_scorer_scores_missing_and_unseen_like_the_pipeline(pipeline: Any) -> None:
    scorer = fraud_model.compile_scorer(pipeline)
    assert isinstance(scorer, LinearScorer)
    row = features_only(generate("baseline", 1, seed=2)).to_dict("records")[0]
    blank = {k: None for k in SCHEMA.names} | {"country": "ZZ"}
    assert 0.0 < scorer(blank) < 1.0 and scorer(row | {"hour": float(row["hour"])}) == scorer(row)


def test_the_serving_path_imports_no_heavy_library() -> None:
    """The holder, the spec reader and the REST client: what the server needs to load from a spec."""
    code = (
        "import sys; import mlops_lab.serving.holder, mlops_lab.serving.sources, mlops_lab.serving.schemas; "
        "heavy = [m for m in ('mlflow', 'sklearn', 'scipy', 'pandas') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
