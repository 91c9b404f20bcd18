"""Grader of lab 2 / alias-release (exercises/lab2/registry.py): promote and roll back by alias.

Uses a real MLflow registry (SQLite in a temp dir) with registered versions, and the real
prediction/audit store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

from mlops_lab.lifecycle.registry import NoSuchVersion, RegistryError, RegistryUnavailable
from mlops_lab.lifecycle.tracking import (
    CHALLENGER,
    CHAMPION,
    client_for,
    configure_mlflow_env,
    version_by_alias,
)
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

NAME = "fraud-detector"


class DownRegistry:
    """An MlflowClient whose server does not answer: every call fails, and not with 'not found'."""

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def fail(*args: Any, **kwargs: Any) -> Any:
            message = f"{method}: the registry did not answer"
            raise MlflowException(message, error_code=TEMPORARILY_UNAVAILABLE)

        return fail


class RefusingMoves:
    """A real MlflowClient whose alias moves fail: the registry answers reads, then errors on the
    write (a permission, a lock, an outage that starts between two calls)."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client

    def __getattr__(self, method: str) -> Any:
        return getattr(self.client, method)

    def set_registered_model_alias(self, *args: Any, **kwargs: Any) -> None:
        raise MlflowException("set_registered_model_alias: the registry refused", TEMPORARILY_UNAVAILABLE)


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


def move(store: Store, action: str, version: str, *, model: str = NAME, alias: str = CHAMPION) -> None:
    """An audit entry as set_alias writes it."""
    store.audit("grader", action, model=model, alias=alias, version=version, previous=None, reason="r")


@pytest.fixture(autouse=True)
def no_aliases(client: MlflowClient) -> None:
    for alias in (CHAMPION, CHALLENGER):
        if version_by_alias(client, NAME, alias) is not None:
            client.delete_registered_model_alias(NAME, alias)


def test_set_alias(impl: ModuleType, client: MlflowClient, store: Store) -> None:
    """promote moves @champion and returns where it pointed before"""
    first = promote(impl, client, store, "1")
    assert champion(client) == "1", f"expected @champion on version 1, got {champion(client)}"
    assert first is None, f"expected None as the previous target of a new alias, got {first!r}"
    second = promote(impl, client, store, "2")
    assert (champion(client), second) == ("2", "1"), (
        f"expected @champion 2 (was '1'), got {champion(client)} (was {second!r})"
    )


def test_unknown_version(impl: ModuleType, client: MlflowClient, store: Store) -> None:
    """promoting a version that does not exist raises NoSuchVersion and moves nothing

    Check before you move: require_version first, then the alias, then the audit entry.
    """
    promote(impl, client, store, "1")
    entries = len(store.audit_log())
    with pytest.raises(NoSuchVersion):
        promote(impl, client, store, "99")
    assert champion(client) == "1", f"expected @champion to stay on 1, got {champion(client)}"
    assert len(store.audit_log()) == entries, (
        f"expected no audit entry for a refused move, got {len(store.audit_log()) - entries}"
    )


def test_registry_down(impl: ModuleType, store: Store) -> None:
    """a registry that does not answer is RegistryUnavailable, never "no such version"

    require_version tells the two apart from MLflow's error code; catching every exception
    as "not found" is what this check refuses.
    """
    try:
        promote(impl, DownRegistry(), store, "1")
        got: str = "no exception"
    except RegistryUnavailable:
        got = "RegistryUnavailable"
    except Exception as exc:
        got = type(exc).__name__
    assert got == "RegistryUnavailable", f"expected RegistryUnavailable, got {got}"
    assert store.audit_log() == [], f"expected no audit entry, got {len(store.audit_log())}"


def test_failed_move_not_audited(impl: ModuleType, client: MlflowClient, store: Store) -> None:
    """a move the registry refuses leaves no audit entry

    Move, then audit: an entry must never claim a move that did not happen (rollback reads its
    history from these entries).
    """
    promote(impl, client, store, "1")
    entries = len(store.audit_log())
    with contextlib.suppress(Exception):  # the refusal may reach the caller as it is, or wrapped
        promote(impl, RefusingMoves(client), store, "2")
    assert champion(client) == "1", f"expected @champion to stay on 1, got {champion(client)}"
    extra = store.audit_log()[entries:]
    assert not extra, f"expected no audit entry for a move that failed, got {[e['action'] for e in extra]}"


def test_audited(impl: ModuleType, client: MlflowClient, store: Store) -> None:
    """every move is in the audit log with actor, action, reason, version and previous version"""
    promote(impl, client, store, "1")
    promote(impl, client, store, "2")
    moves = store.audit_log()
    assert len(moves) == 2, f"expected 2 audit entries for 2 promotions, got {len(moves)}"
    last = moves[-1]
    d = last["details"]
    got = (last["actor"], last["action"])
    assert got == ("grader", "promote"), f"expected actor 'grader', action 'promote', got {got}"
    got = (d.get("model"), d.get("alias"), str(d.get("version")), str(d.get("previous")), d.get("reason"))
    assert got == (NAME, CHAMPION, "2", "1", "promote 2"), (
        f"expected model/alias/version/previous/reason {(NAME, CHAMPION, '2', '1', 'promote 2')}, got {got}"
    )


