"""One tick of a rollout: the canary controller's state machine, phase by phase.

    python -c "from mlops_lab.canary.rollout import advance; help(advance)"

    warming --(canary serves the candidate)--> shadow --> step 5% --> 25% --> 50% --> promoting
    any judging phase --(judge FAIL, canary unhealthy or not ready, too long without a verdict)-->
        rolling_back
    promoting --> promoted          rolling_back --> rolled_back

The controller (`canary.controller`) calls `advance` on every tick with the persisted rollout
and the `World` it acts on (the router's admin API, the model servers, MLflow, the store).
Each world action is idempotent and the rollout is saved around each one, so a controller
killed between any two actions runs the same phase again after a restart and ends in the same
place. What this module decides is the order, and the order carries two promises:

  - the router never sends more than the current step's share to a version that is not
    @champion: promotion moves @champion and waits for stable to serve it before the router
    returns to 100/0;
  - a rollback stops the harm first (router to 0%), and only then touches the registry, which
    may be down: the alias can wait, the traffic cannot.

And one rule: nothing is promoted without judged data. A step ends only on a PASS; a phase
that stays INCONCLUSIVE too long rolls back.
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
    """One bounded piece of work on the active rollout `r`, chosen by its phase."""
    handlers = {
        "warming": warming,
        "shadow": judging,
        "step": judging,
        "promoting": promoting,
        "rolling_back": rolling_back,
    }
    handlers[r.phase](r, world, now, plan)


def warming(r: Rollout, world: World, now: float, plan: Plan) -> None:
    """Wait for the canary server to serve the candidate; then shadow (or the first step)."""
    served = world.served_version("canary")
    if served == r.candidate:
        if plan.shadow_s > 0:
            world.route(r, 0, True, "shadow: every request mirrored to the canary, stable answers")
            world.start_judging(r, now)
            world.transition(r, "shadow", f"canary serves v{r.candidate}; mirroring traffic")
        else:
            enter_step(r, world, 0, now, plan)
        return
    if now - r.phase_started > plan.max_wait_s:
        ready, why = world.ready("canary")
        detail = why if not ready else f"it serves v{served}, not v{r.candidate}"
        world.transition(r, "rolling_back", f"the canary never served v{r.candidate}: {detail}")


def judging(r: Rollout, world: World, now: float, plan: Plan) -> None:
    """Shadow or a step: health first, a look when one is due, and the next step only on PASS."""
    router = world.router_state()
    if not router.get("canary_healthy", True):
        world.transition(r, "rolling_back", "canary unhealthy: the router fell back to stable")
        return
    ready, why = world.ready("canary")
    if not ready:
        world.transition(r, "rolling_back", f"canary not ready: {why}")
        return
    if now - r.last_look >= plan.look_s:
        verdict = world.look(r, router, now)
        if verdict.verdict == "FAIL":
            world.transition(r, "rolling_back", f"judge: {verdict.reason}")
            return
    duration = plan.shadow_s if r.phase == "shadow" else plan.step_s
    elapsed = now - r.phase_started
    if elapsed < duration:
        return
    if r.last_verdict == "PASS":
        if r.phase == "shadow":
            enter_step(r, world, 0, now, plan)
        elif r.step_index + 1 < len(plan.steps):
            enter_step(r, world, r.step_index + 1, now, plan)
        else:
            world.transition(r, "promoting", f"judge passed every step up to {plan.steps[-1]}%")
    elif elapsed >= duration + plan.max_wait_s:
        # Never promote on too little data: give up, champion stays.
        world.transition(r, "rolling_back", f"inconclusive for {elapsed:.0f}s: not enough canary traffic")


def enter_step(r: Rollout, world: World, index: int, now: float, plan: Plan) -> None:
    """Route `plan.steps[index]` percent of cards to the canary and enter that step."""
    weight = plan.steps[index]
    world.route(r, weight, False, f"step {index + 1}/{len(plan.steps)}: {weight}% to the canary")
    if index == 0:  # split looks accumulate over every step: one sequential design
        world.start_judging(r, now)
    r.step_index = index
    world.transition(r, "step", f"{weight}% of cards to v{r.candidate}")


def promoting(r: Rollout, world: World, now: float, plan: Plan) -> None:
    """@champion -> the candidate, stable reloaded and serving it, and only then 100/0."""
    if world.champion() != r.candidate:
        world.promote(r)
    if world.served_version("stable") != r.candidate:
        world.reload("stable")
        if world.served_version("stable") != r.candidate:
            r.reason = "waiting for the stable server to serve the new champion"
            return
    # Only now, with stable serving the new champion, does the canary share go away.
    world.route(r, 0, False, f"v{r.candidate} promoted; everything to stable")
    world.clear_challenger(r, "promoted")
    world.finish(r, "promoted", f"v{r.candidate} is @champion; stable serves it")


def rolling_back(r: Rollout, world: World, now: float, plan: Plan) -> None:
    """Stop the harm (router to 0%), then clear @challenger; @champion never moved."""
    world.route(r, 0, False, f"rollback of v{r.candidate}: everything to stable")
    world.clear_challenger(r, "rolled_back")
    world.finish(r, "rolled_back", f"@champion stays v{r.champion}; {r.reason}")
