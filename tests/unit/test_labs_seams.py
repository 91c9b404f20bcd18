"""Exercises are seams, not copies: checked on the recorded skeletons without running a grader."""

from __future__ import annotations

from mlops_lab.labs.manifest import load_manifest, repo_root
from mlops_lab.labs.runner import IMPORT_FAILED, CheckOutcome
from mlops_lab.labs.verify import fails_for_its_todo, private_imports, seam_problems, shared_code_lines


def test_every_skeleton_is_a_seam_of_the_module_it_mirrors() -> None:
    """No skeleton imports a private name or shares more than a few code lines with its mirror."""
    root = repo_root()
    assert seam_problems(root, load_manifest(root)) == []


def test_private_imports_are_found_however_they_are_written() -> None:
    source = (
        "from __future__ import annotations\n"
        "from mlops_lab.lifecycle.gate import GateVerdict, _worst_slice\n"
        "import mlops_lab._internal\n"
        "from mlops_lab._private import thing\n"
    )
    assert private_imports(source) == ["_worst_slice", "mlops_lab._internal", "mlops_lab._private"]
    assert private_imports("from mlops_lab.lifecycle.gate import GateVerdict\n") == []


def test_shared_lines_ignore_signatures_docstrings_and_imports_but_count_logic() -> None:
    mirror = (
        "def score(model, rows: list, *, threshold: float = 0.5) -> list:\n"
        '    """Score rows."""\n'
        "    import numpy as np\n"
        "    values = model.predict_proba(rows)[:, 1]\n"
        "    return [bool(v >= threshold) for v in values]\n"
    )
    skeleton = (
        "def score(model, rows: list, *, threshold: float = 0.5) -> list:\n"
        '    """Score rows: your turn."""\n'
        "    values = model.predict_proba(rows)[:, 1]\n"
        '    raise NotImplementedError("TODO(lab-1): decide")\n'
    )
    assert shared_code_lines(skeleton, mirror) == ["values = model.predict_proba(rows)[:, 1]"]


def test_a_skeleton_may_fail_on_its_todo_or_an_assertion_never_on_plumbing() -> None:
    assert fails_for_its_todo(CheckOutcome("c", False, "TODO(lab-1): the 503", "NotImplementedError"))
    assert fails_for_its_todo(CheckOutcome("c", False, "expected 422, got 200", "AssertionError"))
    assert not fails_for_its_todo(CheckOutcome("c", False, "name 'holder' is not defined", "NameError"))
    assert not fails_for_its_todo(CheckOutcome("c", False, "module has no attribute 'x'", "AttributeError"))
    assert not fails_for_its_todo(
        CheckOutcome("c", False, f"{IMPORT_FAILED} exercises/lab1/app.py: ...", "Failed")
    )
