"""A solution of lab 2's `alias-release` (exercises/lab2/registry.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab2/alias-release.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

from functools import partial

from mlflow import MlflowClient

from mlops_lab.lifecycle import registry as reference
from mlops_lab.lifecycle.registry import ALIAS_MOVES, RegistryError, require_version
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
    """Point `alias` of model `name` at `version`; return where it pointed before. Audited."""
    # 1. Refuse before touching anything. require_version tells "no such version" (NoSuchVersion)
    #    from "the registry did not answer" (RegistryUnavailable): an outage must not read as a typo.
    # 2. Read where the alias points before moving it: afterwards it points at `version`.
    # 3. Move, then audit: if the move fails, no entry claims a move that never happened (rollback
    #    reads its history from these entries). A crash between the two leaves a move without its
    #    entry, which the alias itself still shows; the other order would leave a false entry.
    require_version(client, name, version)
    current = version_by_alias(client, name, alias)
    previous = str(current.version) if current is not None else None
    client.set_registered_model_alias(name, alias, version)
    store.audit(actor, action, model=name, alias=alias, version=version, previous=previous, reason=reason)
    return previous


def rollback(client: MlflowClient, store: Store, name: str, *, actor: str, reason: str) -> str:
    """Return @champion to the version it pointed at before the current one; return that version."""
    current = version_by_alias(client, name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back")
    target = previous_champion(store, name, str(current.version))
    if target is None:  # refuse before moving: nothing to go back to is not "no such version"
        raise RegistryError(f"no earlier champion than version {current.version} in the audit log")
    # Through set_alias, audited as "rollback": the next previous_champion pops down to it, and a
    # person reading the log sees who undid what, and why.
    set_alias(client, store, name, CHAMPION, target, actor=actor, reason=reason, action="rollback")
    return target


def previous_champion(store: Store, name: str, current: str) -> str | None:
    """The champion before `current`, skipping versions that were rolled back from."""
    stack: list[str] = []
    for entry in store.audit_log():
        details = entry["details"]
        # .get(): other components' entries may name no model and no alias at all.
        if details.get("model") != name or details.get("alias") != CHAMPION:
            continue
        if entry["action"] == "rollback":
            # Pop down to the version rolled back to: what was rolled back from never comes back.
            while stack and stack[-1] != str(details["version"]):
                stack.pop()
        elif entry["action"] in ALIAS_MOVES:  # "promote" and "set_alias" push
            stack.append(str(details["version"]))
    # `current` may be on top more than once (promoted twice): take all of it off.
    while stack and stack[-1] == current:
        stack.pop()
    return stack[-1] if stack else None


# The reference's promote (a move of @champion, audited as "promote"), through your set_alias.
promote = partial(reference.promote, set_alias=set_alias)
