"""The model server's fast start: a version served from its serving spec over the MLflow server's
REST API, and every case that must fall back to loading the pipeline through MLflow.

    .venv/bin/pytest -p no:cacheprovider tests/system/test_serving_spec.py -q

A real `mlflow server` (the session's `mlflow_server` fixture) and real model versions; the
fallback cases are versions of a model of their own, made from v1's logged model with their
tags changed (an older version has no spec; a spec can be tampered with or missing).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle.rest_registry import RestRegistry
from mlops_lab.lifecycle.scorer import SPEC_TAG, LinearScorer
from mlops_lab.lifecycle.tracking import client_for
from mlops_lab.runtime.supervisor import Supervisor, server_spec
from mlops_lab.serving.holder import LoadError, ModelHolder, load_version
from mlops_lab.settings import Settings

from ..conftest import GOOD, free_port


def _copy_of_v1(settings: Settings, tags: dict[str, str | None]) -> Settings:
    """Settings for a new registered model whose v1 is the shared v1's logged model with `tags`
    changed (None removes a tag), aliased @champion."""
    client = client_for(settings)
    source = client.get_model_version(settings.model_name, "1")
    name = f"spec-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    merged = {k: v for k, v in {**source.tags, **tags}.items() if v is not None}
    client.create_model_version(
        name,
        source.source,
        run_id=source.run_id,
        tags=merged,
        model_id=source.model_id or source.source.removeprefix("models:/"),
    )
    client.set_registered_model_alias(name, "champion", "1")
    return settings.model_copy(update={"model_name": name})


def _pipeline(settings: Settings) -> Any:
    client_for(settings)
    return mlflow.sklearn.load_model(f"models:/{settings.model_name}/1")


def test_a_version_with_a_spec_is_served_from_it(mlflow_server: Settings) -> None:
    loaded = load_version(mlflow_server, "champion")
    assert (loaded.built_from, loaded.pipeline, loaded.scorer_kind) == ("spec", None, "compiled")
    assert isinstance(loaded.compiled, LinearScorer) and loaded.version == "1" and loaded.run_id
    pipeline = _pipeline(mlflow_server)
    frame = features_only(generate("missing_values", 300, seed=12))
    expected = fraud_model.scores(pipeline, frame)
    rows = frame.to_dict("records")
    np.testing.assert_allclose(loaded.score_many(rows), expected, rtol=0, atol=1e-9)  # type: ignore[arg-type]
    columns = {n: frame[n].to_numpy() for n in SCHEMA.names}
    np.testing.assert_allclose(loaded.score_columns(columns), expected, rtol=0, atol=1e-9)
    tags = client_for(mlflow_server).get_model_version(mlflow_server.model_name, "1").tags
    assert loaded.threshold == pytest.approx(float(tags["decision_threshold"]))


def test_loading_from_the_spec_imports_neither_mlflow_nor_sklearn(mlflow_server: Settings) -> None:
    code = (
        "import sys; from mlops_lab.settings import get_settings; "
        "from mlops_lab.serving.holder import load_version; "
        "m = load_version(get_settings(), 'champion'); "
        "heavy = [n for n in ('mlflow', 'sklearn', 'scipy', 'pandas') if n in sys.modules]; "
        "print(m.built_from, heavy)"
    )
    env = {"MLOPS_TRACKING_URI": mlflow_server.mlflow_server_uri, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "spec []", out.stdout + out.stderr


def test_a_server_process_serves_the_spec(mlflow_server: Settings, tmp_path: Path) -> None:
    s = mlflow_server.model_copy(update={"home": tmp_path, "stable_port": free_port(), "store_url": None})
    sup = Supervisor(s)
    try:
        sup.start(server_spec(s, "stable"))
        base = f"http://{s.host}:{s.stable_port}"
        with httpx.Client(base_url=base, timeout=10) as c:
            for _ in range(100):
                if c.get("/readyz").status_code == 200:
                    break
                time.sleep(0.1)
            info = c.get("/v1/model").json()
            assert (info["built_from"], info["scorer"], info["version"]) == ("spec", "compiled", "1"), info
            score = c.post("/v1/predict", json=GOOD).json()["score"]
        want = fraud_model.scores(_pipeline(mlflow_server), pd.DataFrame([GOOD], columns=SCHEMA.names))[0]
        assert score == pytest.approx(want, abs=1e-9)
    finally:
        sup.stop_all()


def test_an_older_version_without_a_spec_loads_the_pipeline(mlflow_server: Settings) -> None:
    loaded = load_version(_copy_of_v1(mlflow_server, {SPEC_TAG: None}), "champion")
    assert (
        loaded.built_from == "pipeline" and loaded.pipeline is not None and loaded.scorer_kind == "compiled"
    )


def test_a_spec_that_fails_parity_loads_the_pipeline(mlflow_server: Settings) -> None:
    client = client_for(mlflow_server)
    mv = client.get_model_version(mlflow_server.model_name, "1")
    with RestRegistry(mlflow_server.mlflow_server_uri) as rest:
        spec = json.loads(rest.artifact_bytes(mv.tags[SPEC_TAG]))
    spec["parity"]["scores"][0] += 1e-4  # a server whose scorer code drifted from training's
    client.log_text(mv.run_id, json.dumps(spec), "serving/tampered.json")
    tampered = client.get_run(mv.run_id).info.artifact_uri + "/serving/tampered.json"
    loaded = load_version(_copy_of_v1(mlflow_server, {SPEC_TAG: tampered}), "champion")
    assert loaded.built_from == "pipeline" and loaded.scorer_kind == "compiled"


def test_a_model_file_unlike_the_one_training_logged_fails_the_load(mlflow_server: Settings) -> None:
    """Fault: the model file was damaged or replaced after training. Required: a failed load that
    says so (the holder keeps the old model), not a spec served for a model that is not there."""
    client = client_for(mlflow_server)
    mv = client.get_model_version(mlflow_server.model_name, "1")
    with RestRegistry(mlflow_server.mlflow_server_uri) as rest:
        spec = json.loads(rest.artifact_bytes(mv.tags[SPEC_TAG]))
    spec["model_file"]["sha256"] = "0" * 64
    client.log_text(mv.run_id, json.dumps(spec), "serving/other-digest.json")
    uri = client.get_run(mv.run_id).info.artifact_uri + "/serving/other-digest.json"
    holder = ModelHolder(_copy_of_v1(mlflow_server, {SPEC_TAG: uri}), "champion")
    assert holder.refresh() is False and holder.current is None and holder.load_failures == 1
    assert holder.last_error is not None and holder.last_error.startswith("ArtifactMismatch: v1: model file")


def test_a_missing_spec_or_the_torch_flavour_loads_the_pipeline(mlflow_server: Settings) -> None:
    mv = client_for(mlflow_server).get_model_version(mlflow_server.model_name, "1")
    missing = mv.tags[SPEC_TAG].replace("scorer.json", "nothing-here.json")
    assert load_version(_copy_of_v1(mlflow_server, {SPEC_TAG: missing}), "champion").built_from == "pipeline"
    torch = _copy_of_v1(mlflow_server, {"model_flavour": "torch"})
    assert load_version(torch, "champion").built_from == "pipeline"


def test_a_serverless_registry_loads_the_pipeline(registry: Settings) -> None:
    tags = client_for(registry).get_model_version(registry.model_name, "1").tags
    assert SPEC_TAG in tags  # training logged a spec there too; only a server's REST API reads it
    assert load_version(registry, "champion").built_from == "pipeline"


def test_a_pinned_version_over_rest(mlflow_server: Settings) -> None:
    assert load_version(mlflow_server.model_copy(update={"serve_version": "1"}), "challenger").version == "1"
    with pytest.raises(LoadError, match="no version 99"):
        load_version(mlflow_server.model_copy(update={"serve_version": "99"}), "champion")
    with pytest.raises(LoadError, match="alias @nobody"):
        load_version(mlflow_server, "nobody")


def test_registry_down_is_not_ready_with_the_reason(mlflow_server: Settings) -> None:
    down = mlflow_server.model_copy(update={"tracking_uri": f"http://127.0.0.1:{free_port()}"})
    holder = ModelHolder(down, "champion")
    assert holder.refresh() is False and holder.current is None and holder.load_failures == 1
    assert holder.not_ready_reason is not None and holder.not_ready_reason.startswith(
        "no model loaded: ConnectError"
    )
