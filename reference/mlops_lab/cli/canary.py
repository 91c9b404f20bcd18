"""`mlops-lab route` and `mlops-lab canary ...`: the router and the rollouts of @challenger.

mlops-lab route                       # the router in the foreground
mlops-lab canary run                  # the controller daemon (what `mlops-lab up` starts)
mlops-lab canary start --version 3    # stage a version and roll it out
mlops-lab canary status [--json] | abort --reason "..."
mlops-lab canary judge-api            # the judge's verdict over HTTP, for Argo Rollouts and the like
"""

from __future__ import annotations

import json
import logging
from typing import Annotated

import httpx
import typer

from mlops_lab.cli.common import Learner, console, parts, serve_forever, settings
from mlops_lab.errors import UserError
from mlops_lab.parts import Part

canary_app = typer.Typer(
    no_args_is_help=True, help="Canary rollouts of @challenger (router + judge + controller)."
)


PartImpl = Annotated[
    str | None, typer.Option(help="reference or exercises; default: the pipeline_impl setting")
]


def _part(impl: str | None, learner: str | None) -> Part:
    """--impl/--learner, defaulting to MLOPS_PIPELINE_IMPL/LEARNER (what `mlops-lab up` and the
    demo set for the whole loop): whose lab 5 code the router and the controller run."""
    s = settings()
    return parts(impl or s.pipeline_impl, learner if impl else s.pipeline_learner)


def route(
    port: Annotated[int | None, typer.Option(help="default: the router_port setting")] = None,
    impl: PartImpl = None,
    learner: Learner = None,
) -> None:
    """Run the canary router (weighted, sticky, shadow, passive health) in the foreground.

    With --impl exercises the routing decision is the learner's lab 5 `router-split`."""
    from mlops_lab.canary.router import create_router

    s = settings()
    try:
        router = create_router(s, _part(impl, learner))
    except NotImplementedError as exc:  # a skeleton: say so in one line, not with a traceback
        raise UserError(f"the router-split exercise is not written yet ({exc}): make lab-5") from exc
    serve_forever(router, s.host, port or s.router_port)


@canary_app.command("run")
def run(impl: PartImpl = None, learner: Learner = None) -> None:
    """The controller daemon: rolls out every new @challenger (what `mlops-lab up` starts).

    With --impl exercises the rollout's tick and the judge are the learner's lab 5 code."""
    import signal
    import threading

    from mlops_lab.canary.controller import run_daemon

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_daemon(settings(), stop, _part(impl, learner))
    except NotImplementedError as exc:  # a skeleton: say so in one line, not with a traceback
        raise UserError(f"a lab 5 exercise is not written yet ({exc}): make lab-5") from exc


@canary_app.command("start")
def start(
    version: Annotated[str | None, typer.Option(help="stage this version as @challenger first")] = None,
    reason: Annotated[str, typer.Option()] = "manual canary",
    impl: PartImpl = None,
    learner: Learner = None,
) -> None:
    """Roll out @challenger: in the foreground, or by the running controller daemon."""
    import threading

    from mlops_lab.canary.controller import Controller
    from mlops_lab.canary.stage import stage
    from mlops_lab.canary.state import controller_lock
    from mlops_lab.lifecycle import registry

    s = settings()
    if version is not None:
        stage(s, version, actor=registry.default_actor(), reason=reason)
        console.print(f"@challenger -> v{version}")
    with controller_lock(s) as mine:
        if not mine:
            console.print(
                "the controller daemon is running and will roll it out: follow with `mlops-lab canary status`"
            )
            return
        controller = Controller(
            s,
            on_transition=lambda r: console.print(f"[bold]{r.phase}[/] {r.describe()}"),
            part=_part(impl, learner),
        )
        try:
            controller.run(threading.Event(), until_done=True)
        except NotImplementedError as exc:  # a skeleton: say so in one line, not with a traceback
            raise UserError(f"a lab 5 exercise is not written yet ({exc}): make lab-5") from exc
        finally:
            controller.close()
    r = controller.state.rollout
    if r is None:
        raise UserError("nothing to roll out: no @challenger that differs from @champion and was not judged")
    if r.phase != "promoted":
        raise UserError(f"rolled back: {r.reason}")


@canary_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The current or last rollout, its looks, and the router's weights."""
    from mlops_lab.canary.controller import Services
    from mlops_lab.canary.state import load_state

    s = settings()
    state = load_state(s)
    services = Services(s)
    try:
        router: dict[str, object] | str = services.router_state()
    except httpx.HTTPError as exc:
        router = f"unreachable ({exc.__class__.__name__})"
    finally:
        services.close()
    if as_json:
        console.print_json(json.dumps({**state.to_json(), "router": router}))
        return
    r = state.rollout
    console.print(f"rollout: {r.describe() if r else 'none yet'}")
    if r is not None:
        for look in r.looks[-5:]:
            console.print(
                f"  look at {look['weight']}% ({look['phase']}): {look['verdict']} {look['reason']}"
            )
        if r.last_error:
            console.print(f"  retrying after: {r.last_error}")
    console.print(f"router: {router}")
    for version, outcome in sorted(state.judged.items(), key=lambda kv: int(kv[0])):
        console.print(f"  v{version}: {outcome}")


@canary_app.command("abort")
def abort(reason: Annotated[str, typer.Option()] = "aborted by operator") -> None:
    """Roll the current canary back now (the daemon acts within a poll; else done here)."""
    from mlops_lab.canary.controller import Controller
    from mlops_lab.canary.state import controller_lock, load_state, request_abort

    s = settings()
    r = load_state(s).rollout
    if r is None or not r.active:
        raise UserError("no rollout in progress")
    request_abort(s, reason)
    with controller_lock(s) as mine:
        if mine:
            controller = Controller(s)
            try:
                controller.tick()
            finally:
                controller.close()
            console.print(controller.state.rollout.describe() if controller.state.rollout else "done")
        else:
            console.print("abort requested: the controller daemon rolls back within one poll")


@canary_app.command("judge-api")
def judge_api(
    port: Annotated[int | None, typer.Option(help="default: 8005 (beside the controller's)")] = None,
    impl: PartImpl = None,
    learner: Learner = None,
) -> None:
    """Serve the judge's verdict per rollout over HTTP, for an external rollout engine.

    GET /v1/rollouts/ID/verdict?candidate=3 answers one look (mlops_lab.canary.judge_api).

    With --impl exercises the verdict is the learner's lab 5 judge."""
    from mlops_lab.canary.judge_api import DEFAULT_PORT, create_app

    s = settings()
    serve_forever(create_app(s, part=_part(impl, learner)), s.host, port or DEFAULT_PORT)
