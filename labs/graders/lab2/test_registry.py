"""Grader of lab 2 / alias-release (exercises/lab2/registry.py): promote and roll back by alias.

Uses a real MLflow registry (SQLite in a temp dir) with registered versions, and the real
prediction/audit store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from mlflow import MlflowClient

from mlops_lab.lifecycle.tracking import CHAMPION, client_for, configure_mlflow_env, version_by_alias
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

NAME = "fraud-detector"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    configure_mlflow_env()
    home = tmp_path_factory.mktemp("lab2-registry")
    settings = Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    c = client_for(settings)
    c.create_registered_model(NAME)
    source = home / "artifact"
    source.mkdir()
    for _ in range(4):
        c.create_model_version(NAME, source=str(source))
    return c


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.dispose()


def champion(client: MlflowClient) -> str | None:
    mv = version_by_alias(client, NAME, CHAMPION)
    return str(mv.version) if mv is not None else None


def promote(impl: ModuleType, client: MlflowClient, store: Store, version: str) -> Any:
    return impl.promote(client, store, NAME, version, actor="grader", reason=f"promote {version}")


def rollback(impl: ModuleType, client: MlflowClient, store: Store) -> Any:
    return impl.rollback(client, store, NAME, actor="grader", reason="bad canary")


@pytest.fixture(autouse=True)
def no_champion(client: MlflowClient) -> None:
    if champion(client) is not None:
        client.delete_registered_model_alias(NAME, CHAMPION)


def test_set_alias(impl: ModuleType, client: MlflowClient, store: Store) -> None:
    """promote moves @champion and returns where it pointed before"""
    first = promote(impl, client, store, "1")
    assert champion(client) == "1", f"expected @champion on version 1, got {champion(client)}"
    assert first is None, f"expected None as the previous target of a new alias, got {first!r}"
    second = promote(impl, client, store, "2")
    assert (champion(client), second) == ("2", "1"), (
        f"expected @champion 2 (was 1), got {champion(client)}, {second}"
    )


def test_unknown_version(impl: ModuleType, client: MlflowClient, store: Store) -> None:
    """promoting a version that does not exist is a RegistryError and moves nothing"""
    promote(impl, client, store, "1")
    with pytest.raises(impl.RegistryError):
        promote(impl, client, store, "99")
    assert champion(client) == "1", f"expected @champion to stay on 1, got {champion(client)}"


def test_audited(impl: ModuleType, client: MlflowClient, store: Store) -> None:
    """every move is in the audit log with actor, reason, version and previous version"""
    promote(impl, client, store, "1")
    promote(impl, client, store, "2")
    moves = [e for e in store.audit_log() if e["action"] == "promote"]
    assert len(moves) == 2, f"expected 2 audited promotions, found {len(moves)}"
    last = moves[-1]
    d = last["details"]
    assert last["actor"] == "grader", f"expected actor 'grader', got {last['actor']!r}"
    got = (d.get("model"), d.get("alias"), str(d.get("version")), str(d.get("previous")), d.get("reason"))
    assert got == (NAME, CHAMPION, "2", "1", "promote 2"), (
        f"expected model/alias/version/previous/reason, got {got}"
    )


def test_rollback(impl: ModuleType, client: MlflowClient, store: Store) -> None:
    """promote 1, 2, 3 then rollback twice: @champion goes to 2, then to 1, audited"""
    for v in ("1", "2", "3"):
        promote(impl, client, store, v)
    assert str(rollback(impl, client, store)) == "2" and champion(client) == "2", (
        "expected the first rollback to 2"
    )
    assert str(rollback(impl, client, store)) == "1" and champion(client) == "1", (
        "expected the second rollback to 1"
    )
    rollbacks = [e for e in store.audit_log() if e["action"] == "rollback"]
    assert len(rollbacks) == 2, f"expected 2 audited rollbacks, found {len(rollbacks)}"


def test_rollback_skips_a_rolled_back_version(impl: ModuleType, client: MlflowClient, store: Store) -> None:
    """promote 1, 2, rollback, promote 3, rollback: back to 1, never to the bad 2"""
    promote(impl, client, store, "1")
    promote(impl, client, store, "2")
    rollback(impl, client, store)
    promote(impl, client, store, "3")
    got = str(rollback(impl, client, store))
    assert got == "1" and champion(client) == "1", (
        f"expected a rollback from 3 to 1 (2 was rolled back), got {got}"
    )


def test_nothing_to_roll_back(impl: ModuleType, client: MlflowClient, store: Store) -> None:
    """rollback without an earlier champion is a RegistryError, not a crash"""
    with pytest.raises(impl.RegistryError):
        rollback(impl, client, store)
    promote(impl, client, store, "1")
    with pytest.raises(impl.RegistryError):
        rollback(impl, client, store)
    assert champion(client) == "1", "expected @champion to stay on 1"
