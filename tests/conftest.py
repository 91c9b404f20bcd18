"""Shared fixtures: a trained registry (serverless MLflow on SQLite), free ports, settings.

The folder a test lives in says what it may use, and becomes its marker (`-m unit`, ...):
  unit/    no servers, no network, nothing started in the background: in-process code, the
           real libraries (MLflow on SQLite, Evidently, FastAPI's TestClient) and offline
           checkers (kustomize, promtool, shellcheck). `make test-fast` runs these.
  system/  real processes talking over loopback: an MLflow server, uvicorn, locust, Airflow,
           Postgres, the CLI as a subprocess, the labs' graders.
  e2e/     the whole story and what a learner reads: the demo, the notebooks, the docs site
           in a browser.
No test depends on another having run first: each module-scoped system is put back in shape
before every test that uses it.

The expensive things (training, an MLflow server process) are session-scoped so the whole
suite pays for them once. Everything writes under pytest's tmp dirs, never under var/.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mlops_lab.data.generator import generate
from mlops_lab.lifecycle.release import train_and_release
from mlops_lab.lifecycle.tracking import configure_mlflow_env
from mlops_lab.runtime.supervisor import Supervisor, mlflow_spec
from mlops_lab.serving.schemas import EXAMPLE_REQUEST
from mlops_lab.settings import Settings

os.environ.setdefault("OMP_NUM_THREADS", "1")
configure_mlflow_env()

TRAIN_ROWS = 12_000
TESTS = Path(__file__).resolve().parent
KINDS = ("unit", "system", "e2e")
GOOD: dict[str, Any] = {k: v for k, v in EXAMPLE_REQUEST.items() if k != "card_id"}  # one valid request
TOKEN = {"authorization": "Bearer change-me-local-only"}  # the default admin token


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the folder it lives in (unit, system, e2e)."""
    for item in items:
        kind = item.path.relative_to(TESTS).parts[0]
        assert kind in KINDS, f"{item.nodeid}: tests live in one of tests/{{{','.join(KINDS)}}}/"
        item.add_marker(getattr(pytest.mark, kind))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_settings(home: Path, **overrides: object) -> Settings:
    """Settings isolated under `home`, with free ports (tests may run beside a live `make demo`)."""
    base: dict[str, object] = {
        "home": home,
        "mlflow_port": free_port(),
        "stable_port": free_port(),
        "canary_port": free_port(),
        "router_port": free_port(),
        "monitor_port": free_port(),
        "controller_port": free_port(),
        "prometheus_port": free_port(),
        "reload_poll_s": 0.5,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A serverless registry (SQLite) with v1 trained on baseline data and promoted to @champion."""
    home = tmp_path_factory.mktemp("registry")
    s = make_settings(home)
    s = s.model_copy(update={"tracking_uri": s.mlflow_sqlite_uri})
    rel = train_and_release(
        s, generate("baseline", TRAIN_ROWS, seed=1), promote=True, actor="tests", reason="fixture"
    )
    assert rel.promoted, rel.verdict.summary()
    return s


@pytest.fixture
def serving_settings(registry: Settings, tmp_path: Path) -> Settings:
    """The shared registry, with a fresh prediction store per test."""
    return registry.model_copy(update={"store_url": f"sqlite:///{tmp_path / 'store.db'}"})


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A real `mlflow server` process with v1 promoted through it. Stopped at the end."""
    s = make_settings(tmp_path_factory.mktemp("server"))
    sup = Supervisor(s)
    sup.start(mlflow_spec(s))
    try:
        s = s.model_copy(update={"tracking_uri": s.mlflow_server_uri})
        rel = train_and_release(
            s, generate("baseline", TRAIN_ROWS, seed=2), promote=True, actor="tests", reason="fixture"
        )
        assert rel.promoted, rel.verdict.summary()
        yield s
    finally:
        sup.stop_all()


# --- Postgres, the backend of the cluster path: the store and MLflow tests run against the server
# at MLOPS_TEST_POSTGRES_URL (a database the role may CREATE DATABASE from; .ci/run starts one).
# Without it they skip, except under CI, where they must not.
POSTGRES_URL = os.environ.get("MLOPS_TEST_POSTGRES_URL")
NO_POSTGRES = "no Postgres URL (set MLOPS_TEST_POSTGRES_URL; .ci/run starts one)"
needs_postgres = pytest.mark.skipif(not POSTGRES_URL and not os.environ.get("CI"), reason=NO_POSTGRES)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[Callable[[str], str]]:
    """`new(prefix)` -> the URL of a fresh database; every one is dropped when the session ends,
    so re-runs start clean. Each database's default time zone is not UTC on purpose: code that
    assumes the server runs in UTC fails here rather than in a cluster."""
    assert POSTGRES_URL, f"Postgres is required in CI: {NO_POSTGRES}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def new(prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            conn.execute(sa.text(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/New_York'"))
        made.append(name)
        return sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    try:
        yield new
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
