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
from pathlib import Path
from types import ModuleType

from mlops_lab.labs.manifest import Exercise, LabError, load_manifest, repo_root

REFERENCE = "reference"
EXERCISES = "exercises"


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


def exercise_module(exercise_id: str, impl: str, root: Path | None = None) -> ModuleType:
    """The module of the exercise with this id in labs/labs.toml, as `impl` provides it."""
    root = root or repo_root()
    for lab in load_manifest(root):
        for exercise in lab.exercises:
            if exercise.id == exercise_id:
                return load_impl(exercise, impl, root)
    raise LabError(f"no exercise {exercise_id!r} in labs/labs.toml")
