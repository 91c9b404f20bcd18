"""The labs' self-check (`mlops-lab lab verify`, run by `make test`) and skeleton reset.

    mlops-lab lab verify            # every check below; exit 1 with the list of problems
    mlops-lab lab verify --relock   # after changing a skeleton on purpose: record it
    mlops-lab lab reset 1           # restore exercises/lab1 to the skeleton (asks first)

For every exercise in labs/labs.toml: the reference passes every check, the untouched skeleton
fails its checks, the skeleton has TODO(lab-N) markers, and nothing under exercises/,
labs/graders/ or labs/scenarios/ is unlisted. The docs nav, the notebooks and the README table
must name every lab.

The pristine skeletons are git blobs recorded in labs/skeletons.json, so a learner who edits
(or commits) their exercises can still reset them, and the self-check always grades the
skeleton as shipped, never the learner's work.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console

from mlops_lab.labs.impl import REFERENCE
from mlops_lab.labs.manifest import Lab, LabError, get_lab, load_manifest, repo_root
from mlops_lab.labs.runner import grade

LOCK = Path("labs/skeletons.json")


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


def verify(console: Console) -> list[str]:
    root = repo_root()
    labs = load_manifest(root)
    problems = consistency_problems(root, labs)
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
                failing = sum(not c.passed for c in e.checks)
                if failing == 0:
                    problems.append(
                        f"lab {lab.id} {e.exercise.id}: the untouched skeleton passes every check"
                    )
            console.print(
                f"lab {lab.id}: reference {ref.passed_checks}/{ref.total_checks} checks pass "
                f"({ref.seconds:.0f} s); skeleton {skel.passed_checks}/{skel.total_checks} "
                f"({skel.seconds:.0f} s), every exercise failing: "
                f"{all(not e.passed for e in skel.exercises)}",
                highlight=False,
            )
    return problems
