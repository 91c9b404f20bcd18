"""The lab runner behind `mlops-lab lab check|hint|status|reset|watch` and `make lab-N`.

    mlops-lab lab check 1                 # grade exercises/lab1 (make lab-1)
    mlops-lab lab check 1 --impl reference
    mlops-lab lab hint 1                  # one more hint for the first failing exercise
    mlops-lab lab status                  # every lab, with saved progress

A check runs the lab's grader files with pytest in a child process (a fresh interpreter sees
the learner's latest code), reads each check's outcome from a JSON file the graders' conftest
writes, and prints a checklist, the first failure in plain words, and a score. Progress of
the learner's own work (`--impl exercises`) is saved to <home>/labs/progress.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from mlops_lab.data.io import write_json_atomic
from mlops_lab.labs.impl import EXERCISES
from mlops_lab.labs.manifest import Exercise, Lab, LabError, get_lab, load_manifest, repo_root

GRADER_TIMEOUT_S = 180


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    message: str = ""


@dataclass
class ExerciseOutcome:
    exercise: Exercise
    checks: list[CheckOutcome] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)


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
    def all_passed(self) -> bool:
        return all(e.passed for e in self.exercises)

    def first_failure(self) -> tuple[Exercise, CheckOutcome] | None:
        for e in self.exercises:
            for c in e.checks:
                if not c.passed:
                    return e.exercise, c
        return None


def grade(lab: Lab, impl: str, root: Path, log_path: Path) -> LabOutcome:
    """Run the lab's graders against `impl` and collect one outcome per named check."""
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        results_file = Path(tmp) / "results.json"
        argv = [sys.executable, "-m", "pytest", *(e.grader for e in lab.exercises), "--impl", impl]
        argv += ["-q", "-p", "no:cacheprovider", "-o", "addopts=", "--timeout", str(GRADER_TIMEOUT_S)]
        env = {**os.environ, "MLOPS_LAB_RESULTS": str(results_file), "OMP_NUM_THREADS": "1"}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w") as log:
            proc = subprocess.run(argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
        if proc.returncode not in (0, 1) or not results_file.exists():
            tail = log_path.read_text().strip().splitlines()[-1:] or ["no output"]
            raise LabError(
                f"the graders did not run (pytest exit {proc.returncode}): {tail[0]} - see {log_path}"
            )
        records = json.loads(results_file.read_text())
    return LabOutcome(lab, impl, _outcomes(lab, records, root), (datetime.now(UTC) - started).total_seconds())


def _outcomes(lab: Lab, records: list[dict[str, Any]], root: Path) -> list[ExerciseOutcome]:
    """Group pytest records into checks: one check per test function (parametrized cases merged)."""
    by_grader: dict[str, dict[str, CheckOutcome]] = {}
    for r in records:
        function = r["nodeid"].split("[")[0]
        grader = function.split("::")[0]
        checks = by_grader.setdefault(grader, {})
        if r["when"] == "collect":
            checks.setdefault(function, CheckOutcome(r["check"], True))
        elif r["outcome"] != "passed" and function in checks and checks[function].passed:
            checks[function].passed, checks[function].message = False, r["message"]
    out = []
    for e in lab.exercises:
        found = list(by_grader.get(e.grader, {}).values())
        if not found:  # the grader did not even collect (a broken exercise import, for one)
            found = [CheckOutcome(f"{e.grader} runs", False, "the grader collected no checks; see the log")]
        out.append(ExerciseOutcome(e, found))
    return out


# ---------------------------------------------------------------- progress
def progress_path(home: Path) -> Path:
    return home / "labs" / "progress.json"


def load_progress(home: Path) -> dict[str, Any]:
    path = progress_path(home)
    return json.loads(path.read_text()) if path.exists() else {}


def save_progress(home: Path, outcome: LabOutcome) -> dict[str, Any]:
    progress = load_progress(home)
    entry = progress.setdefault(str(outcome.lab.id), {})
    first = outcome.first_failure()
    entry.update(
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        passed=outcome.passed_checks,
        total=outcome.total_checks,
        best=max(entry.get("best", 0), outcome.passed_checks),
        exercises={
            e.exercise.id: [sum(c.passed for c in e.checks), len(e.checks)] for e in outcome.exercises
        },
        first_failing=first[0].id if first else None,
    )
    write_json_atomic(progress_path(home), progress)
    return entry


# ---------------------------------------------------------------- printing
def print_outcome(console: Console, outcome: LabOutcome, saved: dict[str, Any] | None) -> None:
    lab = outcome.lab
    console.print(f"\n[bold]Lab {lab.id} - {lab.title}[/]   (graded: {outcome.impl})\n")
    for e in outcome.exercises:
        mark = "[green]done[/]" if e.passed else f"{sum(c.passed for c in e.checks)}/{len(e.checks)}"
        console.print(f"  [bold]{e.exercise.id}[/]  {e.exercise.file}  {mark}", highlight=False)
        for c in e.checks:
            sign = "[green]  ✔[/]" if c.passed else "[red]  ✘[/]"
            console.print(f"  {sign} {c.name}", highlight=False)
    first = outcome.first_failure()
    if first is not None:
        exercise, check = first
        console.print(f"\n[bold red]First failure[/]: {exercise.id} - {check.name}", highlight=False)
        console.print(f"  {check.message or 'no message'}", highlight=False, markup=False)
        console.print(f"  file: {exercise.file}    hint: make hint-{lab.id}", highlight=False)
    pct = 100 * outcome.passed_checks / max(outcome.total_checks, 1)
    line = f"\nScore: {outcome.passed_checks}/{outcome.total_checks} checks ({pct:.0f}%)"
    line += f" in {outcome.seconds:.0f} s"
    if saved is not None:
        line += f"; best so far {saved['best']}/{saved['total']}; progress saved (mlops-lab lab status)"
    console.print(line, highlight=False)
    if outcome.all_passed:
        nxt = f"make scenario S={lab.scenarios[0].key}" if lab.scenarios else "the next lab"
        console.print(f"[bold green]Lab {lab.id} complete.[/] Next: break it on purpose with `{nxt}`.")


def check(lab_id: str, impl: str, home: Path, console: Console) -> LabOutcome:
    root = repo_root()
    lab = get_lab(load_manifest(root), lab_id)
    with console.status(f"grading lab {lab.id} ({impl}) ..."):
        outcome = grade(lab, impl, root, home / "labs" / f"lab-{lab.id}.log")
    saved = save_progress(home, outcome) if impl == EXERCISES else None
    print_outcome(console, outcome, saved)
    return outcome


def hint(lab_id: str, home: Path, console: Console) -> None:
    """The next hint of the first failing exercise (from the last check), one more per call."""
    lab = get_lab(load_manifest(), lab_id)
    progress = load_progress(home)
    entry = progress.get(str(lab.id))
    if entry is None:
        raise LabError(f"lab {lab.id} has not been graded yet: run make lab-{lab.id} first")
    failing = entry.get("first_failing")
    if failing is None:
        console.print(f"Every check of lab {lab.id} passed at the last run: no hint needed.")
        return
    exercise = next(e for e in lab.exercises if e.id == failing)
    shown = entry.setdefault("hints_shown", {})
    count = min(shown.get(failing, 0) + 1, len(exercise.hints))
    shown[failing] = count
    write_json_atomic(progress_path(home), progress)
    console.print(f"[bold]{exercise.id}[/] ({exercise.file}): {exercise.teaches}\n", highlight=False)
    for i, text in enumerate(exercise.hints[:count], 1):
        console.print(f"  hint {i}/{len(exercise.hints)}: {text}", highlight=False, markup=False)
    console.print(
        f"\n  the reference: {exercise.mirrors} (reference/{exercise.mirrors.replace('.', '/')}.py)"
    )


def status(home: Path, console: Console) -> None:
    from rich.table import Table

    progress = load_progress(home)
    table = Table("lab", "title", "exercises done", "checks", "best", "last graded")
    for lab in load_manifest():
        entry = progress.get(str(lab.id))
        if lab.status != "ready":
            table.add_row(str(lab.id), lab.short_title, "coming", "", "", "")
        elif entry is None:
            table.add_row(str(lab.id), lab.short_title, f"0/{len(lab.exercises)}", "not graded", "", "")
        else:
            done = sum(p == t for p, t in entry["exercises"].values())
            table.add_row(
                str(lab.id),
                lab.short_title,
                f"{done}/{len(lab.exercises)}",
                f"{entry['passed']}/{entry['total']}",
                str(entry["best"]),
                entry["at"][:16].replace("T", " "),
            )
    console.print(table)


def watch(lab_id: str, impl: str, home: Path, console: Console) -> None:
    """Re-grade on every save under exercises/labN (Ctrl-C stops)."""
    from watchfiles import watch as watch_files

    root = repo_root()
    lab = get_lab(load_manifest(root), lab_id)
    folder = root / "exercises" / f"lab{lab.id}"
    check(lab_id, impl, home, console)
    console.print(f"\nwatching {folder.relative_to(root)} - save a file to re-grade, Ctrl-C to stop")
    for _changes in watch_files(folder, watch_filter=lambda _c, path: path.endswith(".py")):
        console.clear()
        check(lab_id, impl, home, console)
        console.print(f"\nwatching {folder.relative_to(root)} - save a file to re-grade, Ctrl-C to stop")
