"""Lab 5, exercise `controller-tick`: one idempotent, persisted step of the rollout state machine.

    make lab-5        grade it          make hint-5      one more hint
    Reference: reference/mlops_lab/canary/rollout.py     Docs: docs/labs/lab-5-system-design.md

The canary controller (canary/controller.py) calls `advance(r, world, now, plan)` on every tick
with the saved rollout `r`. `advance` (given) picks the function of r.phase, which does one
bounded piece of work through `world` and returns. You write the five phase functions:

  warming        wait for the canary server to serve the candidate, then shadow (or step 0)
  judging        shadow and every step: health, a look when one is due, the next step on PASS
  enter_step     route one step's share to the canary and enter that step
  promoting      @champion to the candidate, stable serving it, only then the router to 0%
  rolling_back   the router to 0%, then @challenger cleared, then finish

  warming --(canary serves the candidate)--> shadow --> step 5% --> 25% --> 50% --> promoting
  shadow or a step --(FAIL, canary unhealthy or not ready, no PASS for too long)--> rolling_back
  promoting --> promoted          rolling_back --> rolled_back

The controller can be killed between any two world calls: a new one loads the last saved `r`
(the world saves it in route, transition and finish, and at the end of every tick) and calls
`advance` again. A world call that raises (MLflow down) ends the tick; the next tick retries.
So the order of your calls is the design; it must make every replay safe and keep 3 promises:
  - the router never sends more than the current step's share to a version that is not @champion;
  - a rollback routes 0% before any registry call: the registry may be down, the traffic cannot wait;
  - nothing is promoted without a PASS at every step (and each step lasts its time).

What it works with (the World protocol and the Plan in canary/state.py):

    world.served_version(variant) -> str | None    the version "stable" or "canary" serves now
    world.ready(variant) -> (bool, why)             is that model server ready
    world.router_state() -> dict                    "canary_healthy" (False: the router saw the canary
                                                    fail and sends its share to stable), weights, counts
    world.champion() -> str | None                  the version @champion points at     } MLflow: each
    world.promote(r)                                @champion := r.candidate             } raises while
    world.clear_challenger(r, outcome)              remove @challenger, tag the outcome  } it is down
    world.route(r, weight, shadow, reason)          the router's canary share and shadow; sets r.weight
                                                    and r.shadow, saves
    world.start_judging(r, now)                     the judge's data starts now; sets r.last_look = now
    world.look(r, router, now) -> Judgement         .verdict "PASS" | "FAIL" | "INCONCLUSIVE", .reason;
                                                    sets r.last_look = now and r.last_verdict
    world.reload(variant)                           ask a server to load its alias now (takes a while)
    world.transition(r, phase, reason)              enter `phase`: r.phase_started = now,
                                                    r.last_verdict = None; saves
    world.finish(r, phase, reason)                  end as "promoted" or "rolled_back" (a transition that
                                                    also records the version as judged)
    plan.steps (5, 25, 50)   plan.shadow_s (0: no shadow)   plan.step_s   plan.look_s   plan.max_wait_s
    r.candidate  r.champion  r.phase  r.step_index (into plan.steps)  r.phase_started  r.last_look
    r.last_verdict  r.reason (free text shown by `mlops-lab canary status`)

The grader runs your phases in an in-memory world and kills the controller at every world call
in turn; `mlops-lab canary run --impl exercises` runs them against the real router, servers and
MLflow.
"""

from __future__ import annotations

from mlops_lab.canary.state import Plan, Rollout, World

__all__ = ["Plan", "Rollout", "World"]  # re-exported: what the phases work with
__all__ += ["advance", "enter_step", "judging", "promoting", "rolling_back", "warming"]  # the phases


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
    # TODO(lab-5): the controller asked the canary server to load @challenger when the rollout
    #  started; until it serves r.candidate (it may serve an earlier version meanwhile), route
    #  nothing. Once it does: with plan.shadow_s > 0, mirror every request to it (route 0% with
    #  shadow on), start the judge's data (start_judging) and enter "shadow"; with no shadow, go
    #  straight to the first step (enter_step with index 0).
    #  If it still does not serve the candidate plan.max_wait_s after the phase started, roll
    #  back (enter "rolling_back"; world.ready("canary") says why, for the reason).
    #  Think about: you route, then transition. If the controller dies right between the two,
    #  what does the restarted one find in the saved `r`, and what does it do? And the other way
    #  round?
    raise NotImplementedError("TODO(lab-5): wait for the canary to serve the candidate")


def judging(r: Rollout, world: World, now: float, plan: Plan) -> None:
    """Shadow or a step: health first, a look when one is due, and the next step only on PASS."""
    # TODO(lab-5): every tick, in this order:
    #  - the router says the canary is unhealthy (router_state()["canary_healthy"] False), or
    #    world.ready("canary") is False: roll back now;
    #  - a look is due (plan.look_s since r.last_look): world.look(...); a FAIL rolls back now;
    #  - the phase lasts plan.shadow_s (shadow) or plan.step_s (a step) from r.phase_started,
    #    whatever the looks say; once it is over: if the last look passed (r.last_verdict), move
    #    on: shadow -> step 0, step i -> step i + 1, the last step -> "promoting". If it did not,
    #    keep waiting, but roll back once plan.max_wait_s has gone by past the phase's time.
    #  Think about: at the end of a step the verdict is still INCONCLUSIVE (too little canary
    #  traffic to tell). Why is promoting anyway the wrong side to err on, and why is rolling
    #  back at once too eager?
    raise NotImplementedError("TODO(lab-5): judge the shadow or a step, and move on only on a PASS")


def enter_step(r: Rollout, world: World, index: int, now: float, plan: Plan) -> None:
    """Route `plan.steps[index]` percent of cards to the canary and enter that step."""
    # TODO(lab-5): route plan.steps[index] percent of cards to the canary (no shadow), record
    #  the step (r.step_index) and enter "step". Start the judge's data (start_judging) at the
    #  first step only: the split looks of all the steps are one sequential test, whose data
    #  accumulates from step 0 on.
    #  Think about: which call must come first, the route or the transition, so that a
    #  controller killed between them never judges a step whose share was never routed?
    raise NotImplementedError("TODO(lab-5): route a step and enter it")


def promoting(r: Rollout, world: World, now: float, plan: Plan) -> None:
    """@champion -> the candidate, stable reloaded and serving it, and only then 100/0."""
    # TODO(lab-5): move @champion to the candidate unless it is there already (a replay);
    #  make sure stable serves the candidate: if not, ask it to reload, look again, and if it
    #  still does not, return (say so in r.reason) and come back on the next tick. Only then
    #  route 0% (everything to stable), clear @challenger ("promoted") and finish as "promoted".
    #  Leave registry errors alone: the tick retries, and the router stays where it is.
    #  Think about: between @champion moving and stable loading it, which version answers the
    #  requests the router sends to stable, and is it still @champion? How many requests is that
    #  with the router at 50%, and with the router at 0%?
    raise NotImplementedError("TODO(lab-5): promote, wait for stable, then hand the traffic back")


def rolling_back(r: Rollout, world: World, now: float, plan: Plan) -> None:
    """Stop the harm (router to 0%), then clear @challenger; @champion never moved."""
    # TODO(lab-5): route 0% (no shadow), clear @challenger ("rolled_back"), finish as
    #  "rolled_back" (r.reason says why it rolled back).
    #  Think about: MLflow is down, so clear_challenger raises on every tick for ten minutes.
    #  Where does the router stand meanwhile, depending on the order of your three calls?
    raise NotImplementedError("TODO(lab-5): stop the traffic, then clean up")
