"""The labs' self-check (`mlops-lab lab verify`, run by `make test`) and skeleton reset.

    mlops-lab lab verify            # every check below; exit 1 with the list of problems
    mlops-lab lab verify --relock   # after changing a skeleton on purpose: record it
    mlops-lab lab reset 1           # restore exercises/lab1 to the skeleton (asks first)

For every exercise in labs/labs.toml: the reference passes every check; the untouched skeleton
fails, and for the reason its TODO gives (its NotImplementedError or a check's assertion, never
an import, attribute or name error of the plumbing); the skeleton has TODO(lab-N) markers,
imports no private (`_`) name and is a seam, not a copy (at most SHARED_LINES code lines
identical to the module it mirrors); nothing under exercises/, labs/graders/ or labs/scenarios/
is unlisted. The docs nav, the notebooks and the README table must name every lab.

The pristine skeletons are git blobs recorded in labs/skeletons.json, so a learner who edits
(or commits) their exercises can still reset them, and the self-check always grades the
skeleton as shipped, never the learner's work.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console

from mlops_lab.labs import mutants
from mlops_lab.labs.impl import REFERENCE
from mlops_lab.labs.manifest import Lab, LabError, get_lab, load_manifest, repo_root
from mlops_lab.labs.runner import IMPORT_FAILED, CheckOutcome, grade

LOCK = Path("labs/skeletons.json")
# What a failing check of an untouched skeleton may raise: the TODO's NotImplementedError, a
# check's assertion (pytest.fail is an assertion too), or a timeout a skeleton can cause.
TODO_REASONS = ("NotImplementedError", "AssertionError", "Failed", "Timeout")
SHARED_LINES = 8  # identical code lines a skeleton may share with its mirror (signatures, mostly)


def _git(root: Path, *args: str, text: bool = True) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=text, check=True)
    except FileNotFoundError as exc:
        raise LabError("git is needed to restore skeletons (install git)") from exc
    except subprocess.CalledProcessError as exc:
        raise LabError(f"git {' '.join(args)} failed: {str(exc.stderr).strip()}") from exc
    return str(proc.stdout)


def read_lock(root: Path) -> dict[str, str]:
    path = root / LOCK
    if not path.exists():
        raise LabError(f"{LOCK} is missing: run mlops-lab lab verify --relock")
    return dict(json.loads(path.read_text()))


def relock(root: Path) -> dict[str, str]:
    """Record the current exercise files as the skeletons (a maintainer's command)."""
    files = [e.file for lab in load_manifest(root) for e in lab.exercises]
    blobs = _git(root, "hash-object", "-w", *files).split()
    lock = dict(zip(files, blobs, strict=True))
    (root / LOCK).write_text(json.dumps(lock, indent=1) + "\n")
    return lock


def skeleton_text(root: Path, blob: str) -> str:
    return _git(root, "cat-file", "blob", blob)


def materialize(root: Path, dest: Path) -> None:
    """Write every pristine skeleton under dest/ with its repo path (dest is then an --impl)."""
    for path, blob in read_lock(root).items():
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(skeleton_text(root, blob))


def reset(lab_id: str, console: Console, yes: bool) -> None:
    root = repo_root()
    lab = get_lab(load_manifest(root), lab_id)
    lock = read_lock(root)
    files = [e.file for e in lab.exercises]
    if not yes:
        import typer

        console.print("This replaces your work in:\n  " + "\n  ".join(files))
        if not typer.confirm("Restore the skeletons?", default=False):
            raise LabError("nothing reset")
    for path in files:
        (root / path).write_text(skeleton_text(root, lock[path]))
    console.print(f"lab {lab.id}: {len(files)} exercise files restored to the skeleton")


# ---------------------------------------------------------------- the self-check
def consistency_problems(root: Path, labs: list[Lab]) -> list[str]:
    """Everything that must agree with labs.toml, checked without running anything."""
    problems: list[str] = []
    listed = {e.file for lab in labs for e in lab.exercises}
    graders = {e.grader for lab in labs for e in lab.exercises}
    scenarios = {s.module_file for lab in labs for s in lab.scenarios}
    exercise_ids = {e.id for lab in labs for e in lab.exercises}
    problems += [
        f"scenario {s.key} needs {x}, which is no exercise of labs/labs.toml"
        for lab in labs
        for s in lab.scenarios
        for x in s.needs
        if x not in exercise_ids
    ]
    solutions = {e.solution for lab in labs for e in lab.exercises}
    mutant_lists = {f"labs/mutants/lab{e.lab}/{e.id}.toml" for lab in labs for e in lab.exercises}
    for pattern, known in (
        ("labs/solutions/lab*/*.py", solutions),
        ("labs/mutants/lab*/*.toml", mutant_lists),
    ):
        on_disk = {p.relative_to(root).as_posix() for p in root.glob(pattern)}
        problems += [f"{p}: belongs to no exercise of labs/labs.toml" for p in sorted(on_disk - known)]
    for kind, pattern, known in (
        ("exercise", "exercises/**/*.py", listed),
        ("grader", "labs/graders/lab*/*.py", graders),
        ("scenario", "labs/scenarios/lab*/*.py", scenarios),
    ):
        on_disk = {p.relative_to(root).as_posix() for p in root.glob(pattern) if p.name != "__init__.py"}
        problems += [f"{p}: not listed in labs/labs.toml" for p in sorted(on_disk - known)]
        problems += [
            f"{p}: listed as a {kind} in labs/labs.toml but missing" for p in sorted(known - on_disk)
        ]
    lock = read_lock(root)
    for lab in labs:
        for e in lab.exercises:
            blob = lock.get(e.file)
            if blob is None:
                problems.append(f"{e.file}: no skeleton recorded (mlops-lab lab verify --relock)")
            elif f"TODO(lab-{lab.id})" not in skeleton_text(root, blob):
                problems.append(f"{e.file}: the skeleton has no TODO(lab-{lab.id}) marker")
            elif os.environ.get("CI") and _git(root, "hash-object", e.file).strip() != blob:
                problems.append(
                    f"{e.file}: differs from its recorded skeleton (mlops-lab lab verify --relock)"
                )
    problems += _docs_problems(root, labs)
    return problems


def _docs_problems(root: Path, labs: list[Lab]) -> list[str]:
    problems = []
    nav = (root / "mkdocs.yml").read_text()
    readme = (root / "README.md").read_text()
    for lab in labs:
        if not re.search(rf"Lab {lab.id} - ", nav):
            problems.append(f"mkdocs.yml: no nav entry 'Lab {lab.id} - ...'")
        if lab.title not in readme:
            problems.append(f"README.md: the lab table does not list lab {lab.id} ({lab.title!r})")
        for path in (f"docs/{lab.page}" if lab.page else None, lab.notebook):
            if path and not (root / path).is_file():
                problems.append(f"{path}: named by lab {lab.id} in labs/labs.toml but missing")
    return problems


def fails_for_its_todo(check: CheckOutcome) -> bool:
    """A skeleton's check must fail on its TODO's NotImplementedError or an assertion; an
    ImportError, AttributeError, NameError (...) means the plumbing around the TODO is broken."""
    if check.message.startswith(IMPORT_FAILED):
        return False
    return check.raised is None or check.raised in TODO_REASONS or "NotImplementedError" in check.message


def seam_problems(root: Path, labs: list[Lab]) -> list[str]:
    """Skeletons import no private name and share at most SHARED_LINES code lines with their mirror."""
    problems = []
    lock = read_lock(root)
    for lab in labs:
        for e in lab.exercises:
            if e.file not in lock:
                continue
            text = skeleton_text(root, lock[e.file])
            private = private_imports(text)
            if private:
                problems.append(f"{e.file}: imports private names {', '.join(private)} (make them public)")
            mirror = importlib.util.find_spec(e.mirrors)
            if mirror is None or mirror.origin is None:
                problems.append(f"{e.file}: mirrors {e.mirrors}, which cannot be found")
                continue
            shared = shared_code_lines(text, Path(mirror.origin).read_text())
            if len(shared) > SHARED_LINES:
                problems.append(
                    f"{e.file}: shares {len(shared)} code lines with {e.mirrors} (at most {SHARED_LINES}): "
                    "a copy, not a seam; e.g. " + " | ".join(shared[:3])
                )
    return problems


def private_imports(source: str) -> list[str]:
    """Names starting with `_` that the source imports from another module (`__future__` aside)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names += [a.name for a in node.names if a.name.startswith("_")]
            if node.module and any(part.startswith("_") for part in node.module.split(".")):
                names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names if any(p.startswith("_") for p in a.name.split("."))]
    return sorted(set(names))


def code_lines(source: str) -> set[str]:
    """The lines that carry logic: no blanks, comments, imports, docstrings, signatures (a seam
    has the same ones as its mirror, by design) or short lines (brackets, `else:`)."""
    skip: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                skip |= set(range(node.lineno, first.lineno))
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip |= set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return {
        line
        for number, raw in enumerate(source.splitlines(), 1)
        if number not in skip
        and len(line := raw.strip()) >= 12
        and not line.startswith(("#", "import ", "from ", "@"))
    }


def shared_code_lines(skeleton: str, mirror: str) -> list[str]:
    return sorted(code_lines(skeleton) & code_lines(mirror))


def verify(console: Console, repeat: int = 1, with_mutants: bool = True) -> list[str]:
    """Every check above, and the solutions and mutants (mlops_lab.labs.mutants); with
    repeat > 1 the reference is graded that many times in all, and any run that fails a check
    is a problem (a flaky grader fails correct code)."""
    root = repo_root()
    labs = load_manifest(root)
    ready = [lab for lab in labs if lab.exercises]
    problems: list[str] = []
    if with_mutants:
        verdicts = mutants.run(ready, root)
        mutants.print_report(console, ready, verdicts, detail=False)
        problems += mutants.problems_of(ready, root, verdicts)
    problems += consistency_problems(root, labs) + seam_problems(root, labs)
    with tempfile.TemporaryDirectory() as tmp:
        materialize(root, Path(tmp))
        for lab in labs:
            if not lab.exercises:
                continue
            log_dir = Path(tmp) / "logs"
            with ThreadPoolExecutor(2) as pool:  # two pytest processes: the graders mostly wait on I/O
                ref_run = pool.submit(grade, lab, REFERENCE, root, log_dir / f"lab-{lab.id}-reference.log")
                skel_run = pool.submit(grade, lab, tmp, root, log_dir / f"lab-{lab.id}-skeleton.log")
                ref, skel = ref_run.result(), skel_run.result()
            for e in ref.exercises:
                for c in e.checks:
                    if not c.passed:
                        problems.append(
                            f"lab {lab.id} {e.exercise.id}: the reference fails '{c.name}': {c.message}"
                        )
            for e in skel.exercises:
                failing = [c for c in e.checks if not c.passed]
                if not failing:
                    problems.append(
                        f"lab {lab.id} {e.exercise.id}: the untouched skeleton passes every check"
                    )
                problems += [
                    f"lab {lab.id} {e.exercise.id}: the skeleton fails '{c.name}' for a reason its TODO "
                    f"does not give: {c.message}"
                    for c in failing
                    if not fails_for_its_todo(c)
                ]
            console.print(
                f"lab {lab.id}: reference {ref.passed_checks}/{ref.total_checks} checks pass "
                f"({ref.seconds:.0f} s); skeleton {skel.passed_checks}/{skel.total_checks} "
                f"({skel.seconds:.0f} s), every exercise failing: "
                f"{all(not e.passed for e in skel.exercises)}",
                highlight=False,
            )
            problems += repeat_reference(lab, root, log_dir, repeat - 1, console)
    return problems


def repeat_reference(lab: Lab, root: Path, log_dir: Path, times: int, console: Console) -> list[str]:
    """Grade the reference `times` more times: a grader that fails correct code even once is flaky."""
    problems = []
    for run in range(2, times + 2):
        outcome = grade(lab, REFERENCE, root, log_dir / f"lab-{lab.id}-reference-{run}.log")
        failed = [(e.exercise.id, c) for e in outcome.exercises for c in e.checks if not c.passed]
        problems += [
            f"lab {lab.id} {eid}: run {run} of the reference fails '{c.name}': {c.message}"
            for eid, c in failed
        ]
        console.print(
            f"lab {lab.id}: reference run {run}/{times + 1}: "
            f"{outcome.passed_checks}/{outcome.total_checks} checks ({outcome.seconds:.0f} s)",
            highlight=False,
        )
    return problems
