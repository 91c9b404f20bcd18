"""MLflow's backend store on Postgres, the way the cluster path runs it.

A registry round-trip (experiment, run, model version, alias, load through the serving holder)
against a fresh Postgres database, twice: serverless (the `postgresql+psycopg://` URI as the
tracking URI: MLflow's SQLAlchemy store with psycopg 3, no psycopg2) and through a real
`mlflow server --backend-store-uri postgresql+psycopg://...` process. The audit log of the alias
move goes to a Postgres store too. Needs MLOPS_TEST_POSTGRES_URL (.ci/run sets it); without it
these tests skip, except under CI.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
import sqlalchemy as sa

from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle import registry
from mlops_lab.lifecycle.tracking import client_for, ensure_experiment
from mlops_lab.lifecycle.train import SKOPS_TRUSTED
from mlops_lab.runtime.supervisor import ProcessSpec, Supervisor
from mlops_lab.serving.holder import load_version
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store, metadata, utcnow

from ..conftest import free_port, make_settings, needs_postgres

pytestmark = [needs_postgres]


def round_trip(s: Settings, store: Store) -> str:
    """Log, register, promote and load one version; returns the version."""
    client = client_for(s)
    experiment_id = ensure_experiment(client, s)
    data = generate("baseline", 3_000, seed=5)
    pipeline = fraud_model.build_pipeline(fraud_model.Hyperparams()).fit(
        data[SCHEMA.names], data[SCHEMA.label]
    )
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params({"C": 1.0, "rows": len(data)})
        mlflow.log_metric("pr_auc", 0.21)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED,
            pip_requirements=["scikit-learn"],  # skips MLflow's requirement inference (~15 s)
        )
    version = str(mlflow.register_model(info.model_uri, s.model_name).version)
    client.set_model_version_tag(s.model_name, version, "decision_threshold", "0.3")
    registry.promote(client, store, s.model_name, version, actor="tests", reason="postgres round trip")

    got = client.get_run(run.info.run_id).data
    assert got.params["rows"] == "3000" and got.metrics["pr_auc"] == 0.21
    loaded = load_version(s, "champion")  # the serving path: alias -> version -> skops -> compiled
    assert (loaded.version, loaded.threshold, loaded.scorer_kind) == (version, 0.3, "compiled")
    rows = features_only(generate("baseline", 5, seed=6))
    expected = fraud_model.scores(pipeline, rows)
    assert loaded.score_many(rows.to_dict("records")) == pytest.approx(list(expected), abs=1e-9)
    assert registry.champion_at(store, s.model_name, utcnow()) == version
    return version


def registry_rows(url: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """What MLflow wrote, read straight from Postgres: (versions, aliases)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(sa.text("select name, version from model_versions")).all()
            aliases = conn.execute(sa.text("select alias, version from registered_model_aliases")).all()
        return [tuple(r) for r in versions], [tuple(r) for r in aliases]  # type: ignore[misc]
    finally:
        engine.dispose()


@pytest.fixture
def pg_store(postgres_database: Callable[[str], str]) -> Store:
    return Store(postgres_database("mlops_audit"))


def test_serverless_registry_round_trip_on_postgres(
    postgres_database: Callable[[str], str], pg_store: Store, tmp_path: Path
) -> None:
    url = postgres_database("mlops_mlflow")
    s = make_settings(tmp_path, tracking_uri=url, store_url=pg_store.url)
    try:
        version = round_trip(s, pg_store)
    finally:
        metadata.drop_all(pg_store.engine)
        pg_store.dispose()
    assert registry_rows(url) == ([(s.model_name, int(version))], [("champion", int(version))])
    # Artifacts go under home, not into ./mlruns of whatever the working directory is.
    experiment = client_for(s).get_experiment_by_name(s.experiment_name)
    assert experiment is not None and experiment.artifact_location == s.mlflow_artifacts_dir.as_uri()
    assert any(s.mlflow_artifacts_dir.rglob("model.skops"))


def test_mlflow_server_on_postgres(
    postgres_database: Callable[[str], str], pg_store: Store, tmp_path: Path
) -> None:
    url = postgres_database("mlops_mlflow_server")
    s = make_settings(tmp_path, mlflow_port=free_port(), store_url=pg_store.url)
    s.ensure_dirs()
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", url]
    argv += ["--artifacts-destination", str(s.mlflow_artifacts_dir), "--host", s.host]
    argv += ["--port", str(s.mlflow_port), "--workers", "1"]
    sup = Supervisor(s)
    sup.start(ProcessSpec("mlflow", argv, f"{s.mlflow_server_uri}/health", s.mlflow_port))
    try:
        version = round_trip(s.model_copy(update={"tracking_uri": s.mlflow_server_uri}), pg_store)
    finally:
        sup.stop_all()
        metadata.drop_all(pg_store.engine)
        pg_store.dispose()
    assert registry_rows(url) == ([(s.model_name, int(version))], [("champion", int(version))])
