"""A learner's saved progress, and what makes a pass still valid (the labs' shared memory).

    python -c "import pathlib, mlops_lab.labs.progress as p; print(p.load_progress(pathlib.Path('var')))"

<home>/labs/progress.json holds, per lab, the exercises graded and the fingerprint (the
exercise file and its grader, hashed) each one passed at. The runner skips an exercise whose
fingerprint is unchanged; `make demo IMPL=exercises` and the scenarios run the learner's code
for exactly those exercises (mlops_lab.labs.impl.choose).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mlops_lab.labs.manifest import Exercise, Lab

EXERCISES = "exercises"


def learner_base(impl: str, root: Path) -> Path:
    """The folder that holds a learner's exercises/: the checkout, or a given copy."""
    return root if impl == EXERCISES else Path(impl)


def fingerprint(base: Path, root: Path, exercise: Exercise) -> str:
    """What a pass is valid for: the learner's exercise file and its grader, byte for byte."""
    digest = hashlib.sha256()
    for file in (base / exercise.file, root / exercise.grader):
        digest.update(file.read_bytes() if file.exists() else b"missing")
    return digest.hexdigest()[:16]


def progress_path(home: Path) -> Path:
    return home / "labs" / "progress.json"


def progress_key(lab: Lab, impl: str) -> str:
    """The learner's own exercises are saved under the lab's id; a copy elsewhere (`--impl DIR`)
    under its own key, so grading a copy never touches the learner's progress."""
    return str(lab.id) if impl == EXERCISES else f"{lab.id}@{Path(impl).resolve()}"


def load_progress(home: Path) -> dict[str, Any]:
    path = progress_path(home)
    return json.loads(path.read_text()) if path.exists() else {}
