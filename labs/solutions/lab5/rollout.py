"""A solution of lab 5's `controller-tick` (exercises/lab5/rollout.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab5/controller-tick.toml applied to it (a check must fail on each).

Two ideas carry it. First, the controller may die between any two world calls and a new one
replays the phase from the last save, so each phase is written as "make the world look like
this, then say so": the outside action first (route, promote, clear), the transition that
records it last. Replaying an action that already happened is harmless (they are all "set",
never "add"); recording an action that never happened is not. Second, the order inside a phase
is the safety argument: a rollback takes the traffic off the canary before it talks to the
registry (which may be down), and a promotion hands the traffic back to stable only once stable
serves the new champion.
"""

from __future__ import annotations

from mlops_lab.canary.state import Plan, Rollout, World

__all__ = [
    "Plan",
    "Rollout",
    "World",
    "advance",
    "enter_step",
    "judging",
    "promoting",
    "rolling_back",
    "warming",
]


def advance(r: Rollout, world: World, now: float, plan: Plan) -> None:
    """One bounded piece of work on the active rollout `r`, chosen by its phase (given)."""
    if r.phase == "warming":
        warming(r, world, now, plan)
    elif r.phase in ("shadow", "step"):
        judging(r, world, now, plan)
    elif r.phase == "promoting":
        promoting(r, world, now, plan)
    elif r.phase == "rolling_back":
        rolling_back(r, world, now, plan)
    else:
        raise ValueError(f"rollout {r.rollout_id} is {r.phase!r}: not a phase that advances")


def warming(r: Rollout, world: World, now: float, plan: Plan) -> None:
    """Wait for the canary server to serve the candidate; then shadow (or the first step)."""
    loaded = world.served_version("canary")
    if loaded != r.candidate:
        # Still the previous model (or none): the load takes a while. Not forever, though: a
        # load that keeps failing is a rollback, and @champion never moved, so nothing to undo.
        waited = now - r.phase_started
        if waited > plan.max_wait_s:
            ok, said = world.ready("canary")
            why = said if not ok else f"it still serves v{loaded}"
            world.transition(r, "rolling_back", f"canary did not load v{r.candidate} in {waited:.0f}s: {why}")
        return
    if plan.shadow_s <= 0:
        enter_step(r, world, 0, now, plan)
        return
    # Route, then start the data, then say we are in shadow. Dying after the route replays
    # warming, which routes again (the same weights): harmless.
    world.route(r, 0, True, "shadow: the canary scores a copy of every request; stable answers")
    world.start_judging(r, now)
    world.transition(r, "shadow", f"v{r.candidate} loaded on the canary; mirroring traffic to it")


def judging(r: Rollout, world: World, now: float, plan: Plan) -> None:
    """Shadow or a step: health first, a look when one is due, and the next step only on PASS."""
    router = world.router_state()
    # A canary failing live requests must stop getting them now, not at the next look.
    if not router.get("canary_healthy", True):
        world.transition(r, "rolling_back", "the router marked the canary unhealthy (it fell back to stable)")
        return
    ok, said = world.ready("canary")
    if not ok:
        world.transition(r, "rolling_back", f"the canary server is not ready: {said}")
        return

    if now - r.last_look >= plan.look_s:
        seen = world.look(r, router, now)
        # A FAIL is final, whatever the phase's time: the judge's boundary is sequential, so a
        # later PASS does not undo it.
        if seen.verdict == "FAIL":
            world.transition(r, "rolling_back", f"the judge said FAIL: {seen.reason}")
            return

    length = plan.shadow_s if r.phase == "shadow" else plan.step_s
    spent = now - r.phase_started
    if spent < length:
        return  # a phase lasts its time even on PASS: one early look is too little data
    if r.last_verdict != "PASS":
        # INCONCLUSIVE (or no look yet): give the data max_wait_s more, then give up. Never
        # promote on too little evidence: the champion staying is the safe side.
        if spent >= length + plan.max_wait_s:
            world.transition(r, "rolling_back", f"no verdict after {spent:.0f}s: too little canary traffic")
        return

    following = 0 if r.phase == "shadow" else r.step_index + 1
    if following < len(plan.steps):
        enter_step(r, world, following, now, plan)
    else:
        world.transition(r, "promoting", f"PASS at every step up to {plan.steps[-1]}%")


def enter_step(r: Rollout, world: World, index: int, now: float, plan: Plan) -> None:
    """Route `plan.steps[index]` percent of cards to the canary and enter that step."""
    share = plan.steps[index]
    # The router first: dying right after leaves the saved phase at the previous step, whose
    # replay routes this same share again once it sees the PASS (set, not add).
    world.route(r, share, False, f"step {index + 1} of {len(plan.steps)}: {share}% of cards to the canary")
    first = index == 0
    if first:
        # The split looks of all the steps are one sequential test: its data starts here, once,
        # and accumulates across the steps (restarting it would spend the alpha again).
        world.start_judging(r, now)
    r.step_index = index  # saved by the transition just below
    world.transition(r, "step", f"{share}% of cards to v{r.candidate}")


def promoting(r: Rollout, world: World, now: float, plan: Plan) -> None:
    """@champion -> the candidate, stable reloaded and serving it, and only then 100/0."""
    # 1. The registry. Both calls raise while MLflow is down: the tick retries later, and the
    #    router stays at the last step, which the judge passed.
    if world.champion() != r.candidate:
        world.promote(r)
    # 2. Stable must serve the new champion before it takes all the traffic back, or for a
    #    while 100% would go to the old model, which is no longer @champion.
    if not stable_serves(r, world):
        r.reason = f"waiting for the stable server to load v{r.candidate}"
        return
    # 3. Now it is safe: traffic back to stable, the staging alias gone, the outcome recorded.
    #    finish comes last, so that a crash before it replays the (idempotent) steps above.
    world.route(r, 0, False, f"v{r.candidate} promoted: all traffic to stable, which serves it")
    world.clear_challenger(r, "promoted")
    world.finish(r, "promoted", f"v{r.candidate} is @champion and stable serves it")


def stable_serves(r: Rollout, world: World) -> bool:
    """Does stable serve the candidate? If not, ask it to reload (it may take a few ticks)."""
    if world.served_version("stable") == r.candidate:
        return True
    world.reload("stable")
    return world.served_version("stable") == r.candidate


def rolling_back(r: Rollout, world: World, now: float, plan: Plan) -> None:
    """Stop the harm (router to 0%), then clear @challenger; @champion never moved."""
    # The traffic first: the router is ours and answers; the registry may be down, and while
    # clear_challenger raises and is retried, no request must reach the failed canary.
    world.route(r, 0, False, f"rolling back v{r.candidate}: all traffic to stable")
    world.clear_challenger(r, "rolled_back")
    world.finish(r, "rolled_back", f"@champion stays v{r.champion}: {r.reason}")
