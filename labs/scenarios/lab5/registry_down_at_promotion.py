"""lab5/registry-down-at-promotion: MLflow stops just as the canary passed; promotion waits for it.

    make scenario S=lab5/registry-down-at-promotion [IMPL=exercises]

A good candidate passes every step under steady traffic; the moment the controller enters
`promoting`, the MLflow server is stopped. Moving @champion is now impossible. What must hold:
  - the controller keeps the rollout in `promoting` and retries on every tick, saying why
    (the rollout's last_error);
  - meanwhile the router stays at the last step's share: the candidate never gets 100% of the
    traffic before it is @champion and stable serves it (and never goes back to 0% either: the
    candidate passed, nothing is rolled back for an outage of the registry);
  - the clients see nothing: the model servers keep serving the models they loaded;
  - once MLflow is back, the promotion completes and everything agrees: @champion is the
    candidate, @challenger cleared, the stable server serves it, the router is back at 0/100.
With IMPL=exercises the rollout's tick (the order of promotion), the judge, the expectation and
the router's split are yours (exercises/lab5/rollout.py, judge.py, expectation.py, split.py).
"""

from __future__ import annotations

import contextlib
from collections import Counter

import httpx

from mlops_lab.canary.state import Rollout
from mlops_lab.data.generator import features_only, generate
from mlops_lab.labs.scenarios import Context
from mlops_lab.lifecycle.tracking import CHALLENGER, CHAMPION
from mlops_lab.load.traffic import Traffic
from mlops_lab.runtime.supervisor import mlflow_spec

RATE_RPS = 100.0
FAILED_TICKS = 3  # ticks the controller must survive with the registry down before it comes back


def run(ctx: Context) -> None:
    ctx.fast_canary()
    s = ctx.settings
    router = ctx.start_canary_system()
    champion = ctx.alias(CHAMPION)
    candidate = ctx.stage_candidate(
        generate("baseline", 8_000, seed=14), features_only(generate("baseline", 2_000, seed=114))
    )
    last_step = max(s.canary_steps)
    traffic = Traffic(router, RATE_RPS, concurrency=8).start()
    outage: dict[str, float] = {}
    errors: list[str] = []
    weights: set[int] = set()

    def during(r: Rollout) -> None:
        if r.phase == "promoting" and "down" not in outage:
            ctx.stop_registry()
            outage["down"] = traffic.now()
            ctx.inject(f"the MLflow server is stopped as v{candidate} enters promoting ({r.reason})")
        elif "down" in outage and "up" not in outage:
            weights.add(int(ctx.router_state()["canary_weight"]))
            if r.last_error:
                errors.append(r.last_error)
            if len(errors) >= FAILED_TICKS:
                ctx.symptom(f"{len(errors)} ticks failed in promoting; last_error: {errors[-1][:160]}")
                ctx.mitigate("MLflow is restarted (the controller is left alone: it retries by itself)")
                ctx.supervisor.start(mlflow_spec(ctx.settings))
                outage["up"] = traffic.now()

    controller = ctx.controller()
    with contextlib.closing(controller):
        try:
            r = ctx.roll(controller, timeout_s=120, during=during)
        finally:
            traffic.stop()

    ctx.check("down" in outage, "the rollout reached promoting and the registry was stopped there")
    ctx.check(
        len(errors) >= FAILED_TICKS and "up" in outage,
        f"the controller retried through the outage: {len(errors)} ticks failed (last_error), none gave up",
    )
    ctx.signal(f"router weights seen while MLflow was down: {sorted(weights)}% to the canary")
    ctx.check(
        weights == {last_step},
        f"the router stayed at the last step ({last_step}%) while the promotion could not happen",
    )
    ctx.signal(f"controller: {r.describe()}")
    ctx.check(r.phase == "promoted", f"once MLflow was back the rollout completed: {r.phase}")
    ctx.check(ctx.alias(CHAMPION) == candidate, f"@champion is v{candidate} (was v{champion})")
    ctx.check(ctx.alias(CHALLENGER) is None, "@challenger is cleared")
    stable = httpx.get(f"http://{s.host}:{s.stable_port}/v1/model", timeout=5).json()
    ctx.check(
        str(stable["version"]) == candidate,
        f"the stable server serves v{candidate} (got v{stable['version']})",
    )
    state = ctx.router_state()
    ctx.check(state["canary_weight"] == 0 and not state["shadow"], "the router is back at 0% to the canary")
    during_outage = traffic.since(outage["down"])
    statuses = Counter(a.status for a in during_outage)
    ctx.signal(f"clients from the outage on: {len(during_outage)} requests, statuses {dict(statuses)}")
    ctx.check(set(statuses) == {200}, "no client saw an error: the servers keep the models they loaded")
