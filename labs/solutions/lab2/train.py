"""A solution of lab 2's `tracked-run` (exercises/lab2/train.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab2/tracked-run.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

import contextlib
import io
from functools import partial

import mlflow
import pandas as pd
from mlflow.models import infer_signature

from mlops_lab.data.io import fingerprint
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import train as reference
from mlops_lab.lifecycle.tracking import client_for, ensure_experiment
from mlops_lab.lifecycle.train import (
    HOLDOUT_ARTIFACT,
    REFERENCE_ARTIFACT,
    Fitted,
    TrainResult,
    code_version,
    log_frames,
    model_requirements,
    reference_sample,
)
from mlops_lab.settings import Settings


def log_and_register(
    settings: Settings, data: pd.DataFrame, fitted: Fitted, *, lineage: dict[str, str] | None = None
) -> TrainResult:
    """Record `fitted` (made from `data`) as one MLflow run; register it as a new version."""
    client = client_for(settings)
    experiment_id = ensure_experiment(client, settings)
    # The fingerprint of the whole frame the model was made from (not of a split): two runs
    # with the same fingerprint were trained on the same data, whatever their seeds.
    data_fp = fingerprint(data)
    # One dict of lineage, written twice: on the run (the pipeline finds a crashed attempt's
    # run by searching runs for its tags) and on the version (what a reviewer or a server sees).
    tags = {
        "data_fingerprint": data_fp,
        "model_flavour": fitted.flavour,
        **code_version(),
        **(lineage or {}),
    }
    # Everything below is logged inside the with-block: after it, MLflow's fluent API would
    # quietly start a second run for whatever is logged next.
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run:
        mlflow.log_params(
            {**fitted.params, "decision_threshold": round(fitted.threshold, 6), "rows": len(data)}
        )
        mlflow.log_metrics(
            {
                **fitted.metrics,
                # The share of frauds in all of `data`, before the split: the base rate PR-AUC
                # is read against.
                "fraud_rate": float(data[SCHEMA.label].astype(int).mean()),
                "fit_seconds": fitted.fit_seconds,
                **{f"latency_{key}": value for key, value in fitted.latency.items()},
            }
        )
        # The signature is the serving contract the gate checks. A nullable int column cannot
        # hold a missing value, so those features travel as floats, in the example and in the
        # signature inferred from it.
        example = fitted.x_hold.head(5).astype({f.name: "float64" for f in SCHEMA.features if f.nullable})
        signature = infer_signature(example, fitted.hold_scores[:5])
        info = mlflow.sklearn.log_model(
            fitted.pipeline,
            name="model",
            signature=signature,
            input_example=example,
            # skops loads only the types it is told to trust; a pickle runs whatever it carries.
            serialization_format="skops",
            skops_trusted_types=fitted.trusted,
            pip_requirements=model_requirements(fitted.flavour),
        )
        # What the later stages read back from this run: the gate's holdout (with its labels)
        # and the drift monitor's reference sample (fitting rows and their scores).
        log_frames({HOLDOUT_ARTIFACT: fitted.holdout, REFERENCE_ARTIFACT: reference_sample(fitted)})
        with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints "Successfully registered..."
            version = mlflow.register_model(info.model_uri, settings.model_name)
    # The servers read the threshold from the version's tags; six decimals, as they parse it.
    client.set_model_version_tag(
        settings.model_name, version.version, "decision_threshold", f"{fitted.threshold:.6f}"
    )
    for key, value in tags.items():
        client.set_model_version_tag(settings.model_name, version.version, key, value)
    # No alias moves here: registering is not releasing. The gate and a promotion decide that.
    return TrainResult(run.info.run_id, str(version.version), fitted.metrics, fitted.threshold, data_fp)


# The reference's train (`fit`, then a log_and_register), with yours.
train = partial(reference.train, log_and_register=log_and_register)
