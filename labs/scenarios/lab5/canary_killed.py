"""lab5/canary-killed: the canary server dies mid-step under load; no client sees an error.

    make scenario S=lab5/canary-killed [IMPL=exercises]

A good candidate is rolled out under steady traffic (100 requests a second, 8 in flight). At
its first step, with a quarter of the cards on the canary, the canary server is SIGKILLed: no
graceful shutdown, its in-flight requests cut mid-answer. What must hold:
  - the router retries every failed canary request on stable: every client gets a 200 from
    stable (counted), each failure is counted (mlops_router_fallbacks_total, the router's
    error count for the canary, which the judge reads);
  - passive health opens after `router_unhealthy_after` failures in a row
    (mlops_router_canary_healthy 0): the router stops trying the dead canary, so the fallbacks
    stay few (at most those failures plus the requests already in flight);
  - the controller sees it on its next tick and rolls back (canary unhealthy, or not ready):
    router to 0%, @champion unchanged, @challenger cleared.
With IMPL=exercises the router's split and passive health, the rollout's tick and the judge are
yours (exercises/lab5/split.py, rollout.py, judge.py; the expectation: expectation.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections import Counter

from mlops_lab.canary.state import Rollout
from mlops_lab.data.generator import features_only, generate
from mlops_lab.labs.scenarios import Context
from mlops_lab.lifecycle.tracking import CHALLENGER, CHAMPION
from mlops_lab.load.traffic import Traffic

RATE_RPS, IN_FLIGHT = 100.0, 8
# The controller checks the canary's health on every tick: the first tick after it failed rolls
# back (the reference: tick 1). A timeout would take the step's time plus max_wait, dozens of ticks.
ROLLBACK_TICKS = 2


def run(ctx: Context) -> None:
    ctx.fast_canary()
    s = ctx.settings
    router = ctx.start_canary_system()
    champion = ctx.alias(CHAMPION)
    candidate = ctx.stage_candidate(
        generate("baseline", 8_000, seed=15), features_only(generate("baseline", 2_000, seed=115))
    )
    traffic = Traffic(router, RATE_RPS, concurrency=IN_FLIGHT).start()
    controller = ctx.controller()
    with contextlib.closing(controller):
        try:
            at_step: Rollout = ctx.until(
                lambda: (r := controller.tick()) is not None and (r.phase == "step" or not r.active) and r,
                "the rollout's first step",
            )
            ctx.check(
                at_step.phase == "step",
                f"the rollout reached its first step: {at_step.weight}% of cards on v{candidate} "
                f"({at_step.describe()})",
            )
            before = ctx.router_state()["counts"]["canary"]
            fallbacks_before = ctx.metric(router, "mlops_router_fallbacks_total") or 0.0
            pgid = int((ctx.supervisor.read_state("canary") or {})["pgid"])
            os.killpg(pgid, signal.SIGKILL)
            killed_at = traffic.now()
            ctx.inject(f"SIGKILL to the canary server (process group {pgid}) at {at_step.weight}% under load")

            # The controller is not ticked meanwhile: what the router does on its own.
            ctx.until(lambda: not ctx.router_state()["canary_healthy"], "passive health opening", 20)
            state = ctx.router_state()
            healthy = ctx.metric(router, "mlops_router_canary_healthy")
            ctx.signal(
                f"router: canary_healthy {state['canary_healthy']} (mlops_router_canary_healthy "
                f"{healthy:g}); still {state['canary_weight']}% by weight, but the dead canary gets "
                "no traffic"
            )
            phases: list[str] = []
            r = ctx.roll(controller, timeout_s=30, during=lambda x: phases.append(x.phase))
        finally:
            traffic.stop()

    after = traffic.since(killed_at)
    statuses = Counter(a.status for a in after)
    variants = Counter(a.variant for a in after)
    ctx.symptom(
        f"{len(after)} client requests sent after the kill: statuses {dict(statuses)}, answered by "
        f"{dict(variants)}"
    )
    ctx.check(bool(after) and set(statuses) == {200}, "every client request after the kill got a 200")
    ctx.check(set(variants) == {"stable"}, "every one was answered by stable (the router's fallback)")

    counts = ctx.router_state()["counts"]["canary"]
    errors = counts["errors"] - before["errors"]
    fallbacks = (ctx.metric(router, "mlops_router_fallbacks_total") or 0.0) - fallbacks_before
    retried = ctx.metric(router, "mlops_router_requests_total", variant="stable", outcome="fallback") or 0.0
    ctx.signal(
        f"mlops_router_fallbacks_total +{fallbacks:g}; the router's canary errors +{errors} "
        f"(the judge's error count); stable answered {retried:g} requests as a fallback"
    )
    ctx.check(fallbacks > 0 and errors == fallbacks, "every failed canary request was counted, once")
    limit = s.router_unhealthy_after + IN_FLIGHT
    ctx.check(
        fallbacks <= limit,
        f"passive health stopped the retries: {fallbacks:g} fallbacks <= {s.router_unhealthy_after} failures "
        f"in a row + {IN_FLIGHT} in flight",
    )

    ctx.signal(f"controller: {r.describe()}")
    ticks = next((i + 1 for i, phase in enumerate(phases) if phase != "step"), len(phases))
    ctx.check(
        r.phase == "rolled_back" and ticks <= ROLLBACK_TICKS,
        f"the controller rolled back on its tick {ticks} after passive health opened: on the canary's "
        f"health, not after a timeout (at most {ROLLBACK_TICKS})",
    )
    state = ctx.router_state()
    ctx.check(state["canary_weight"] == 0 and not state["shadow"], "the router sends everything to stable")
    ctx.check(ctx.alias(CHAMPION) == champion, f"@champion is still v{champion}")
    ctx.check(ctx.alias(CHALLENGER) is None, "@challenger is cleared")
    ctx.mitigate(
        "the router's fallback and passive health protect the clients, the controller's rollback the "
        "champion; read logs/canary.log and restart the canary before staging the candidate again"
    )
