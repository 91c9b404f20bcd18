"""Each feature's share of the model's attention: what the drift trigger weighs drifted columns by.

    python -m mlops_lab.monitoring.importance    # the shares of a model trained on baseline data

Permutation importance on the champion's reference sample: no labels needed, any model with
predict_proba. `monitoring.window` computes it once per champion; `monitoring.policy` reads the
share of it that a window's drifted columns carry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle.model import scores


def feature_importance(pipeline: Any, reference: pd.DataFrame, seed: int = 0) -> dict[str, float]:
    """Each schema feature's share of the model's attention, summing to 1.

    Measured as the mean absolute change in the model's score when that one column of the
    reference sample is shuffled (a seeded permutation, so the numbers are reproducible).
    Needs no labels, which the reference sample does not carry, and works for any model
    with predict_proba. An all-zero result (a constant model) falls back to equal weights:
    without a way to tell features apart, every drift counts.
    """
    features = reference[SCHEMA.names].reset_index(drop=True)
    if features.empty:
        raise ValueError("feature importance needs a non-empty reference sample")
    base = scores(pipeline, features)
    rng = np.random.default_rng(seed)
    raw: dict[str, float] = {}
    for name in SCHEMA.names:
        shuffled = features.copy()
        shuffled[name] = rng.permutation(shuffled[name].to_numpy())
        raw[name] = float(np.mean(np.abs(scores(pipeline, shuffled) - base)))
    total = sum(raw.values())
    if total <= 0.0:
        return {name: 1.0 / len(raw) for name in raw}
    return {name: value / total for name, value in raw.items()}


def _main() -> None:
    from mlops_lab.data.generator import generate
    from mlops_lab.lifecycle.model import Hyperparams, build_pipeline

    train = generate("baseline", 12_000, seed=1)
    model = build_pipeline(Hyperparams()).fit(train[SCHEMA.names], train[SCHEMA.label])
    importance = feature_importance(model, generate("baseline", 5_000, seed=2))
    for name, share in sorted(importance.items(), key=lambda kv: -kv[1]):
        print(f"{name:24} {share:6.1%}")


if __name__ == "__main__":
    _main()
