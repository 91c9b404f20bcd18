"""Solutions and mutants: proof that each grader catches the mistakes it exists to catch.

    mlops-lab lab mutants            # every lab's solutions and mutants (also in lab verify)
    mlops-lab lab mutants 1

For every exercise, labs/solutions/ holds a solution as a learner would write it (the skeleton,
its TODOs done, with comments saying why it is written that way: `make lab-N` shows it once the
exercise passes, as rustlings does), and labs/mutants/labN/<exercise>.toml a list of named,
realistic mistakes, each one text replacement in that solution:

    [[mutant]]
    name = "no-retry-after"
    mistake = "the 503 while no model is loaded carries no Retry-After header"
    replace = 'headers={"Retry-After": str(ctx.settings.retry_after_s)},'
    with = ""

The self-check grades the solution (every check must pass) and each mutant as if a learner had
written it: the exercise's grader must fail, and the checks that caught it are reported. A
mutant that passes every check survived: a requirement the TODO states is not graded.
"""

from __future__ import annotations

import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mlops_lab.labs.manifest import Exercise, Lab, LabError
from mlops_lab.labs.runner import CheckOutcome, grade, grade_each

MUTANTS = Path("labs/mutants")


def solution_path(root: Path, exercise: Exercise) -> Path:
    return root / exercise.solution


def mutants_path(root: Path, exercise: Exercise) -> Path:
    return root / MUTANTS / f"lab{exercise.lab}" / f"{exercise.id}.toml"


@dataclass(frozen=True)
class Mutant:
    exercise: Exercise
    name: str
    mistake: str
    replace: str
    with_: str

    @property
    def key(self) -> str:
        return f"lab{self.exercise.lab}/{self.exercise.id}/{self.name}"

    def apply(self, solution: str) -> str:
        """The solution with this one mistake; the text to replace must occur exactly once, so a
        mutant never silently turns into the unchanged solution when the solution is edited."""
        count = solution.count(self.replace)
        if count != 1:
            raise LabError(f"mutant {self.key}: the text to replace occurs {count} times in the solution")
        return solution.replace(self.replace, self.with_)


@dataclass(frozen=True)
class Verdict:
    key: str
    exercise: Exercise
    mistake: str
    failed: list[str]  # the checks that failed: for a mutant, what caught it
    messages: list[str]
    seconds: float


def mutants_of(root: Path, exercise: Exercise) -> list[Mutant]:
    path = mutants_path(root, exercise)
    if not path.exists():
        return []
    entries = tomllib.loads(path.read_text()).get("mutant", [])
    return [Mutant(exercise, m["name"], m["mistake"], m["replace"], m["with"]) for m in entries]


def copy_with(root_tmp: Path, key: str, exercise: Exercise, text: str) -> Path:
    """A folder holding exercises/... with `text` as the exercise's file: an --impl directory."""
    base = root_tmp / key.replace("/", "-")
    target = base / exercise.file
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return base


def judge_exercise(lab: Lab, exercise: Exercise, root: Path, tmp: Path) -> list[Verdict]:
    """The solution, graded in full; then every mutant, in one pytest session, each until a
    check fails on it (the solution must pass every check; a mutant needs one to fail)."""
    solution = solution_path(root, exercise).read_text()
    key = f"lab{lab.id}/{exercise.id}/solution"
    folder = copy_with(tmp, key, exercise, solution)
    graded = grade(lab, str(folder), root, folder / "grade.log", [exercise])
    failed = [c for e in graded.exercises for c in e.checks if not c.passed]
    verdicts = [verdict(key, exercise, "", failed, graded.seconds)]
    mutants = mutants_of(root, exercise)
    if not mutants:
        return verdicts
    copies = {str(copy_with(tmp, m.key, exercise, m.apply(solution))): m for m in mutants}
    started = time.monotonic()
    caught = grade_each(exercise, list(copies), root, tmp / f"lab{lab.id}-{exercise.id}-mutants.log")
    seconds = (time.monotonic() - started) / len(copies)
    return verdicts + [
        verdict(m.key, exercise, m.mistake, caught[impl], seconds) for impl, m in copies.items()
    ]


def verdict(
    key: str, exercise: Exercise, mistake: str, failed: list[CheckOutcome], seconds: float
) -> Verdict:
    return Verdict(key, exercise, mistake, [c.name for c in failed], [c.message for c in failed], seconds)


def run(labs: list[Lab], root: Path, workers: int = 2) -> list[Verdict]:
    """Grade every exercise's solution and mutants, two exercises at a time (a grading mostly
    waits on its child process)."""
    jobs = [(lab, e) for lab in labs for e in lab.exercises if solution_path(root, e).exists()]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda job: judge_exercise(job[0], job[1], root, Path(tmp)), jobs)
        return [v for verdicts in results for v in verdicts]


def problems_of(labs: list[Lab], root: Path, verdicts: list[Verdict]) -> list[str]:
    """Missing solutions or mutants, solutions that fail, and mutants that survive."""
    problems = []
    for lab in labs:
        for e in lab.exercises:
            if not solution_path(root, e).exists():
                problems.append(f"{solution_path(root, e).relative_to(root)}: no solution for {e.id}")
            if not mutants_of(root, e):
                problems.append(f"{mutants_path(root, e).relative_to(root)}: no mutant for {e.id}")
    for v in verdicts:
        if v.key.endswith("/solution") and v.failed:
            problems.append(f"{v.key} fails '{v.failed[0]}': {v.messages[0]}")
        elif not v.key.endswith("/solution") and not v.failed:
            problems.append(
                f"mutant {v.key} survived: no check of {v.exercise.grader} fails on '{v.mistake}'"
            )
    return problems


def chosen_labs(labs: list[Lab], lab_id: str | None) -> list[Lab]:
    if lab_id is None:
        return [lab for lab in labs if lab.exercises]
    chosen = [lab for lab in labs if str(lab.id) == str(lab_id) and lab.exercises]
    if not chosen:
        raise LabError(f"no lab {lab_id} with exercises; labs are {', '.join(str(lab.id) for lab in labs)}")
    return chosen


def print_report(console: Console, labs: list[Lab], verdicts: list[Verdict], detail: bool = True) -> None:
    """Per exercise: how many mutants were caught; with `detail`, the solution's verdict and
    each mutant with the check that caught it."""
    for lab in labs:
        for e in lab.exercises:
            mine = [v for v in verdicts if v.exercise == e]
            mutants = [v for v in mine if not v.key.endswith("/solution")]
            caught = sum(bool(v.failed) for v in mutants)
            console.print(f"lab {lab.id} {e.id}: {caught}/{len(mutants)} mutants caught", highlight=False)
            for v in mine if detail else []:
                if v.key.endswith("/solution"):
                    state = "passes" if not v.failed else f"FAILS '{v.failed[0]}'"
                    console.print(f"  solution {state}", highlight=False, markup=False)
                else:
                    by = f"caught by '{v.failed[0]}'" if v.failed else "SURVIVED"
                    console.print(
                        f"  {v.key.rsplit('/', 1)[1]}: {v.mistake} -> {by}", highlight=False, markup=False
                    )
