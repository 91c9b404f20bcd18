"""Train, log and register one version of `fraud-detector`, then gate it against the champion.

    mlops-lab train --data var/data/train.parquet --promote

What one run records in MLflow: hyperparameters; holdout metrics; the data fingerprint, row
count and fraud rate; the code version (git sha, dirty flag); a model signature and input
example; the training reference sample the drift monitor compares production against
(`reference/reference.parquet`); the holdout the gate evaluates on (`eval/holdout.parquet`);
for the linear model, the serving spec (`serving/scorer.json`: the compiled scorer's parameters,
parity rows with the pipeline's scores, the model file's SHA-256) a model server starts from
without sklearn or MLflow. The registered version carries the decision threshold, lineage and
the spec's URI (`serving_spec`) as tags.

`train` is two steps: `fit` (check the data, split, fit the configured flavour, sklearn or torch,
and measure it: a `Fitted`) and `log_and_register` (record all of the above in one run and
register the version). Lab 2's tracked-run exercise is `log_and_register`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.model_selection import train_test_split

from mlops_lab.data.io import fingerprint
from mlops_lab.data.schema import SCHEMA
from mlops_lab.errors import BadData, InvalidValue
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle.aliases import threshold_of as threshold_of  # re-exported: its old home
from mlops_lab.lifecycle.scorer import (
    SPEC_ARTIFACT,
    SPEC_TAG,
    LinearScorer,
    SpecError,
    check_parity,
    from_spec,
    spec_of,
)
from mlops_lab.lifecycle.tracking import client_for, ensure_experiment
from mlops_lab.settings import Settings

REFERENCE_ARTIFACT = "reference/reference.parquet"
HOLDOUT_ARTIFACT = "eval/holdout.parquet"
REFERENCE_ROWS = 5_000
# Types skops must trust to load the pipeline back (the log1p ufunc and the encoder dtype).
SKOPS_TRUSTED = ["numpy.log1p", "numpy.dtype"]
PARITY_ROWS = 64  # baseline rows in the serving spec, scored by the pipeline at training time


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    version: str
    metrics: dict[str, float]
    threshold: float
    data_fingerprint: str


def code_version() -> dict[str, str]:
    """Git sha of the working tree (and whether it had uncommitted changes), or 'unknown'.

    In the container image there is no .git: the sha it was built from is in MLOPS_LAB_GIT_SHA.
    """
    baked = os.environ.get("MLOPS_LAB_GIT_SHA")
    if baked:
        return {"code_version": baked, "code_dirty": "false"}
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


@dataclass(frozen=True)
class Fitted:
    """A fitted model and what was measured while fitting it: everything `log_and_register` records.

    pipeline        the fitted sklearn Pipeline (either flavour): `predict_proba` on SCHEMA.names columns
    flavour         "sklearn" or "torch" (settings.model_flavour)
    params          the hyperparameters to log, with model_flavour and train_device
    trusted         the types skops must trust to load the pipeline back (`skops_trusted_types`)
    seed            the seed of the split, the model and the reference sample
    x_fit, y_fit    the rows it was fitted on (75%): features (SCHEMA.names) and labels (0/1)
    x_hold, y_hold  the held-out rows (25%) the metrics are measured on
    hold_scores     the model's fraud scores of x_hold, in the same order
    threshold       the decision threshold: it flags settings.flag_budget of the fitting rows
    metrics         holdout metrics at that threshold (`model.metrics`: pr_auc, roc_auc, recall, ...)
    fit_seconds     wall time of the fit
    latency         single-row scoring latency on held-out rows (`p50_ms`, `p99_ms`)
    """

    pipeline: Any
    flavour: str
    params: dict[str, Any]
    trusted: list[str]
    seed: int
    x_fit: pd.DataFrame
    y_fit: pd.Series
    x_hold: pd.DataFrame
    y_hold: pd.Series
    hold_scores: np.ndarray
    threshold: float
    metrics: dict[str, float]
    fit_seconds: float
    latency: dict[str, float]

    @property
    def holdout(self) -> pd.DataFrame:
        """The held-out rows with their label column: what the gate evaluates the version on."""
        return pd.concat([self.x_hold, self.y_hold], axis=1)

    def metrics_on(self, frame: pd.DataFrame) -> dict[str, float]:
        """The same metrics as `metrics`, at the same threshold, on another labelled frame."""
        scored = fraud_model.scores(self.pipeline, frame[SCHEMA.names])
        return fraud_model.metrics(frame[SCHEMA.label].to_numpy(), scored, self.threshold)


class LogAndRegister(Protocol):
    def __call__(
        self, settings: Settings, data: pd.DataFrame, fitted: Fitted, *, lineage: dict[str, str] | None = None
    ) -> TrainResult: ...


def fit(settings: Settings, data: pd.DataFrame, params: fraud_model.Hyperparams | None = None) -> Fitted:
    """Check `data` against the schema, split it, fit the configured flavour and measure it. Logs nothing."""
    params = params or fraud_model.Hyperparams(seed=settings.seed)
    problems = SCHEMA.problems(data)
    if SCHEMA.label not in data.columns:
        problems.append(f"missing label column {SCHEMA.label}")
    if problems:
        raise BadData("training data does not match the schema: " + "; ".join(problems))

    x, y = data[SCHEMA.names], data[SCHEMA.label].astype(int)
    x_fit, x_hold, y_fit, y_hold = train_test_split(
        x, y, test_size=0.25, random_state=params.seed, stratify=y if y.nunique() == 2 else None
    )
    pipeline, logged_params, trusted = _build(settings, params)
    started = time.perf_counter()
    pipeline.fit(x_fit, y_fit)
    fit_seconds = time.perf_counter() - started
    hold_scores = fraud_model.scores(pipeline, x_hold)
    threshold = fraud_model.budget_threshold(fraud_model.scores(pipeline, x_fit), settings.flag_budget)
    return Fitted(
        pipeline=pipeline,
        flavour=settings.model_flavour,
        params=logged_params,
        trusted=trusted,
        seed=params.seed,
        x_fit=x_fit,
        y_fit=y_fit,
        x_hold=x_hold,
        y_hold=y_hold,
        hold_scores=hold_scores,
        threshold=threshold,
        metrics=fraud_model.metrics(y_hold.to_numpy(), hold_scores, threshold),
        fit_seconds=fit_seconds,
        latency=fraud_model.single_row_latency_ms(pipeline, x_hold),
    )


def log_and_register(
    settings: Settings, data: pd.DataFrame, fitted: Fitted, *, lineage: dict[str, str] | None = None
) -> TrainResult:
    """Log `fitted` as one MLflow run and register it as a new version. Does not move any alias."""
    client = client_for(settings)
    experiment_id = ensure_experiment(client, settings)
    data_fp = fingerprint(data)
    # --8<-- [start:lineage]
    tags = {
        "data_fingerprint": data_fp,
        "model_flavour": fitted.flavour,
        **code_version(),
        **(lineage or {}),
    }
    # --8<-- [end:lineage]
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run:
        mlflow.log_params(
            {**fitted.params, "decision_threshold": round(fitted.threshold, 6), "rows": len(data)}
        )
        mlflow.log_metrics(
            {
                **fitted.metrics,
                "fraud_rate": float(data[SCHEMA.label].astype(int).mean()),
                "fit_seconds": fitted.fit_seconds,
                **{f"latency_{k}": v for k, v in fitted.latency.items()},
            }
        )
        # --8<-- [start:signature]
        # Nullable features travel as floats (an int column cannot hold a missing value).
        example = fitted.x_hold.head(5).astype({f.name: "float64" for f in SCHEMA.features if f.nullable})
        with warnings.catch_warnings():  # MLflow's hint about int columns: handled just above
            warnings.simplefilter("ignore", UserWarning)
            signature = infer_signature(example, fitted.hold_scores[:5])
        info = mlflow.sklearn.log_model(
            fitted.pipeline,
            name="model",
            signature=signature,
            input_example=example,
            serialization_format="skops",
            skops_trusted_types=fitted.trusted,
            pip_requirements=model_requirements(fitted.flavour),
        )
        # --8<-- [end:signature]
        log_frames({REFERENCE_ARTIFACT: reference_sample(fitted), HOLDOUT_ARTIFACT: fitted.holdout})
        spec_uri = log_serving_spec(fitted.pipeline, run.info.run_id, info, fitted.seed)
        with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints "Successfully registered..." there
            version = mlflow.register_model(
                info.model_uri, settings.model_name, tags={"run_id": run.info.run_id}
            )
    client.set_model_version_tag(
        settings.model_name, version.version, "decision_threshold", f"{fitted.threshold:.6f}"
    )
    for key, value in tags.items():
        client.set_model_version_tag(settings.model_name, version.version, key, value)
    if spec_uri is not None:  # where a model server finds the scorer without loading the pipeline
        client.set_model_version_tag(settings.model_name, version.version, SPEC_TAG, spec_uri)
    return TrainResult(run.info.run_id, str(version.version), fitted.metrics, fitted.threshold, data_fp)


def train(
    settings: Settings,
    data: pd.DataFrame,
    *,
    params: fraud_model.Hyperparams | None = None,
    lineage: dict[str, str] | None = None,
    log_and_register: LogAndRegister = log_and_register,
) -> TrainResult:
    """Fit on `data`, log everything, register a new version. Does not move any alias.

    `log_and_register` is the step that records the run (lab 2 passes the learner's own).
    """
    return log_and_register(settings, data, fit(settings, data, params), lineage=lineage)


def _build(settings: Settings, params: fraud_model.Hyperparams) -> tuple[Any, dict[str, Any], list[str]]:
    """The unfitted pipeline of the configured flavour, the params to log, the types skops must trust."""
    if settings.model_flavour == "torch":
        from mlops_lab.lifecycle import torch_model  # torch itself is imported only when fitting

        torch_params = torch_model.TorchHyperparams(seed=params.seed)
        device = torch_model.resolve_device(settings.model_device)  # fails fast, before any logging
        logged = {**asdict(torch_params), "model_flavour": "torch", "train_device": device}
        pipeline = torch_model.build_pipeline(torch_params, device=device)
        return pipeline, logged, SKOPS_TRUSTED + torch_model.SKOPS_TRUSTED
    if settings.model_device == "cuda":  # asked for a GPU: never a silent CPU run
        raise InvalidValue(
            "model_device=cuda: the sklearn flavour trains on the CPU only; set "
            "MLOPS_MODEL_FLAVOUR=torch to train on the GPU, or MLOPS_MODEL_DEVICE=auto"
        )
    logged = {**asdict(params), "model_flavour": "sklearn", "train_device": "cpu"}
    return fraud_model.build_pipeline(params), logged, SKOPS_TRUSTED


def serving_spec(pipeline: Any, run_id: str | None, seed: int) -> dict[str, Any] | None:
    """The serving spec of `pipeline` (`mlops_lab.lifecycle.scorer`), or None when its compiled
    scorer is not the linear one (the torch flavour) or does not reproduce the pipeline.

    Its parity rows are PARITY_ROWS baseline rows plus an unseen country and missing numbers,
    each with the score the pipeline itself gives it."""
    from mlops_lab.data.generator import features_only, generate

    scorer = fraud_model.compile_scorer(pipeline)
    if not isinstance(scorer, LinearScorer):
        return None
    frame = features_only(generate("baseline", PARITY_ROWS, seed=seed))
    rows: list[dict[str, Any]] = frame.to_dict("records")  # type: ignore[assignment]
    rows += [rows[0] | {"country": "ZZ"}, rows[1] | {"account_age_days": None, "distance_from_home_km": None}]
    expected = fraud_model.scores(pipeline, pd.DataFrame(rows, columns=SCHEMA.names))
    spec = spec_of(scorer, rows, expected, run_id)
    try:  # what a server will rebuild from the JSON must agree, or no spec is offered at all
        check_parity(from_spec(json.loads(json.dumps(spec, allow_nan=False))), spec)
    except (SpecError, ValueError) as exc:
        warnings.warn(f"no serving spec: {exc}", stacklevel=2)
        return None
    return spec


def log_serving_spec(pipeline: Any, run_id: str, info: Any, seed: int) -> str | None:
    """Log the serving spec of `pipeline` to the active run (SPEC_ARTIFACT), with the SHA-256 of
    the model file just logged (`info`, MLflow's ModelInfo), so that a server serving the spec
    still refuses a model whose artifact was damaged. Returns the spec's artifact URI, or None."""
    spec = serving_spec(pipeline, run_id, seed)
    if spec is None:
        return None
    location = mlflow.get_logged_model(info.model_id).artifact_location
    model_file = f"{location.rstrip('/')}/{info.flavors['sklearn']['pickled_model']}"
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_file, dst_path=tmp)
        digest = hashlib.sha256(Path(local).read_bytes()).hexdigest()
    spec["model_file"] = {"uri": model_file, "sha256": digest}
    mlflow.log_text(json.dumps(spec, allow_nan=False), SPEC_ARTIFACT)
    return str(mlflow.get_artifact_uri(SPEC_ARTIFACT))


def model_requirements(flavour: str) -> list[str]:
    """The model's pip requirements, pinned to what is installed (the lock).

    Given explicitly because MLflow's inference loads the model in a child process to see what
    it imports: ~15 s per logged model, and it pins whatever else happens to be imported.
    """
    packages = ["scikit-learn", "skops", "numpy", "scipy", "pandas"] + (
        ["torch"] if flavour == "torch" else []
    )
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in packages]


def reference_sample(fitted: Fitted) -> pd.DataFrame:
    """What the drift monitor compares production with: up to REFERENCE_ROWS of the rows the model
    was fitted on (SCHEMA.names columns, fresh index) and the model's `score` of each."""
    n = min(REFERENCE_ROWS, len(fitted.x_fit))
    sample = fitted.x_fit.sample(n=n, random_state=fitted.seed).reset_index(drop=True)
    sample["score"] = fraud_model.scores(fitted.pipeline, sample[SCHEMA.names])
    return sample


def log_frames(frames: dict[str, pd.DataFrame]) -> None:
    """Log each frame as a Parquet artifact of the active run at its path (e.g. eval/holdout.parquet)."""
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
