"""Shared plumbing for the lab graders (run by `mlops-lab lab check N`, i.e. `make lab-N`).

- `--impl exercises|reference|<dir>` picks what is graded; the `impl` fixture is the module of
  the exercise that the current grader file grades (from labs/labs.toml).
- Each test is one named check: its docstring is the check's name in the checklist; its
  assertion message says what was expected and what happened.
- When MLOPS_LAB_RESULTS names a file, the outcome of every check is written there as JSON
  for the runner (checklist, score, progress).

Graders test behaviour through public interfaces only (functions, HTTP via TestClient, files),
never by reading the learner's source. They use a small real model fitted in about a second.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mlops_lab.labs.grading import TinyModel, fit_tiny_model
from mlops_lab.labs.impl import EXERCISES, load_impl
from mlops_lab.labs.manifest import exercise_for_grader, load_manifest, repo_root

ROOT = repo_root()
_results: list[dict[str, Any]] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--impl", default=EXERCISES, help="exercises (default), reference, or a directory")


@pytest.fixture(scope="module")
def impl(request: pytest.FixtureRequest) -> ModuleType:
    grader = Path(str(request.path)).resolve().relative_to(ROOT).as_posix()
    exercise = exercise_for_grader(load_manifest(ROOT), grader)
    try:
        return load_impl(exercise, request.config.getoption("--impl"), ROOT)
    except Exception as exc:  # a syntax error in the learner's file fails its checks, in plain words
        pytest.fail(f"could not import {exercise.file}: {exc.__class__.__name__}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def tiny_model() -> TinyModel:
    return fit_tiny_model()


def _message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    text = text.removeprefix("AssertionError: ").removeprefix("Failed: ")
    return text.split("\nassert ")[0].strip()[:800]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        _results.append(
            {
                "nodeid": report.nodeid,
                "when": report.when,
                "outcome": report.outcome,
                "message": "" if report.passed else _message(report),
            }
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:  # the runner needs each check's name before it has run
        doc = (getattr(item, "function", None).__doc__ or item.name).strip().splitlines()[0]  # type: ignore[union-attr]
        item.user_properties.append(("check", doc))
        _results.append({"nodeid": item.nodeid, "when": "collect", "check": doc, "file": str(item.path)})


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("MLOPS_LAB_RESULTS")
    if target:
        Path(target).write_text(json.dumps(_results, indent=1))
