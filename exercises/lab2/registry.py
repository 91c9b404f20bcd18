"""Lab 2, exercise `alias-release`: promotion and rollback by alias, each move audited.

    make lab-2        grade it          make hint-2      one more hint
    Reference: reference/mlops_lab/lifecycle/registry.py  Docs: docs/labs/lab-2-lifecycle.md

Stages are deprecated in MLflow; this project moves aliases: `champion` is what the stable
server serves, `challenger` what the canary serves. MLflow keeps only where an alias points
now, so every move is written to the audit log (who, what, why, from which version), and
rollback reads its history from there.
"""

from __future__ import annotations

from mlflow import MlflowClient

from mlops_lab.lifecycle.registry import ALIAS_MOVES, RegistryError  # written: the moves, the error
from mlops_lab.lifecycle.tracking import CHAMPION, version_by_alias
from mlops_lab.store.db import Store


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
