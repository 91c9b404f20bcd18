"""Lab 2, exercise `tracked-run`: log a training run with its signature and lineage, register it.

    make lab-2        grade it          make hint-2      one more hint
    Reference: reference/mlops_lab/lifecycle/train.py    Docs: docs/labs/lab-2-lifecycle.md

A model is code plus data plus a training run. `train` fits the model (written) and must leave
in MLflow everything needed to trust, reproduce and serve it: the hyperparameters and holdout
metrics, a signature (the serving contract), the artifacts the gate and the drift monitor need,
and a registered version whose tags say which data and which code made it.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import asdict
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from sklearn.model_selection import train_test_split

from mlops_lab.data.io import fingerprint
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle.tracking import client_for, ensure_experiment
from mlops_lab.lifecycle.train import (  # written: constants, lineage and artifact helpers
    HOLDOUT_ARTIFACT,
    REFERENCE_ARTIFACT,
    SKOPS_TRUSTED,
    TrainResult,
    _log_frames,
    _reference_sample,
    code_version,
    model_requirements,
)
from mlops_lab.settings import Settings


def train(
    settings: Settings,
    data: pd.DataFrame,
    *,
    params: fraud_model.Hyperparams | None = None,
    lineage: dict[str, str] | None = None,
) -> TrainResult:
    """Fit on `data`, log everything, register a new version. Does not move any alias."""
    params = params or fraud_model.Hyperparams(seed=settings.seed)
    problems = SCHEMA.problems(data)
    if SCHEMA.label not in data.columns:
        problems.append(f"missing label column {SCHEMA.label}")
    if problems:
        raise ValueError("training data does not match the schema: " + "; ".join(problems))

    x, y = data[SCHEMA.names], data[SCHEMA.label].astype(int)
    x_fit, x_hold, y_fit, y_hold = train_test_split(
        x, y, test_size=0.25, random_state=params.seed, stratify=y if y.nunique() == 2 else None
    )
    pipeline = fraud_model.build_pipeline(params).fit(x_fit, y_fit)
    hold_scores = fraud_model.scores(pipeline, x_hold)
    threshold = fraud_model.budget_threshold(fraud_model.scores(pipeline, x_fit), settings.flag_budget)
    metrics = fraud_model.metrics(y_hold.to_numpy(), hold_scores, threshold)
    latency = fraud_model.single_row_latency_ms(pipeline, x_hold)

    client = client_for(settings)
    experiment_id = ensure_experiment(client, settings)
    data_fp = fingerprint(data)
    tags = {
        "data_fingerprint": data_fp,
        **code_version(),
        **(lineage or {}),
    }
    version: Any = None  # the registered ModelVersion (mlflow.register_model returns it)
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run:
        # TODO(lab-2): inside the run:
        #  1. mlflow.log_params: asdict(params), the decision_threshold and the number of rows
        #  2. mlflow.log_metrics: the holdout `metrics`, the fraud rate y.mean(), and the
        #     single-row latency as latency_<key>
        #  3. a signature from infer_signature(example, hold_scores[:5]), where example is
        #     x_hold.head(5) with the nullable features cast to float64 (an int column cannot
        #     hold a missing value); log the pipeline with mlflow.sklearn.log_model(pipeline,
        #     name="model", signature=..., input_example=example, serialization_format="skops",
        #     skops_trusted_types=SKOPS_TRUSTED, pip_requirements=model_requirements("sklearn"))
        #     (explicit requirements: MLflow would otherwise spend ~15 s inferring them)
        #  4. _log_frames({REFERENCE_ARTIFACT: _reference_sample(x_fit, pipeline, params.seed),
        #                  HOLDOUT_ARTIFACT: pd.concat([x_hold, y_hold], axis=1)})
        #  5. version = mlflow.register_model(<the logged model's uri>, settings.model_name)
        # Then, after the run: tag the version with decision_threshold (f"{threshold:.6f}") and
        # with every lineage tag in `tags` (client.set_model_version_tag).
        raise NotImplementedError("TODO(lab-2): log the run and register the version")
    return TrainResult(run.info.run_id, str(version.version), metrics, threshold, data_fp)
