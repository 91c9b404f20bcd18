"""Registry operations by alias, each written to the audit log with who and why.

    mlops-lab registry list | promote V | rollback | history

Stages are deprecated in MLflow; this project uses aliases only: `champion` is what the
stable server serves, `challenger` what the canary serves. "Which version was champion at
time T" is answered from the audit log (`champion_at`), not from MLflow, which keeps only
the current alias target.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlops_lab.errors import UserError
from mlops_lab.lifecycle.tracking import CHAMPION, version_by_alias
from mlops_lab.store.db import Store

ALIAS_MOVES = ("promote", "rollback", "set_alias")


class RegistryError(UserError):
    """A registry operation that cannot proceed; the message is for the user."""


class NoSuchVersion(RegistryError):
    """The registry answered: this model has no such version."""


class RegistryUnavailable(RegistryError):
    """The registry could not answer (unreachable, erroring): nothing is known about the version."""


# What MLflow answers for a version that does not exist (or is not a version number at all).
NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


@dataclass(frozen=True)
class VersionRow:
    version: str
    aliases: list[str]
    created: datetime
    run_id: str | None
    tags: dict[str, str]


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def list_versions(client: MlflowClient, name: str) -> list[VersionRow]:
    versions = client.search_model_versions(f"name = '{name}'")
    aliases: dict[str, list[str]] = {}
    if versions:  # search results do not carry aliases; the registered model does
        for alias, version in client.get_registered_model(name).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
    rows = [
        VersionRow(
            str(v.version),
            sorted(aliases.get(str(v.version), [])),
            datetime.fromtimestamp(v.creation_timestamp / 1000),
            v.run_id,
            dict(v.tags or {}),
        )
        for v in versions
    ]
    return sorted(rows, key=lambda r: int(r.version))


# --8<-- [start:set_alias]
def set_alias(
    client: MlflowClient,
    store: Store,
    name: str,
    alias: str,
    version: str,
    *,
    actor: str,
    reason: str,
    action: str,
) -> str | None:
    """Point `alias` at `version`; returns the previous target. Audited."""
    require_version(client, name, version)
    current = version_by_alias(client, name, alias)
    previous = str(current.version) if current is not None else None
    client.set_registered_model_alias(name, alias, version)
    store.audit(actor, action, model=name, alias=alias, version=version, previous=previous, reason=reason)
    return previous


# --8<-- [end:set_alias]


def require_version(client: MlflowClient, name: str, version: str) -> None:
    """Raise NoSuchVersion unless `name` has `version`; RegistryUnavailable when the registry
    cannot tell (down, erroring): "no such version" must never hide an outage."""
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND:
            raise NoSuchVersion(f"{name} has no version {version}") from exc
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RegistryUnavailable(f"the registry could not look up {name} v{version}: {first}") from exc


def promote(
    client: MlflowClient,
    store: Store,
    name: str,
    version: str,
    *,
    actor: str,
    reason: str,
    set_alias: Callable[..., str | None] = set_alias,
) -> str | None:
    """Point @champion at `version` with `set_alias` (lab 2 passes the learner's); audited as "promote"."""
    return set_alias(client, store, name, CHAMPION, version, actor=actor, reason=reason, action="promote")


def rollback(client: MlflowClient, store: Store, name: str, *, actor: str, reason: str) -> str:
    """Return `champion` to the version it pointed at before the current one. Returns that version."""
    current = version_by_alias(client, name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back")
    target = previous_champion(store, name, str(current.version))
    if target is None:
        raise RegistryError(f"no earlier champion than version {current.version} in the audit log")
    set_alias(client, store, name, CHAMPION, target, actor=actor, reason=reason, action="rollback")
    return target


def champion_timeline(store: Store, name: str) -> list[tuple[datetime, str]]:
    """(time, version) for every move of `champion`, oldest first."""
    return [
        (e["ts"], str(e["details"]["version"]))
        for e in store.audit_log()
        if e["action"] in ALIAS_MOVES
        and e["details"].get("model") == name
        and e["details"].get("alias") == CHAMPION
    ]


# --8<-- [start:previous_champion]
def previous_champion(store: Store, name: str, current: str) -> str | None:
    """The champion before the current one, skipping versions that were rolled back from.

    Walks the timeline as a stack: a promote pushes, a rollback pops. So promote 1, 2, 3 then
    rollback gives 2, and a second rollback gives 1.
    """
    stack: list[str] = []
    for entry in store.audit_log():
        d = entry["details"]
        if d.get("model") != name or d.get("alias") != CHAMPION:
            continue
        if entry["action"] == "rollback":
            while stack and stack[-1] != d["version"]:
                stack.pop()
        elif entry["action"] in ALIAS_MOVES:
            stack.append(str(d["version"]))
    while stack and stack[-1] == current:
        stack.pop()
    return stack[-1] if stack else None


# --8<-- [end:previous_champion]


def champion_at(store: Store, name: str, when: datetime) -> str | None:
    version = None
    for ts, v in champion_timeline(store, name):
        if _naive(ts) <= _naive(when):
            version = v
    return version


def _naive(ts: datetime) -> datetime:
    return ts.replace(tzinfo=None) if ts.tzinfo else ts


def history(store: Store, name: str) -> list[dict[str, Any]]:
    return [e for e in store.audit_log() if e["details"].get("model") == name]
