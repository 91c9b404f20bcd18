"""`mlops-lab up | down | status | load | demo`: the whole local system, its load test, its story.

mlops-lab up && mlops-lab status && mlops-lab down
mlops-lab load --duration 20s
mlops-lab demo [--profile short]
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from mlops_lab.cli.common import console, settings
from mlops_lab.errors import UserError


def up(
    only: Annotated[
        list[str] | None, typer.Option("--only", help="start just these (repeatable), e.g. --only mlflow")
    ] = None,
    prometheus: Annotated[bool, typer.Option("--prometheus/--no-prometheus")] = True,
) -> None:
    """Start the local system (MLflow, stable and canary servers, router, monitor, canary
    controller, and Prometheus when installed) and wait until each is healthy."""
    from mlops_lab.runtime.supervisor import Supervisor, system_specs

    s = settings()
    specs = system_specs(s, with_prometheus=prometheus)
    names = [spec.name for spec in specs]
    unknown = set(only or []) - set(names)
    if unknown:
        raise typer.BadParameter(
            f"unknown component(s) {', '.join(sorted(unknown))}; choose from {', '.join(names)}"
        )
    specs = [spec for spec in specs if not only or spec.name in only]
    sup = Supervisor(s)
    if specs and specs[0].name == "mlflow":  # the others read the registry when they start
        sup.start(specs.pop(0))
        console.print(f"{'mlflow':10} up at {s.mlflow_server_uri}")
    sup.start_all(specs)
    for spec in specs:
        console.print(f"{spec.name:10} up at http://{s.host}:{spec.port}")
    if not only or "stable" in only:
        console.print(
            "model servers are ready once @champion (stable) / @challenger (canary) exist: see /readyz"
        )


def down() -> None:
    """Stop every process `up` started (also after a crash); leaves nothing behind."""
    from mlops_lab.runtime.supervisor import Supervisor

    stopped = Supervisor(settings()).stop_all()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What runs, on which port, and whether it is healthy."""
    from mlops_lab.runtime.supervisor import Supervisor

    rows = Supervisor(settings()).status()
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("component", "pid", "port", "alive", "healthy", "log")
    for r in rows:
        table.add_row(
            str(r["name"]), str(r["pid"]), str(r["port"]), str(r["alive"]), str(r["healthy"]), str(r["log"])
        )
    console.print(table if rows else "nothing is running")


def load(
    host: Annotated[str | None, typer.Option(help="default: the stable server")] = None,
    users: Annotated[int, typer.Option(min=1)] = 8,
    duration: Annotated[str, typer.Option(help="e.g. 20s, 2m")] = "20s",
    scenario: Annotated[str, typer.Option()] = "baseline",
) -> None:
    """Drive locust (headless) against a server and print the SLO report."""
    from mlops_lab.load.slo import run_load

    s = settings()
    target = host or f"http://{s.host}:{s.stable_port}"
    report = run_load(
        s, target, s.home / "reports" / "load", users=users, duration=duration, scenario=scenario
    )
    console.print(report.markdown())
    if not report.slo_met:
        raise UserError("SLO missed")


def demo(
    profile: Annotated[str, typer.Option(help="full or short (the end-to-end test's profile)")] = "full",
    impl: Annotated[
        str, typer.Option(help="reference, or exercises: your code for every exercise you have solved")
    ] = "reference",
    strict: Annotated[
        bool, typer.Option("--strict", help="with --impl exercises: refuse to start while any is unsolved")
    ] = False,
) -> None:
    """Play the story locally (five acts); exits non-zero if it did not play out."""
    from mlops_lab.labs.impl import choose
    from mlops_lab.story.demo import StoryFailed, run_demo

    s = settings()
    choice = choose(impl, s.home, strict=strict)
    try:
        run_demo(s, profile=profile, console=console, choice=choice)
    except StoryFailed as exc:
        raise UserError(f"the story did not play out: {exc}") from exc
