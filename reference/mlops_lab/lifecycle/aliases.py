"""The registry's names and where it lives, without importing MLflow (the model server's path).

    python -c "from mlops_lab.lifecycle.aliases import resolve_tracking_uri; \
from mlops_lab.settings import get_settings; print(resolve_tracking_uri(get_settings()))"

Tracking URI: the explicit setting, else the local MLflow server when it answers, else
`sqlite:///$MLOPS_HOME/mlflow/mlflow.db` (serverless works for the registry and aliases).
`mlops_lab.lifecycle.tracking` re-exports all of this next to the helpers that need MLflow.
"""

from __future__ import annotations

import os

import httpx

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


def is_database_uri(uri: str) -> bool:
    """True for a serverless tracking URI (a database named directly, e.g. sqlite:///...)."""
    return uri.split(":", 1)[0].split("+", 1)[0] in DATABASE_SCHEMES


def threshold_of(version_tags: dict[str, str]) -> float:
    """A version's decision threshold (its `decision_threshold` tag; 0.5 when it has none)."""
    return float(version_tags.get("decision_threshold", 0.5))