def test_rollback(impl: ModuleType, client: MlflowClient, store: Store) -> None:
    """promote 1, 2, 3 then rollback twice: @champion goes to 2, then to 1, audited"""
    for v in ("1", "2", "3"):
        promote(impl, client, store, v)
    got = (str(rollback(impl, client, store)), champion(client))
    assert got == ("2", "2"), f"expected the first rollback to return 2 and move @champion to 2, got {got}"
    got = (str(rollback(impl, client, store)), champion(client))
    assert got == ("1", "1"), f"expected the second rollback to return 1 and move @champion to 1, got {got}"
    rollbacks = [e for e in store.audit_log() if e["action"] == "rollback"]
    assert len(rollbacks) == 2, f"expected 2 audit entries with action 'rollback', got {len(rollbacks)}"


def test_rollback_skips_a_rolled_back_version(impl: ModuleType, client: MlflowClient, store: Store) -> None:
    """promote 1, 2, rollback, promote 3, rollback: back to 1, never to the bad 2"""
    promote(impl, client, store, "1")
    promote(impl, client, store, "2")
    rollback(impl, client, store)
    promote(impl, client, store, "3")
    got = (str(rollback(impl, client, store)), champion(client))
    assert got == ("1", "1"), f"expected a rollback from 3 to 1 (2 was rolled back), got {got}"


def test_nothing_to_roll_back(impl: ModuleType, client: MlflowClient, store: Store) -> None:
    """rollback without a champion, or an earlier one, is a RegistryError saying which, and moves nothing

    Check both before calling set_alias: a RegistryError of your own for each case, with its own
    message. Neither is NoSuchVersion or RegistryUnavailable: no version was asked of the registry.
    """
    with pytest.raises(RegistryError) as no_champion:
        rollback(impl, client, store)
    promote(impl, client, store, "1")
    entries = len(store.audit_log())
    with pytest.raises(RegistryError) as no_earlier:
        rollback(impl, client, store)
    assert champion(client) == "1", f"expected @champion to stay on 1, got {champion(client)}"
    assert len(store.audit_log()) == entries, "expected no audit entry for a refused rollback, got one"
    for case, exc in (("no champion", no_champion.value), ("no earlier champion", no_earlier.value)):
        assert not isinstance(exc, NoSuchVersion | RegistryUnavailable), (
            f"expected a RegistryError saying {case}, got {type(exc).__name__}: {exc}"
        )
    got = (str(no_champion.value), str(no_earlier.value))
    assert got[0] != got[1], f"expected different messages for no champion and no earlier champion, got {got}"


def test_only_champion_moves(impl: ModuleType, store: Store) -> None:
    """previous_champion reads only this model's @champion moves

    Filter on details["model"] and details["alias"] with .get(): some entries have neither.
    """
    move(store, "promote", "1")
    move(store, "stage", "4", alias=CHALLENGER)
    move(store, "set_alias", "4", alias=CHALLENGER)
    move(store, "promote", "5", model="another-model")
    move(store, "promote.requested", "6")  # names this model's @champion, but is not a move
    store.audit("controller", "canary.step", version="4", weight=25, reason="canary at 25%")
    move(store, "promote", "2")
    got = impl.previous_champion(store, NAME, "2")
    assert str(got) == "1", f"expected 1 before 2 (the other entries are not @champion moves), got {got!r}"


def test_set_alias_counts(impl: ModuleType, store: Store) -> None:
    """a set_alias move of @champion counts as a champion, like a promote

    Every action of ALIAS_MOVES pushes, except "rollback".
    """
    move(store, "promote", "1")
    move(store, "set_alias", "2")
    move(store, "promote", "3")
    got = impl.previous_champion(store, NAME, "3")
    assert str(got) == "2", f"expected 2 before 3 (moved there by set_alias), got {got!r}"


def test_rollback_pops_down(impl: ModuleType, store: Store) -> None:
    """a rollback pops the stack down to the version it rolled back to

    promote 1, 2, 3, a rollback to 1 (two steps at once), promote 4: the one before 4 is 1, as
    neither 2 nor 3 is champion any more. Pop while the top is not the rollback's version.
    """
    for v in ("1", "2", "3"):
        move(store, "promote", v)
    move(store, "rollback", "1")
    move(store, "promote", "4")
    got = impl.previous_champion(store, NAME, "4")
    assert str(got) == "1", f"expected 1 before 4 (2 and 3 were rolled back from), got {got!r}"


def test_promoted_twice(impl: ModuleType, store: Store) -> None:
    """a version promoted twice in a row is one champion: the one before it is the one before that

    Take `current` off the top of the stack as long as it is there, not once.
    """
    move(store, "promote", "1")
    move(store, "promote", "2")
    move(store, "promote", "2")  # a pipeline re-run, a retry
    got = impl.previous_champion(store, NAME, "2")
    assert str(got) == "1", f"expected 1 before 2 (promoted twice), got {got!r}"
