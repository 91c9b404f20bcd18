"""lab2/wrong-alias: @champion is moved by hand to an old version while servers follow it.

    make scenario S=lab2/wrong-alias [IMPL=exercises]

The model servers follow the alias: a wrong move reaches production within one poll. The audit
log says who moved it, when and why; rollback by alias (from that history) restores the right
version, and the servers follow again. With IMPL=exercises the promote/rollback are yours.
"""

from __future__ import annotations

import httpx

from mlops_lab.labs.scenarios import Context
from mlops_lab.lifecycle.tracking import client_for
from mlops_lab.store.db import Store


def served(base: str) -> str:
    return str(httpx.get(f"{base}/v1/model", timeout=5).json()["version"])


def run(ctx: Context) -> None:
    registry = ctx.module("alias-release")
    ctx.start_registry()
    ctx.train_champion(seed=1)
    v2 = ctx.train_champion(seed=2, gate=False)
    base = ctx.start_server("stable")
    ctx.check(served(base) == v2, f"the server serves the champion v{v2}")

    client, store, name = (
        client_for(ctx.settings),
        Store(ctx.settings.resolved_store_url),
        ctx.settings.model_name,
    )
    try:
        registry.promote(client, store, name, "1", actor="alice", reason="debugging a customer ticket")
        ctx.inject("alice moves @champion to v1 by hand")
        ctx.check(ctx.wait_for(lambda: served(base) == "1", timeout_s=30), "the server follows within a poll")
        ctx.symptom("production now scores with the old v1")
        last = [e for e in store.audit_log() if e["action"] == "promote"][-1]
        d = last["details"]
        ctx.signal(
            f"audit: {last['actor']} moved {d['alias']} v{d['previous']} -> v{d['version']}: {d['reason']}"
        )
        ctx.check(
            last["actor"] == "alice" and str(d["previous"]) == v2, "the audit log says who, what and why"
        )
        target = registry.rollback(client, store, name, actor="oncall", reason="undo the manual move")
        ctx.mitigate(f"oncall: registry rollback -> v{target}")
    finally:
        store.dispose()
    ctx.check(str(target) == v2, f"rollback returns to v{v2}, the previous champion")
    ctx.check(ctx.wait_for(lambda: served(base) == v2, timeout_s=30), f"the server is back on v{v2}")
