"""Which implementation of an exercise to load: the learner's, the reference, or a given copy.

    python -c "from mlops_lab.labs.impl import resolve; help(resolve)"

`--impl exercises` loads exercises/labN/<file>.py, `--impl reference` imports the reference
module it mirrors, and `--impl <directory>` loads <directory>/exercises/labN/<file>.py (the
self-check grades the pristine skeleton that way). Exercise files are loaded by path, so they
need no package on sys.path and one broken exercise cannot break the import of another.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from mlops_lab.labs.manifest import Exercise, LabError, load_manifest, repo_root
from mlops_lab.labs.progress import EXERCISES, fingerprint, learner_base, load_progress, progress_key
from mlops_lab.parts import Part

REFERENCE = "reference"


def load_impl(exercise: Exercise, impl: str, root: Path) -> ModuleType:
    if impl == REFERENCE:
        return importlib.import_module(exercise.mirrors)
    base = root if impl == EXERCISES else Path(impl)
    path = base / exercise.file
    if not path.is_file():
        raise LabError(f"{path} does not exist (restore it with: mlops-lab lab reset {exercise.lab})")
    name = f"mlops_lab_exercise_{exercise.lab}_{exercise.id.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LabError(f"{path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pydantic look their module up by name
    spec.loader.exec_module(module)
    return module


def resolve(mirrors: str, impl: str, root: Path | None = None) -> ModuleType:
    """The module that plays the reference module `mirrors` (e.g. "mlops_lab.serving.holder").

    The one way any command loads learner code: `impl` "reference" is the reference module
    itself; "exercises" (or a directory holding a copy of exercises/) is the exercise file that
    mirrors it in labs/labs.toml. A reference module no exercise mirrors is always the reference.
    """
    if impl == REFERENCE:
        return importlib.import_module(mirrors)
    root = root or repo_root()
    for lab in load_manifest(root):
        for exercise in lab.exercises:
            if exercise.mirrors == mirrors:
                return load_impl(exercise, impl, root)
    return importlib.import_module(mirrors)


def part_of(impl: str, learner: Iterable[str] | None = None, root: Path | None = None) -> Part:
    """Reference module name -> the module that plays it: the learner's (`impl`) for the
    exercises `learner` names (every one when None), the reference for the others. How a child
    process (a model server, the retraining DAG) is told whose code to run."""
    if impl == REFERENCE:
        return lambda mirrors: resolve(mirrors, REFERENCE)
    root = root or repo_root()
    every = tuple(e for lab in load_manifest(root) for e in lab.exercises)
    known = {e.id for e in every}
    ids = known if learner is None else {x.strip() for x in learner if x.strip()}
    if ids - known:
        raise LabError(f"no exercise {', '.join(sorted(ids - known))} in labs/labs.toml")
    return Choice(impl, frozenset(ids), every).resolve


@dataclass(frozen=True)
class Choice:
    """Whose code plays each exercise in a run of the whole system (`make demo IMPL=exercises`,
    the scenarios): the learner's for every exercise that is solved (it passed its grader and
    is unchanged since), the reference for the others. impl "reference" chooses none."""

    impl: str
    learner: frozenset[str]  # ids of the exercises whose learner code runs
    exercises: tuple[Exercise, ...]  # every exercise of the ready labs, in manifest order

    def resolve(self, mirrors: str) -> ModuleType:
        """Like `resolve`, for this choice: the learner's module only where it was chosen."""
        chosen = [e for e in self.exercises if e.mirrors == mirrors and e.id in self.learner]
        return resolve(mirrors, self.impl if chosen else REFERENCE)

    def whose(self, exercise: Exercise) -> str:
        return "yours" if exercise.id in self.learner else "reference"

    @property
    def unsolved(self) -> list[Exercise]:
        return [e for e in self.exercises if e.id not in self.learner]

    def rows(self) -> list[tuple[str, str, str]]:
        """(exercise, file, whose code ran): the first table of the demo's report."""
        return [(f"lab {e.lab} {e.id}", e.file, self.whose(e)) for e in self.exercises]


def choose(impl: str, home: Path, *, strict: bool = False, root: Path | None = None) -> Choice:
    """The choice for `impl` from the learner's saved progress under `home`. With `strict`, an
    unsolved exercise is an error that names the `make lab-N` commands to run first."""
    root = root or repo_root()
    labs = [lab for lab in load_manifest(root) if lab.exercises]
    every = tuple(e for lab in labs for e in lab.exercises)
    if impl == REFERENCE:
        return Choice(impl, frozenset(), every)
    progress = load_progress(home)
    base = learner_base(impl, root)
    solved = set()
    for lab in labs:
        passed_at = progress.get(progress_key(lab, impl), {}).get("passed_at", {})
        solved |= {e.id for e in lab.exercises if passed_at.get(e.id) == fingerprint(base, root, e)}
    choice = Choice(impl, frozenset(solved), every)
    if strict and choice.unsolved:
        missing = sorted({e.lab for e in choice.unsolved})
        names = ", ".join(e.id for e in choice.unsolved)
        commands = " and ".join(f"make lab-{n}" for n in missing)
        raise LabError(f"STRICT=1: not solved yet: {names}; run {commands} until every check passes")
    return choice
