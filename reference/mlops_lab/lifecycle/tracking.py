"""Where MLflow lives, and the small registry helpers every component shares.

    python -c "from mlops_lab.lifecycle.tracking import resolve_tracking_uri; \
from mlops_lab.settings import get_settings; print(resolve_tracking_uri(get_settings()))"

Tracking URI: the explicit setting, else the local MLflow server when it answers, else
`sqlite:///$MLOPS_HOME/mlflow/mlflow.db` (serverless works for the registry and aliases).
"""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

# The names and URI helpers live in `aliases` (no MLflow import, for the model server); they are
# re-exported here, where every other component has always found them.
from mlops_lab.lifecycle.aliases import (
    CHALLENGER,
    CHAMPION,
    DATABASE_SCHEMES,
    configure_mlflow_env,
    is_database_uri,
    resolve_tracking_uri,
    server_is_up,
)
from mlops_lab.settings import Settings

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DATABASE_SCHEMES",
    "client_for",
    "configure_mlflow_env",
    "ensure_experiment",
    "resolve_tracking_uri",
    "server_is_up",
    "version_by_alias",
]


def client_for(settings: Settings) -> MlflowClient:
    """A client for the resolved URI. Also sets MLflow's process-global URIs to the same place,
    because model loading and artifact downloads (`mlflow.sklearn.load_model`) read those."""
    uri = resolve_tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client: MlflowClient, settings: Settings) -> str:
    """The experiment id, creating it if needed.

    Through the server, artifacts are proxied (`mlflow-artifacts:/`); serverless (a database
    URI: SQLite, or Postgres in tests/system/test_postgres.py), they go to a local folder rather than
    MLflow's default `./mlruns` under whatever the working directory is. Both end up under
    home/mlflow/artifacts on this machine.
    """
    exp = client.get_experiment_by_name(settings.experiment_name)
    if exp is not None:
        return str(exp.experiment_id)
    location = None
    if is_database_uri(client.tracking_uri):
        location = settings.mlflow_artifacts_dir.as_uri()
    return str(client.create_experiment(settings.experiment_name, artifact_location=location))


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version behind `alias`, or None when the alias (or the model) does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
