"""Lab 2, exercise `alias-release`: promotion and rollback by alias, each move audited.

    make lab-2        grade it          make hint-2      one more hint
    Reference: reference/mlops_lab/lifecycle/registry.py  Docs: docs/labs/lab-2-lifecycle.md

Stages are deprecated in MLflow; this project moves aliases: `champion` is what the stable
server serves, `challenger` what the canary serves. MLflow keeps only where an alias points
now, so every move is written to the audit log (who, what, why, from which version), and
rollback reads its history from there.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlflow import MlflowClient

from mlops_lab.lifecycle.tracking import CHAMPION, version_by_alias
from mlops_lab.store.db import Store

ALIAS_MOVES = ("promote", "rollback", "set_alias")


class RegistryError(Exception):
    """A registry operation that cannot proceed; the message is for the user."""


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
    # TODO(lab-2):
    #  1. refuse a version that does not exist: client.get_model_version(name, version) raises;
    #     turn that into RegistryError(f"{name} has no version {version}")
    #  2. remember where the alias points now (version_by_alias) -> previous (str or None)
    #  3. client.set_registered_model_alias(name, alias, version)
    #  4. store.audit(actor, action, model=name, alias=alias, version=version, previous=previous,
    #     reason=reason)
    raise NotImplementedError("TODO(lab-2): set_alias")


def promote(
    client: MlflowClient, store: Store, name: str, version: str, *, actor: str, reason: str
) -> str | None:
    return set_alias(client, store, name, CHAMPION, version, actor=actor, reason=reason, action="promote")


def rollback(client: MlflowClient, store: Store, name: str, *, actor: str, reason: str) -> str:
    """Return `champion` to the version it pointed at before the current one. Returns that version."""
    # TODO(lab-2): find the current champion (RegistryError when there is none), the version
    # before it (previous_champion; RegistryError when there is none), and move the alias there
    # with set_alias(..., action="rollback"). Return the version rolled back to.
    raise NotImplementedError("TODO(lab-2): rollback")


def champion_timeline(store: Store, name: str) -> list[tuple[datetime, str]]:
    """(time, version) for every move of `champion`, oldest first."""
    return [
        (e["ts"], str(e["details"]["version"]))
        for e in store.audit_log()
        if e["action"] in ALIAS_MOVES
        and e["details"].get("model") == name
        and e["details"].get("alias") == CHAMPION
    ]


def previous_champion(store: Store, name: str, current: str) -> str | None:
    """The champion before the current one, skipping versions that were rolled back from.

    Walks the audit log as a stack: a promote pushes, a rollback pops. So promote 1, 2, 3 then
    rollback gives 2, and a second rollback gives 1.
    """
    # TODO(lab-2): for each store.audit_log() entry about this model's champion alias
    # (entry["details"]["model"] == name and ["alias"] == CHAMPION): a "rollback" pops the stack
    # down to the version it rolled back to; any other move in ALIAS_MOVES pushes its version.
    # Then drop `current` from the top and return the top (or None).
    raise NotImplementedError("TODO(lab-2): previous_champion")


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
