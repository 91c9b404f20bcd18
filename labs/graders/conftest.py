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
from collections.abc import Generator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from mlops_lab.labs.impl import EXERCISES, load_impl
from mlops_lab.labs.manifest import exercise_for_grader, load_manifest, repo_root
from mlops_lab.labs.runner import IMPORT_FAILED  # the self-check tells a broken import from a TODO

if TYPE_CHECKING:  # imported when a grader asks for the model: sklearn costs a second at start
    from mlops_lab.labs.grading import TinyModel

ROOT = repo_root()
_results: list[dict[str, Any]] = []


_caught: set[str] = set()  # --impls: the implementations a check has already failed on


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--impl", default=EXERCISES, help="exercises (default), reference, or a directory")
    parser.addoption(
        "--impls",
        default=None,
        help="several directories separated by os.pathsep, graded in one session (the mutants): each "
        "check runs once per directory, and a directory's remaining checks are skipped once one failed",
    )


def _impls(config: pytest.Config) -> list[str] | None:
    value = config.getoption("--impls")
    return value.split(os.pathsep) if value else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    impls = _impls(metafunc.config)
    if impls and "impl" in metafunc.fixturenames:
        metafunc.parametrize(
            "impl", impls, indirect=True, scope="module", ids=[f"impl{i}" for i in range(len(impls))]
        )


def _impl_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("impl") if callspec is not None else None


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Only with --impls (the self-check grading mutants): a mutant is proven caught by its first
    # failing check, so its other checks would only cost time. Not an environment limit and never
    # a way to pass: a learner's file, the reference and each solution are graded with --impl,
    # where nothing is ever skipped, and a skipped check is not recorded as an outcome at all.
    if _impl_of(item) in _caught:
        item.user_properties.append(("already_caught", True))  # not a check outcome: not recorded
        pytest.skip("this implementation already failed a check")


@pytest.fixture(scope="module")
def impl(request: pytest.FixtureRequest) -> ModuleType:
    grader = Path(str(request.path)).resolve().relative_to(ROOT).as_posix()
    exercise = exercise_for_grader(load_manifest(ROOT), grader)
    which = getattr(request, "param", None) or request.config.getoption("--impl")
    try:
        return load_impl(exercise, which, ROOT)
    except Exception as exc:  # a syntax error in the learner's file fails its checks, in plain words
        pytest.fail(f"{IMPORT_FAILED} {exercise.file}: {exc.__class__.__name__}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def tiny_model() -> TinyModel:
    from mlops_lab.labs.grading import fit_tiny_model

    return fit_tiny_model()


def _message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    text = text.removeprefix("AssertionError: ").removeprefix("Failed: ")
    return text.split("\nassert ")[0].strip()[:800]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Keep the type of what a failing check raised: NotImplementedError (a TODO), an
    AssertionError (a check), or something else (a bug, or broken plumbing)."""
    outcome = yield
    report = outcome.get_result()
    report.user_properties.append(("impl", _impl_of(item)))
    if call.excinfo is not None and not call.excinfo.errisinstance(pytest.skip.Exception):
        report.user_properties.append(("raised", call.excinfo.typename))
        if report.failed and _impl_of(item) is not None:
            _caught.add(str(_impl_of(item)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if dict(report.user_properties).get("already_caught"):
        return
    if report.when == "call" or report.outcome != "passed":
        _results.append(
            {
                "nodeid": report.nodeid,
                "when": report.when,
                "outcome": report.outcome,
                "message": "" if report.passed else _message(report),
                "raised": dict(report.user_properties).get("raised"),
                "impl": dict(report.user_properties).get("impl"),
            }
        )


def _name_and_hint(item: pytest.Item) -> tuple[str, str]:
    """A check's name is its docstring's first line; a paragraph after a blank line is its hint."""
    doc = (getattr(item, "function", None).__doc__ or item.name).strip()  # type: ignore[union-attr]
    head, _, hint = doc.partition("\n\n")
    return head.splitlines()[0].strip(), " ".join(hint.split())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:  # the runner needs each check's name before it has run
        name, hint = _name_and_hint(item)
        item.user_properties.append(("check", name))
        _results.append(
            {"nodeid": item.nodeid, "when": "collect", "check": name, "hint": hint, "file": str(item.path)}
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("MLOPS_LAB_RESULTS")
    if target:
        Path(target).write_text(json.dumps(_results, indent=1))
