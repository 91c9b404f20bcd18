"""Where MLflow lives, and the small registry helpers every component shares.

    python -c "from mlops_lab.lifecycle.tracking import resolve_tracking_uri; \
from mlops_lab.settings import get_settings; print(resolve_tracking_uri(get_settings()))"

Tracking URI: the explicit setting, else the local MLflow server when it answers, else
`sqlite:///$MLOPS_HOME/mlflow/mlflow.db` (serverless works for the registry and aliases).
"""

from __future__ import annotations

import os

import httpx
import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mlops_lab.settings import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
# Tracking URIs that name a database directly (serverless), as SQLAlchemy spells them.
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def configure_mlflow_env() -> None:
    """Fail fast instead of MLflow's default minutes of retries; no telemetry. Call from entry points."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def server_is_up(settings: Settings, timeout_s: float = 0.5) -> bool:
    try:
        return httpx.get(f"{settings.mlflow_server_uri}/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def resolve_tracking_uri(settings: Settings) -> str:
    if settings.tracking_uri:
        return settings.tracking_uri
    if server_is_up(settings):
        return settings.mlflow_server_uri
    settings.ensure_dirs()
    return settings.mlflow_sqlite_uri


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
    if client.tracking_uri.split(":", 1)[0].split("+", 1)[0] in DATABASE_SCHEMES:
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
