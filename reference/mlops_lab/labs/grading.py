"""Helpers the lab graders share (labs/graders/): a small real model, and a holder-ready copy of it.

python -c "from mlops_lab.labs.grading import fit_tiny_model; print(fit_tiny_model().threshold)"
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import model as fraud_model


@dataclass(frozen=True)
class TinyModel:
    """A real fraud model (the reference pipeline) fitted on a small sample: enough to grade with."""

    pipeline: Any
    threshold: float
    rows: list[dict[str, Any]]  # feature rows it was not fitted on


def fit_tiny_model() -> TinyModel:
    data = generate("baseline", 4_000, seed=7)
    pipeline = fraud_model.build_pipeline(fraud_model.Hyperparams()).fit(
        data[SCHEMA.names], data[SCHEMA.label]
    )
    threshold = fraud_model.budget_threshold(fraud_model.scores(pipeline, data[SCHEMA.names]), 0.05)
    rows = cast(list[dict[str, Any]], features_only(generate("baseline", 200, seed=8)).to_dict("records"))
    return TinyModel(pipeline, threshold, rows)


def loaded_model(tiny: TinyModel, version: str, alias: str = "champion") -> Any:
    """A LoadedModel as the reference holder builds it, without going through MLflow."""
    from mlops_lab.serving.holder import LoadedModel

    return LoadedModel(
        version=version,
        alias=alias,
        run_id=None,
        threshold=tiny.threshold,
        pipeline=tiny.pipeline,
        compiled=fraud_model.compile_scorer(tiny.pipeline),
        loaded_at=datetime.now(UTC),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
