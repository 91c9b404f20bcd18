"""Shared fixtures: a trained registry (serverless MLflow on SQLite), free ports, settings.

The expensive things (training, an MLflow server process) are session-scoped so the whole
suite pays for them once. Everything writes under pytest's tmp dirs, never under var/.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_lab.data.generator import generate
from mlops_lab.lifecycle.release import train_and_release
from mlops_lab.lifecycle.tracking import configure_mlflow_env
from mlops_lab.runtime.supervisor import Supervisor, mlflow_spec
from mlops_lab.settings import Settings

os.environ.setdefault("OMP_NUM_THREADS", "1")
configure_mlflow_env()

TRAIN_ROWS = 12_000


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
