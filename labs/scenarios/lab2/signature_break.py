"""lab2/signature-break: a retrain that no longer accepts what serving sends is refused.

    make scenario S=lab2/signature-break [IMPL=exercises]

Upstream renames `device_os` to `device_platform`. The training pipeline's schema check refuses
the extract; someone "fixes" it by training without the column and registers that model by hand.
Its signature no longer matches the serving contract: the gate's schema check refuses it,
whatever its metrics, and @champion does not move.
"""

from __future__ import annotations

import dataclasses

import mlflow
import pandas as pd
from mlflow.models import infer_signature

from mlops_lab.data.generator import generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.scenarios import Context
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle.tracking import CHAMPION, client_for, ensure_experiment, version_by_alias
from mlops_lab.lifecycle.train import SKOPS_TRUSTED


def run(ctx: Context) -> None:
    gate, tracked = ctx.module("evaluation-gate"), ctx.module("tracked-run")
    s = ctx.settings = ctx.settings.model_copy(update={"tracking_uri": ctx.settings.mlflow_sqlite_uri})
    v1 = ctx.train_champion()
    renamed = generate("baseline", 6_000, seed=3).rename(columns={"device_os": "device_platform"})
    ctx.inject("upstream renames device_os -> device_platform in the training extract")
    try:
        tracked.train(s, renamed)
        refused = ""
    except ValueError as exc:
        refused = str(exc)
    ctx.check(bool(refused), f"the training pipeline refuses the extract: {refused[:110]}")

    narrow = dataclasses.replace(SCHEMA, features=tuple(f for f in SCHEMA.features if f.name != "device_os"))
    x, y = renamed[narrow.names], renamed[SCHEMA.label]
    pipeline = fraud_model.build_pipeline(fraud_model.Hyperparams(), schema=narrow).fit(x, y)
    with mlflow.start_run(experiment_id=ensure_experiment(client_for(s), s)):
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(
                x.head(5).astype({"account_age_days": float, "distance_from_home_km": float})
            ),
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED,
        )
    version = mlflow.register_model(info.model_uri, s.model_name).version
    ctx.symptom(f"v{version} registered by hand, trained without device_os")

    signature = mlflow.models.get_model_info(f"models:/{s.model_name}/{version}").signature
    columns = signature.inputs.input_names() if signature is not None else []
    holdout: pd.DataFrame = generate("baseline", 4_000, seed=4)
    threshold = fraud_model.budget_threshold(fraud_model.scores(pipeline, x), s.flag_budget)
    verdict = gate.evaluate(s, pipeline, threshold, holdout, signature_columns=columns)
    ctx.signal(f"gate: {verdict.summary()[:160]}")
    ctx.check(
        not verdict.passed and any("schema" in r for r in verdict.reasons), "the schema check refuses it"
    )
    current = version_by_alias(client_for(s), s.model_name, CHAMPION)
    ctx.check(current is not None and str(current.version) == v1, f"@champion stays on v{v1}")
    ctx.mitigate("the signature is the serving contract: check it at the gate, fix the rename upstream")
