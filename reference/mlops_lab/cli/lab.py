"""`mlops-lab lab ...`: grade, hint, reset, watch and verify the labs; run failure scenarios.

mlops-lab lab check 1 [--all] [--impl reference]   (make lab-1 [ALL=1] [IMPL=reference])
mlops-lab lab hint 1                         (make hint-1)
mlops-lab lab watch 1                        (make watch-1)
mlops-lab lab status | reset 1 | verify [--repeat 10] | mutants [1]
mlops-lab lab scenario lab1/corrupt-model    (make scenario S=lab1/corrupt-model)
mlops-lab lab deep-dive [--out FILE]         (your interview notes: <home>/deep-dive.md)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlops_lab.labs.manifest import LabError
from mlops_lab.settings import get_settings

lab_app = typer.Typer(no_args_is_help=True, help="The labs: grade your exercises, get hints, run scenarios.")
console = Console(soft_wrap=True)  # long check names stay on one line in CI logs

Impl = Annotated[str, typer.Option(help="exercises (your work), reference, or a directory")]


@lab_app.command("check")
def check(
    lab: str,
    impl: Impl = "exercises",
    regrade_all: Annotated[
        bool, typer.Option("--all", help="re-grade every exercise, not only from the first one not done")
    ] = False,
) -> None:
    """Grade a lab in order, stopping at the first exercise not done (rustlings style)."""
    from mlops_lab.labs.runner import check as run_check

    if not run_check(lab, impl, get_settings().home, console, regrade_all=regrade_all).all_passed:
        raise typer.Exit(1)


@lab_app.command("hint")
def hint(lab: str) -> None:
    """One more hint for the first failing exercise of the last check."""
    from mlops_lab.labs.runner import hint as show_hint

    show_hint(lab, get_settings().home, console)


@lab_app.command("status")
def status() -> None:
    """Every lab and your saved progress."""
    from mlops_lab.labs.runner import status as show_status

    show_status(get_settings().home, console)


@lab_app.command("watch")
def watch(lab: str, impl: Impl = "exercises") -> None:
    """Re-grade on every save (Ctrl-C stops)."""
    from mlops_lab.labs.runner import watch as run_watch

    run_watch(lab, impl, get_settings().home, console)


@lab_app.command("reset")
def reset(lab: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False) -> None:
    """Restore a lab's exercise files to the skeleton (asks first)."""
    from mlops_lab.labs.verify import reset as run_reset

    run_reset(lab, console, yes)


@lab_app.command("verify")
def verify(
    relock: Annotated[bool, typer.Option(help="record the current exercise files as the skeletons")] = False,
    repeat: Annotated[
        int, typer.Option(min=1, help="grade the reference this many times: a flaky grader fails one")
    ] = 1,
    mutants: Annotated[bool, typer.Option("--mutants/--no-mutants", help="also grade the mutants")] = True,
) -> None:
    """The self-check run by make test: reference passes, skeleton fails, everything listed."""
    from mlops_lab.labs.manifest import repo_root
    from mlops_lab.labs.verify import relock as run_relock
    from mlops_lab.labs.verify import verify as run_verify

    if relock:
        console.print(f"recorded {len(run_relock(repo_root()))} skeletons in labs/skeletons.json")
    problems = run_verify(console, repeat=repeat, with_mutants=mutants)
    for problem in problems:
        console.print(f"[red]problem[/]: {problem}", highlight=False)
    if problems:
        raise LabError(f"{len(problems)} problem(s) in the labs")
    console.print("[green]labs verified[/]")


@lab_app.command("mutants")
def mutants(lab: Annotated[str | None, typer.Argument(help="a lab id; default every lab")] = None) -> None:
    """Grade each exercise's solution and its mutants (named mistakes): every mutant must be caught."""
    from mlops_lab.labs import mutants as m
    from mlops_lab.labs.manifest import load_manifest, repo_root

    root = repo_root()
    labs = m.chosen_labs(load_manifest(root), lab)
    with console.status("grading the solutions and their mutants ..."):
        verdicts = m.run(labs, root)
    m.print_report(console, labs, verdicts)
    problems = m.problems_of(labs, root, verdicts)
    for problem in problems:
        console.print(f"[red]problem[/]: {problem}", highlight=False)
    if problems:
        raise LabError(f"{len(problems)} problem(s) with the solutions and mutants")


@lab_app.command("scenario")
def scenario(
    name: str,
    impl: Impl = "reference",
    strict: Annotated[
        bool,
        typer.Option("--strict", help="with --impl exercises: refuse while an exercise it runs is unsolved"),
    ] = False,
) -> None:
    """Start the system, inject a real fault, verify the reliable behaviour, print the timeline."""
    from mlops_lab.labs.scenarios import run_scenario

    if not run_scenario(name, impl, get_settings(), console, strict):
        raise typer.Exit(1)


@lab_app.command("deep-dive")
def deep_dive(
    out: Annotated[
        Path | None, typer.Option(help="where to write the page; default <home>/deep-dive.md")
    ] = None,
) -> None:
    """Your project deep dive: what you built, broke and measured, and the questions to expect."""
    from mlops_lab.labs.deepdive import deep_dive as write_page
    from mlops_lab.labs.manifest import load_manifest, repo_root

    home = get_settings().home
    root = repo_root()
    page = write_page(load_manifest(root), home, root)
    target = out or home / "deep-dive.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page)
    typer.echo(page, nl=False)
    typer.echo(f"wrote {target}", err=True)
