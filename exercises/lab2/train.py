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
import subprocess
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from sklearn.model_selection import train_test_split

from mlops_lab.data.io import fingerprint
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle.tracking import client_for, ensure_experiment
from mlops_lab.settings import Settings

REFERENCE_ARTIFACT = "reference/reference.parquet"
HOLDOUT_ARTIFACT = "eval/holdout.parquet"
REFERENCE_ROWS = 5_000
# Types skops must trust to load the pipeline back (the log1p ufunc and the encoder dtype).
SKOPS_TRUSTED = ["numpy.log1p", "numpy.dtype"]


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    version: str
    metrics: dict[str, float]
    threshold: float
    data_fingerprint: str


def code_version() -> dict[str, str]:
    """Git sha of the working tree (and whether it had uncommitted changes), or 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True
        ).stdout
        return {"code_version": sha, "code_dirty": str(bool(dirty.strip())).lower()}
    except (OSError, subprocess.CalledProcessError):
        return {"code_version": "unknown", "code_dirty": "unknown"}


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
        #     skops_trusted_types=SKOPS_TRUSTED)
        #  4. _log_frames({REFERENCE_ARTIFACT: _reference_sample(x_fit, pipeline, params.seed),
        #                  HOLDOUT_ARTIFACT: pd.concat([x_hold, y_hold], axis=1)})
        #  5. version = mlflow.register_model(<the logged model's uri>, settings.model_name)
        # Then, after the run: tag the version with decision_threshold (f"{threshold:.6f}") and
        # with every lineage tag in `tags` (client.set_model_version_tag).
        raise NotImplementedError("TODO(lab-2): log the run and register the version")
    return TrainResult(run.info.run_id, str(version.version), metrics, threshold, data_fp)


def _reference_sample(x_fit: pd.DataFrame, pipeline: Any, seed: int) -> pd.DataFrame:
    sample = x_fit.sample(n=min(REFERENCE_ROWS, len(x_fit)), random_state=seed).reset_index(drop=True)
    sample["score"] = fraud_model.scores(pipeline, sample[SCHEMA.names])
    return sample


def _log_frames(frames: dict[str, pd.DataFrame]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for rel, frame in frames.items():
            path = Path(tmp) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), artifact_path=str(Path(rel).parent))


def load_run_frame(settings: Settings, run_id: str, artifact: str) -> pd.DataFrame:
    """Download one of the frames a training run logged (reference sample or holdout)."""
    client = client_for(settings)
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, artifact, tmp)
        return pd.read_parquet(local)


def load_model(settings: Settings, version: str) -> Any:
    client_for(settings)  # points MLflow's globals at the registry
    return mlflow.sklearn.load_model(f"models:/{settings.model_name}/{version}")


def threshold_of(version_tags: dict[str, str]) -> float:
    return float(version_tags.get("decision_threshold", 0.5))
