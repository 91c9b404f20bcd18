"""Lab 2, exercise `tracked-run`: record a training run that others can trust, reproduce and serve.

    make lab-2        grade it          make hint-2      one more hint
    Reference: reference/mlops_lab/lifecycle/train.py    Docs: docs/labs/lab-2-lifecycle.md

A model is code plus data plus a training run. `train` is two steps:

  fit               written: checks the data against the schema, splits off a 25% holdout, fits
                    the configured flavour (sklearn, or torch), picks the decision threshold and
                    measures the model; it returns a `Fitted` and logs nothing
  log_and_register  yours: leave in MLflow everything the next stages need (the gate evaluates
                    the version on its holdout, the drift monitor compares production with its
                    reference sample, the servers load it and read its threshold) and what a
                    person needs to tell which data and which code made it

`Fitted` (reference/mlops_lab/lifecycle/train.py) holds:

    pipeline        the fitted sklearn Pipeline (predict_proba on the SCHEMA.names columns)
    flavour         "sklearn" or "torch"
    params          the hyperparameters, with model_flavour and train_device (str, int, float)
    trusted         the types skops must trust to load the pipeline back
    seed            the seed of the split and of the model
    x_fit, y_fit    the 75% it was fitted on: features (SCHEMA.names) and labels (0/1)
    x_hold, y_hold  the 25% held out; `fitted.holdout` is x_hold with its label column
    hold_scores     the fraud score of each x_hold row (numpy array, same order)
    threshold       the decision threshold (a float in [0, 1])
    metrics         holdout metrics at that threshold: {"pr_auc": ..., "recall": ..., ...}
    fit_seconds     the fit's wall time
    latency         single-row scoring latency: {"p50_ms": ..., "p99_ms": ...}
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
from mlops_lab.lifecycle.train import (  # written: fit and what it returns, the artifact helpers
    HOLDOUT_ARTIFACT,
    REFERENCE_ARTIFACT,
    Fitted,
    TrainResult,
    code_version,
    fit,
    load_model,
    load_run_frame,
    log_frames,
    model_requirements,
    reference_sample,
    threshold_of,
)
from mlops_lab.settings import Settings


def log_and_register(
    settings: Settings, data: pd.DataFrame, fitted: Fitted, *, lineage: dict[str, str] | None = None
) -> TrainResult:
    """Record `fitted` (made from `data`) as one MLflow run; register it as a new version."""
    # TODO(lab-2): the contract; every point is a check of `make lab-2`.
    #  One run, in the experiment ensure_experiment(client_for(settings), settings), holding:
    #   - params: every entry of fitted.params, plus "decision_threshold" (fitted.threshold) and
    #     "rows" (len(data));
    #   - metrics: every entry of fitted.metrics, plus "fraud_rate" (the share of rows of `data`
    #     whose SCHEMA.label is 1), "fit_seconds", and "latency_<key>" for each fitted.latency entry;
    #   - the model, named "model", serialised with skops (never pickle: loading a pickle runs
    #     whatever code it carries), with an input example and a signature whose inputs are
    #     exactly SCHEMA.names, the nullable features (SCHEMA.features with .nullable) as floats;
    #   - HOLDOUT_ARTIFACT: fitted.holdout, and REFERENCE_ARTIFACT: reference_sample(fitted);
    #   - the lineage as run tags: "data_fingerprint" (fingerprint(data)), "model_flavour",
    #     code_version()'s "code_version" and "code_dirty", and every entry of `lineage`.
    #  A new version of settings.model_name registered from that model, tagged with
    #  "decision_threshold" (f"{fitted.threshold:.6f}": the servers read it) and the same lineage.
    #  Return TrainResult(run id, version number as str, fitted.metrics, fitted.threshold, the
    #  data fingerprint). Never move an alias: registering is not releasing.
    #  Written for you: log_frames({path: frame}) logs Parquet artifacts; model_requirements(
    #  fitted.flavour) pins the pip requirements (else MLflow spends ~15 s inferring them).
    #  Think about: the pipeline finds what a crashed attempt registered by searching *runs* for
    #  its pipeline_run_id; why keep the lineage on the run as well as on the version?
    raise NotImplementedError("TODO(lab-2): log the run and register the version")


# The reference's train (`fit`, then a log_and_register), with yours.
train = partial(reference.train, log_and_register=log_and_register)
