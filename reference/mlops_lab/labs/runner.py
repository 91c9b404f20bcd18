"""The lab runner behind `mlops-lab lab check|hint|status|watch` and `make lab-N`.

    mlops-lab lab check 1                 # grade exercises/lab1 like rustlings (make lab-1)
    mlops-lab lab check 1 --all           # re-grade every exercise (make lab-1 ALL=1)
    mlops-lab lab check 1 --impl reference
    mlops-lab lab hint 1                  # one more hint for the failing check
    mlops-lab lab status                  # every lab, with saved progress

Like rustlings, the learner's own work (`--impl exercises`) is graded in manifest order and
the run stops at the first exercise that is not done: feedback about the exercise being worked
on comes in seconds, not after every grader of the lab has run. An exercise that passed is
shown as done from saved progress, and graded again only when its file or its grader changed
(a content hash). The same holds for a copy of exercises/ elsewhere (`--impl <dir>`), saved
under its own key; `--all` and `--impl reference` grade every exercise.

Grading runs the graders with pytest in a child process (a fresh interpreter sees the
learner's latest code; only the pytest-timeout plugin is loaded, which halves the start-up),
reads each check's outcome from a JSON file the graders' conftest writes, and prints a
checklist, the first failure in plain words and a score. Progress is saved to
<home>/labs/progress.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from mlops_lab.data.io import write_json_atomic
from mlops_lab.labs.impl import EXERCISES, REFERENCE
from mlops_lab.labs.manifest import Exercise, Lab, LabError, get_lab, load_manifest, repo_root
from mlops_lab.labs.progress import (
    fingerprint,
    learner_base,
    load_progress,
    progress_key,
    progress_path,
)

GRADER_TIMEOUT_S = 180
IMPORT_FAILED = "could not import"  # how the graders' conftest words a learner file that does not import


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    message: str = ""
    raised: str | None = None  # the exception type of a failure (NotImplementedError, ...)
    hint: str = ""  # the check's own hint, from its docstring


@dataclass
class ExerciseOutcome:
    exercise: Exercise
    checks: list[CheckOutcome] = field(default_factory=list)
    # graded: graded in this run; saved: passed before and unchanged since; pending: not graded
    # (an earlier exercise is not done yet)
    state: str = "graded"

    @property
    def passed(self) -> bool:
        return self.state == "saved" or (bool(self.checks) and all(c.passed for c in self.checks))


@dataclass
class LabOutcome:
    lab: Lab
    impl: str
    exercises: list[ExerciseOutcome]
    seconds: float

    @property
    def passed_checks(self) -> int:
        return sum(c.passed for e in self.exercises for c in e.checks)

    @property
    def total_checks(self) -> int:
        return sum(len(e.checks) for e in self.exercises)

    @property
    def done(self) -> int:
        return sum(e.passed for e in self.exercises)

    @property
    def all_passed(self) -> bool:
        return all(e.passed for e in self.exercises)

    def first_failure(self) -> tuple[Exercise, CheckOutcome] | None:
        for e in self.exercises:
            for c in e.checks:
                if not c.passed:
                    return e.exercise, c
        return None


def grader_env(results_file: Path) -> dict[str, str]:
    """The graders' environment: where to write outcomes, one BLAS thread, and no pytest plugin
    autoloading (nbmake, schemathesis, hypothesis cost about two seconds and grade nothing)."""
    return {
        **os.environ,
        "MLOPS_LAB_RESULTS": str(results_file),
        "OMP_NUM_THREADS": "1",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }


def grade(
    lab: Lab, impl: str, root: Path, log_path: Path, exercises: list[Exercise] | None = None
) -> LabOutcome:
    """Run the graders of `exercises` (default: all of the lab's) against `impl`, in one child
    process, and collect one outcome per named check."""
    chosen = list(exercises if exercises is not None else lab.exercises)
    started = time.monotonic()
    records = run_graders([e.grader for e in chosen], ["--impl", impl], root, log_path)
    return LabOutcome(lab, impl, _outcomes(chosen, records), time.monotonic() - started)


def grade_each(
    exercise: Exercise, impls: list[str], root: Path, log_path: Path
) -> dict[str, list[CheckOutcome]]:
    """The checks that fail on each of several copies of one exercise (the mutants), graded in
    one pytest session: the fixtures that do not depend on the copy are built once, and a copy's
    remaining checks are skipped as soon as one failed (one is enough to know it was caught)."""
    records = run_graders([exercise.grader], ["--impls", os.pathsep.join(impls)], root, log_path)
    names = {r["nodeid"]: r["check"] for r in records if r["when"] == "collect"}
    failed: dict[str, list[CheckOutcome]] = {impl: [] for impl in impls}
    for r in records:
        if r["when"] != "collect" and r["outcome"] == "failed" and r.get("impl") in failed:
            name = names.get(r["nodeid"], r["nodeid"])
            failed[r["impl"]].append(CheckOutcome(name, False, r["message"], r.get("raised")))
    return failed


def run_graders(graders: list[str], options: list[str], root: Path, log_path: Path) -> list[dict[str, Any]]:
    """pytest on `graders` in a child process; the records the graders' conftest writes."""
    with tempfile.TemporaryDirectory() as tmp:
        results_file = Path(tmp) / "results.json"
        argv = [sys.executable, "-m", "pytest", *graders, *options]
        argv += ["-q", "-p", "no:cacheprovider", "-p", "pytest_timeout", "-o", "addopts="]
        argv += ["--timeout", str(GRADER_TIMEOUT_S)]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as log:  # one check may grade several exercises in turn
            log.write(f"$ pytest {' '.join(graders)} {' '.join(options)}\n")
            log.flush()
            env = grader_env(results_file)
            proc = subprocess.run(argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
        if proc.returncode not in (0, 1) or not results_file.exists():
            tail = log_path.read_text().strip().splitlines()[-1:] or ["no output"]
            raise LabError(
                f"the graders did not run (pytest exit {proc.returncode}): {tail[0]} - see {log_path}"
            )
        records: list[dict[str, Any]] = json.loads(results_file.read_text())
    return records


def _outcomes(exercises: list[Exercise], records: list[dict[str, Any]]) -> list[ExerciseOutcome]:
    """Group pytest records into checks: one check per test function (parametrized cases merged)."""
    by_grader: dict[str, dict[str, CheckOutcome]] = {}
    for r in records:
        function = r["nodeid"].split("[")[0]
        grader = function.split("::")[0]
        checks = by_grader.setdefault(grader, {})
        if r["when"] == "collect":
            checks.setdefault(function, CheckOutcome(r["check"], True, hint=r.get("hint", "")))
        elif r["outcome"] != "passed" and function in checks and checks[function].passed:
            check = checks[function]
            check.passed, check.message, check.raised = False, r["message"], r.get("raised")
    out = []
    for e in exercises:
        found = list(by_grader.get(e.grader, {}).values())
        if not found:  # the grader did not even collect (a broken exercise import, for one)
            found = [CheckOutcome(f"{e.grader} runs", False, "the grader collected no checks; see the log")]
        out.append(ExerciseOutcome(e, found))
    return out


def grade_in_order(lab: Lab, impl: str, root: Path, home: Path) -> LabOutcome:
    """A learner's lab, rustlings style: done exercises from saved progress (unchanged since
    they passed), then grade the first one that is not, and stop there if it fails."""
    started = time.monotonic()
    base = learner_base(impl, root)
    passed_at = load_progress(home).get(progress_key(lab, impl), {}).get("passed_at", {})
    outcomes: list[ExerciseOutcome] = []
    stopped = False
    for e in lab.exercises:
        if stopped:
            outcomes.append(ExerciseOutcome(e, state="pending"))
        elif passed_at.get(e.id) == fingerprint(base, root, e):
            outcomes.append(ExerciseOutcome(e, state="saved"))
        else:
            graded = grade(lab, impl, root, home / "labs" / f"lab-{lab.id}.log", [e]).exercises[0]
            outcomes.append(graded)
            stopped = not graded.passed
    return LabOutcome(lab, impl, outcomes, time.monotonic() - started)


# ---------------------------------------------------------------- progress
def save_progress(home: Path, outcome: LabOutcome, root: Path) -> dict[str, Any]:
    """Per exercise: [checks passed, checks] when graded, and the fingerprint it passed at; the
    first failing exercise and check (what `hint` explains); the best number of exercises done."""
    progress = load_progress(home)
    entry = progress.setdefault(progress_key(outcome.lab, outcome.impl), {})
    base = learner_base(outcome.impl, root)
    exercises = entry.setdefault("exercises", {})
    passed_at = entry.setdefault("passed_at", {})
    for e in outcome.exercises:
        if e.state != "graded":
            continue
        exercises[e.exercise.id] = [sum(c.passed for c in e.checks), len(e.checks)]
        if e.passed:
            passed_at[e.exercise.id] = fingerprint(base, root, e.exercise)
        else:
            passed_at.pop(e.exercise.id, None)
    first = outcome.first_failure()
    entry.update(
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        done=outcome.done,
        total=len(outcome.lab.exercises),
        best=max(entry.get("best", 0), outcome.done),
        first_failing=first[0].id if first else None,
        failing_check=({"name": first[1].name, "hint": first[1].hint} if first else None),
    )
    write_json_atomic(progress_path(home), progress)
    return entry


# ---------------------------------------------------------------- printing
def print_outcome(console: Console, outcome: LabOutcome, saved: dict[str, Any] | None) -> None:
    lab = outcome.lab
    console.print(f"\n[bold]Lab {lab.id} - {lab.title}[/]   (graded: {outcome.impl})\n")
    current = next((e for e in outcome.exercises if not e.passed and e.state == "graded"), None)
    for e in outcome.exercises:
        if e.state == "saved":
            console.print(f"  [green]done[/] [bold]{e.exercise.id}[/]  {e.exercise.file}", highlight=False)
        elif e.state == "pending":
            console.print(f"  [dim]next[/] {e.exercise.id}  {e.exercise.file}", highlight=False)
        else:
            mark = "[green]done[/]" if e.passed else f"{sum(c.passed for c in e.checks)}/{len(e.checks)}"
            console.print(f"  {mark} [bold]{e.exercise.id}[/]  {e.exercise.file}", highlight=False)
            if e is current or outcome.impl == REFERENCE:
                for c in e.checks:
                    sign = "[green]  ✔[/]" if c.passed else "[red]  ✘[/]"
                    console.print(f"  {sign} {escape(c.name)}", highlight=False)
    first = outcome.first_failure()
    if first is not None:
        exercise, check = first
        console.print(f"\n[bold red]First failure[/]: {exercise.id} - {escape(check.name)}", highlight=False)
        console.print(f"  {check.message or 'no message'}", highlight=False, markup=False)
        console.print(f"  file: {exercise.file}    hint: make hint-{lab.id}", highlight=False)
    line = f"\nExercises done: {outcome.done}/{len(lab.exercises)}"
    if current is not None:
        line += (
            f"; {current.exercise.id}: {sum(c.passed for c in current.checks)}/{len(current.checks)} checks"
        )
    elif outcome.total_checks:
        line += f"; checks {outcome.passed_checks}/{outcome.total_checks}"
    line += f" ({outcome.seconds:.1f} s)"
    if saved is not None:
        line += f"; best so far {saved['best']}/{saved['total']}; progress saved (mlops-lab lab status)"
    console.print(line, highlight=False)
    if outcome.impl != REFERENCE:
        show_solutions(console, outcome)
    if outcome.all_passed:
        nxt = f"make scenario S={lab.scenarios[0].key}" if lab.scenarios else "the next lab"
        if lab.scenarios and outcome.impl == EXERCISES:
            nxt += " IMPL=exercises"
        console.print(f"[bold green]Lab {lab.id} complete.[/] Next: break it on purpose with `{nxt}`.")


def show_solutions(console: Console, outcome: LabOutcome) -> None:
    """As rustlings does: once an exercise passes, where to compare with a solution that says why
    it is written the way it is (labs/solutions/, graded by the self-check like the reference)."""
    root = repo_root()
    for e in outcome.exercises:
        if e.state == "graded" and e.passed and (root / e.exercise.solution).exists():
            console.print(
                f"[green]✔ {e.exercise.id} passed.[/] Compare with a solution and why it is written so: "
                f"{e.exercise.solution}",
                highlight=False,
            )


def check(lab_id: str, impl: str, home: Path, console: Console, *, regrade_all: bool = False) -> LabOutcome:
    root = repo_root()
    lab = get_lab(load_manifest(root), lab_id)
    learner = impl != REFERENCE
    (home / "labs" / f"lab-{lab.id}.log").unlink(missing_ok=True)  # the log is this run's
    with console.status(f"grading lab {lab.id} ({impl}) ..."):
        if learner and not regrade_all:
            outcome = grade_in_order(lab, impl, root, home)
        else:
            outcome = grade(lab, impl, root, home / "labs" / f"lab-{lab.id}.log")
    saved = save_progress(home, outcome, root) if learner else None
    print_outcome(console, outcome, saved)
    return outcome


def hint(lab_id: str, home: Path, console: Console) -> None:
    """The failing check's own hint first, then one more of the exercise's hints per call."""
    lab = get_lab(load_manifest(), lab_id)
    progress = load_progress(home)
    entry = progress.get(str(lab.id))
    if entry is None:
        raise LabError(f"lab {lab.id} has not been graded yet: run make lab-{lab.id} first")
    failing = entry.get("first_failing")
    if failing is None:
        console.print(f"Every exercise of lab {lab.id} passed at the last run: no hint needed.")
        return
    exercise = next(e for e in lab.exercises if e.id == failing)
    shown = entry.setdefault("hints_shown", {})
    count = min(shown.get(failing, 0) + 1, len(exercise.hints))
    shown[failing] = count
    write_json_atomic(progress_path(home), progress)
    console.print(f"[bold]{exercise.id}[/] ({exercise.file}): {exercise.teaches}\n", highlight=False)
    check_ = entry.get("failing_check") or {}
    if check_.get("hint"):
        console.print(f"  failing check: {check_['name']}", highlight=False, markup=False)
        console.print(f"  {check_['hint']}\n", highlight=False, markup=False)
    for i, text in enumerate(exercise.hints[:count], 1):
        console.print(f"  hint {i}/{len(exercise.hints)}: {text}", highlight=False, markup=False)
    console.print(
        f"\n  the reference: {exercise.mirrors} (reference/{exercise.mirrors.replace('.', '/')}.py)"
    )


def status(home: Path, console: Console) -> None:
    from rich.table import Table

    progress = load_progress(home)
    table = Table("lab", "title", "exercises done", "best", "last graded")
    for lab in load_manifest():
        entry = progress.get(str(lab.id))
        if lab.status != "ready":
            table.add_row(str(lab.id), lab.short_title, "coming", "", "")
        elif entry is None:
            table.add_row(str(lab.id), lab.short_title, f"0/{len(lab.exercises)}", "", "not graded")
        else:
            table.add_row(
                str(lab.id),
                lab.short_title,
                f"{entry.get('done', 0)}/{len(lab.exercises)}",
                str(entry.get("best", 0)),
                entry["at"][:16].replace("T", " "),
            )
    console.print(table)


def watch(lab_id: str, impl: str, home: Path, console: Console) -> None:
    """Re-grade on every save under exercises/labN (Ctrl-C stops): the exercise being worked on
    is the one graded, since the others are done and unchanged, or not reached yet."""
    from watchfiles import watch as watch_files

    root = repo_root()
    lab = get_lab(load_manifest(root), lab_id)
    folder = root / "exercises" / f"lab{lab.id}"
    while True:
        console.clear()
        check(lab_id, impl, home, console)
        console.print(f"\nwatching {folder.relative_to(root)} - save a file to re-grade, Ctrl-C to stop")
        next(iter(watch_files(folder, watch_filter=lambda _c, path: path.endswith(".py"))))
