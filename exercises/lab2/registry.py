"""Lab 2, exercise `alias-release`: promotion and rollback by alias, each move audited.

    make lab-2        grade it          make hint-2      one more hint
    Reference: reference/mlops_lab/lifecycle/registry.py  Docs: docs/labs/lab-2-lifecycle.md

Stages are deprecated in MLflow; this project moves aliases: `champion` is what the stable
server serves, `challenger` what the canary serves. MLflow keeps only where an alias points
now, so every move is written to the audit log (who, what, why, from which version), and
rollback reads its history from there. You write `set_alias` (every move goes through it:
`promote` at the bottom, the pipeline staging @challenger, the canary controller),
`previous_champion` and `rollback`.

The audit log (`store.audit_log()`, oldest first) is a list of entries like this one:

    {"id": 12, "ts": datetime(...), "actor": "alice", "action": "promote",
     "details": {"model": "fraud-detector", "alias": "champion", "version": "3",
                 "previous": "2", "reason": "canary passed"}}

`store.audit(actor, action, **details)` appends one (`details` goes through JSON: compare
versions as str). Alias moves use the actions of ALIAS_MOVES ("promote", "rollback",
"set_alias") and "stage" (the pipeline moving @challenger); other components write other
actions ("canary.step", "monitor.alarm", "unstage", ...) whose details may have no model
or alias at all.
"""

from __future__ import annotations

from functools import partial

from mlflow import MlflowClient

from mlops_lab.lifecycle import registry as reference
from mlops_lab.lifecycle.registry import (  # written: the errors, the existence check, the reads
    ALIAS_MOVES,
    NoSuchVersion,
    RegistryError,
    RegistryUnavailable,
    champion_at,
    champion_timeline,
    history,
    list_versions,
    require_version,
)
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
    # TODO(lab-2): the contract.
    #  - Refuse before touching anything: a version `name` does not have is NoSuchVersion; a
    #    registry that cannot answer is RegistryUnavailable, never "no such version" (an outage
    #    must not look like a typo). require_version(client, name, version) raises exactly these.
    #  - Return the version the alias pointed at before the move (a str), None if it had none.
    #  - A move leaves exactly one audit entry: action `action`, actor `actor`, and details
    #    model, alias, version, previous and reason (the entry shape above). A refused move
    #    leaves none.
    #  Think about: move then audit, or audit then move? What does each order leave behind when
    #  the process dies between the two?
    raise NotImplementedError("TODO(lab-2): set_alias")


def rollback(client: MlflowClient, store: Store, name: str, *, actor: str, reason: str) -> str:
    """Return @champion to the version it pointed at before the current one; return that version."""
    # TODO(lab-2): move @champion back to previous_champion(...) of the current champion, through
    # set_alias with action "rollback" (so the rollback itself is audited), and return the
    # version rolled back to. No champion, or no earlier champion in the audit log: raise a
    # RegistryError whose message says which, and move nothing.
    # Think about: why must a rollback be an audited move like any other, not a silent undo?
    raise NotImplementedError("TODO(lab-2): rollback")


def previous_champion(store: Store, name: str, current: str) -> str | None:
    """The champion before `current`, skipping versions that were rolled back from."""
    # TODO(lab-2): read the history of this model's @champion from the audit log: only entries
    # whose action is in ALIAS_MOVES and whose details name this model and CHAMPION count
    # (@challenger, other models and the other actions do not). Walk them as a stack: a
    # "promote" or "set_alias" pushes its version; a "rollback" pops down to the version it
    # rolled back to, so a version rolled back from never comes back. Then the answer is the
    # top of the stack once `current` is off it; None when nothing is left.
    #  promote 1, 2, 3: the one before 3 is 2. Then rollback (to 2): the one before 2 is 1.
    #  promote 1, 2, rollback (to 1), promote 3: the one before 3 is 1, never the bad 2.
    # Think about: MLflow only knows where an alias points now; what would a "previous" pointer
    # stored on each version get wrong after two rollbacks in a row?
    raise NotImplementedError("TODO(lab-2): previous_champion")


# The reference's promote (a move of @champion, audited as "promote"), through your set_alias.
promote = partial(reference.promote, set_alias=set_alias)
