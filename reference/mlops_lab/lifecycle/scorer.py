"""The compiled linear scorer and its serving spec: numpy and math only, no sklearn, no pandas.

    python -c "import mlops_lab.lifecycle.scorer as s; help(s.LinearScorer)"

`LinearScorer` is what `mlops_lab.lifecycle.model.compile_scorer` folds the fitted pipeline
into (one-hot weights per category, then median imputation, log1p and standardisation of each
number, a logistic regression): one dictionary lookup per categorical and one multiply-add per
number for a row (`__call__`), numpy vectors for a batch of columns (`score_columns`).

The *serving spec* is that scorer as a small versioned JSON document that training logs next to
the model (`spec_of` / `from_spec`), with parity rows and the scores the real pipeline gave them.
A model server that reads the spec builds the scorer without importing sklearn or MLflow, and
checks it reproduces the pipeline's scores (`check_parity`) before serving it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SPEC_FORMAT = "mlops-lab.linear-scorer"
SPEC_VERSION = 1  # bumped on any change a reader must understand; readers refuse other versions
SPEC_ARTIFACT = "serving/scorer.json"  # where training logs it, in the run's artifacts
SPEC_TAG = "serving_spec"  # the model version tag training sets to the spec's artifact URI
PARITY_ATOL = 1e-9  # the compiled scorer must reproduce the pipeline's probabilities this closely

Columns = Mapping[str, Sequence[Any] | np.ndarray]
Scorer = Callable[[Mapping[str, Any]], float]  # a compiled single-row scorer: features -> P(fraud)


class SpecError(ValueError):
    """A serving spec this code cannot use (unknown format or version, missing field, parity)."""


def _key(value: Any) -> Any:
    # Encoders store integer-valued columns (hour) as ints; requests may carry 3 or 3.0.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, np.generic):
        return _key(value.item())
    return value


@dataclass(frozen=True)
class LinearScorer:
    """P(fraud) = logistic(intercept + sum of category weights + sum of w * (log1p(x) - mean) / scale).

    categorical  (column, {category: weight}): an unseen (or missing) category weighs 0, as the
                 encoder's handle_unknown="ignore" encodes it to all zeros
    numeric      (column, median, mean, scale, weight): a missing number (None, NaN) is the median
    """

    intercept: float
    categorical: tuple[tuple[str, dict[Any, float]], ...]
    numeric: tuple[tuple[str, float, float, float, float], ...]

    def __call__(self, record: Mapping[str, Any]) -> float:
        z = self.intercept
        for col, table in self.categorical:
            z += table.get(_key(record.get(col)), 0.0)
        for col, median, mean, sd, w in self.numeric:
            x = record.get(col)
            if x is None or x != x:  # None or NaN: imputed like training
                x = median
            z += w * (math.log1p(x) - mean) / sd
        return 1.0 / (1.0 + math.exp(-z))

    def score_columns(self, columns: Columns) -> np.ndarray:
        """The scores of a batch given as columns (name -> values, all of one length): the same
        arithmetic as `__call__` on each row, as numpy vectors. A column left out is missing in
        every row (imputed, or weighing 0), as a key left out of a record is."""
        n = _length(columns)
        z = np.full(n, self.intercept)
        for col, table in self.categorical:
            values = columns.get(col)
            if values is None:
                continue
            listed = values.tolist() if isinstance(values, np.ndarray) else values
            get = table.get
            # str is the common case and needs no normalising; anything else goes through _key.
            z += np.fromiter(
                (get(v, 0.0) if type(v) is str else get(_key(v), 0.0) for v in listed), float, count=n
            )
        for col, median, mean, sd, w in self.numeric:
            values = columns.get(col)
            x = np.full(n, median) if values is None else _floats(values)
            x = np.where(np.isnan(x), median, x)
            z += w * (np.log1p(x) - mean) / sd
        return np.asarray(1.0 / (1.0 + np.exp(-z)))


def _length(columns: Columns) -> int:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _floats(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Numbers as float64 with NaN where a value is missing (None, NaN, pandas' NA)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(float, copy=False)
    return np.array([np.nan if v is None or v != v else v for v in values], dtype=float)


# --- the serving spec ---------------------------------------------------------------------------


def spec_of(
    scorer: LinearScorer,
    rows: Sequence[Mapping[str, Any]],
    scores: Sequence[float] | np.ndarray,
    run_id: str | None,
) -> dict[str, Any]:
    """The JSON-ready spec of `scorer`, with `rows` and the pipeline's `scores` of them for the
    parity check a reader runs. Missing values in rows are written as null."""
    if len(rows) != len(scores) or not rows:
        raise SpecError(f"parity needs rows and one score per row, got {len(rows)} and {len(scores)}")
    return {
        "format": SPEC_FORMAT,
        "version": SPEC_VERSION,
        "run_id": run_id,
        "link": "logistic",
        "intercept": scorer.intercept,
        "categorical": [
            {"column": col, "categories": list(table), "weights": list(table.values())}
            for col, table in scorer.categorical
        ],
        "numeric": [
            {"column": col, "transform": "log1p", "median": med, "mean": mu, "scale": sd, "weight": w}
            for col, med, mu, sd, w in scorer.numeric
        ],
        "parity": {
            "atol": PARITY_ATOL,
            "rows": [{k: _json_value(v) for k, v in r.items()} for r in rows],
            "scores": [float(s) for s in scores],
        },
    }


def _json_value(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and math.isnan(value) else value


def from_spec(spec: Mapping[str, Any]) -> LinearScorer:
    """The scorer a spec describes; SpecError when this code cannot read it."""
    if spec.get("format") != SPEC_FORMAT or spec.get("version") != SPEC_VERSION:
        raise SpecError(
            f"unknown scorer spec {spec.get('format')!r} v{spec.get('version')!r} "
            f"(this server reads {SPEC_FORMAT} v{SPEC_VERSION})"
        )
    try:
        if spec["link"] != "logistic" or any(n["transform"] != "log1p" for n in spec["numeric"]):
            raise SpecError("scorer spec: only a logistic link over log1p-scaled numbers is known")
        categorical = tuple(
            (str(c["column"]), dict(zip(c["categories"], map(float, c["weights"]), strict=True)))
            for c in spec["categorical"]
        )
        numeric = tuple(
            (str(n["column"]), float(n["median"]), float(n["mean"]), float(n["scale"]), float(n["weight"]))
            for n in spec["numeric"]
        )
        return LinearScorer(float(spec["intercept"]), categorical, numeric)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError(f"scorer spec is malformed: {exc.__class__.__name__}: {exc}") from exc


def check_parity(scorer: LinearScorer, spec: Mapping[str, Any]) -> int:
    """Score the spec's parity rows one at a time and as columns; SpecError unless both match the
    pipeline's recorded scores within the spec's tolerance. Returns how many rows were checked
    (the scorer's warm-up, too)."""
    parity = spec.get("parity") or {}
    rows, expected = parity.get("rows") or [], parity.get("scores") or []
    if not rows or len(rows) != len(expected):
        raise SpecError("scorer spec has no parity rows (or not one score per row)")
    atol = min(float(parity.get("atol", PARITY_ATOL)), PARITY_ATOL)
    want = np.asarray(expected, dtype=float)
    one = np.array([scorer(r) for r in rows])
    names = list(dict.fromkeys(k for r in rows for k in r))
    many = scorer.score_columns({k: [r.get(k) for r in rows] for k in names})
    for how, got in (("row by row", one), ("as columns", many)):
        if not np.allclose(got, want, rtol=0.0, atol=atol):
            worst = float(np.max(np.abs(got - want)))
            raise SpecError(f"compiled scorer disagrees with the pipeline {how} (max |diff| {worst:.3g})")
    return len(rows)
