"""The project deep dive (labs/deepdive.py, labs/traces.py, `mlops-lab lab deep-dive`) from synthetic traces.

A lab of three exercises lives in a temporary checkout (exercise files and graders), its progress
is a progress.json as the runner saves it, and the scenario timeline is written by the real
`Timeline.markdown` of labs/scenarios.py, so the parser reads what run_scenario writes.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from mlops_lab.labs import deepdive, traces
from mlops_lab.labs.manifest import Exercise, Lab, Scenario
from mlops_lab.labs.progress import fingerprint, progress_path
from mlops_lab.labs.timeline import Event, Timeline

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GRADER = '''"""Grader."""


def test_one(impl):
    """A 422 for an unknown field

    Hint."""


def test_two(impl):
    """Never a 500 on NaN"""


class TestMore:
    def test_three(self, impl):
        """Ready only with a model"""
'''
YOURS = "model-holder, request-schema"  # how run_scenario's setup line names the learner's code
SCENARIO = Scenario(
    1,
    "registry-down",
    "The registry is down when a server starts",
    "A new server cannot resolve the champion.",
    "/readyz 503 with Retry-After.",
    "Readiness keeps it out of rotation; it retries.",
)


def exercise(name: str) -> Exercise:
    return Exercise(
        lab=1,
        id=name,
        file=f"exercises/lab1/{name}.py",
        mirrors=f"mlops_lab.serving.{name}",
        grader=f"labs/graders/lab1/test_{name}.py",
        teaches=f"what {name} teaches",
        hints=(),
    )


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    root = tmp_path / "checkout"
    exercises = tuple(exercise(n) for n in ("schemas", "handlers", "holder"))
    for e in exercises:
        for path, text in ((e.file, f"# {e.id}\n"), (e.grader, GRADER)):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
    return Lab(1, "serving", "Serving: a model behind an API", "ready", None, None, exercises, (SCENARIO,))


def page(lab: Lab, home: Path, tmp_path: Path) -> str:
    return deepdive.deep_dive([lab], home, tmp_path / "checkout", now=NOW)


def test_with_no_progress_it_says_it_is_lab_work_and_what_to_run_first(lab: Lab, tmp_path: Path) -> None:
    text = page(lab, tmp_path / "home", tmp_path)
    before_any_section = text.split("\n## ", 1)[0]
    assert "not production experience" in before_any_section, "the honesty warning comes first"
    assert 'never "in production"' in before_any_section
    assert "## Start here" in text and "`make lab-1`" in text
    assert "0 of 3 exercises passed, 0 scenario timelines, 0 measured figures" in text
    assert "Not started: `make lab-1` grades exercises/lab1/ (schemas, handlers, holder)" in text
    assert "None yet. `make scenario S=list`" in text
    assert "`make bench` writes it" in text


def test_exercises_passed_changed_and_started_with_their_checks(lab: Lab, tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "checkout"
    schemas = lab.exercises[0]
    progress = {
        "1": {
            "exercises": {"schemas": [3, 3], "handlers": [3, 3], "holder": [1, 3]},
            "passed_at": {"schemas": fingerprint(root, root, schemas), "handlers": "0123456789abcdef"},
        },
        "1@/some/copy": {"passed_at": {"holder": "whatever"}},  # a graded copy is not the learner's
    }
    progress_path(home).parent.mkdir(parents=True)
    progress_path(home).write_text(json.dumps(progress))
    text = page(lab, home, tmp_path)
    assert "## Start here" not in text
    assert "1 of 3 exercises passed" in text
    assert "- **schemas** (`exercises/lab1/schemas.py`): passed, 3 checks. *what schemas teaches*" in text
    for check in ("A 422 for an unknown field", "Never a 500 on NaN", "Ready only with a model"):
        assert f"    - {check}\n" in text  # the checks by name, as `make lab-1` names them
    assert "**handlers** (`exercises/lab1/handlers.py`): passed, but the file or its grader changed" in text
    assert "**holder** (`exercises/lab1/holder.py`): 1 of 3 checks at the last grading; `make hint-1`" in text
    assert "I wrote schemas." in text, "the walkthrough names only what passed and is unchanged"
    assert "Why does /healthz not depend on the model" in text, "the lab's questions"


def write_timeline(home: Path, passed: bool = True) -> Path:
    timeline = Timeline(Console(file=io.StringIO()))
    timeline.events = [
        Event(0.0, "info", "setup: starting an MLflow server"),
        Event(9.5, "inject", "the MLflow server is stopped"),
        Event(
            9.6, "info", "setup: starting the stable model server (your code: model-holder, request-schema)"
        ),
        Event(12.0, "symptom", "/readyz answers 503"),
        Event(12.0, "check", "not ready while no model could be loaded", ok=True),
        Event(17.5, "signal", "load_failures 2 | and counting"),
        Event(23.0, "mitigate", "the MLflow server is back"),
        Event(26.5, "check", "it became ready by itself", ok=passed),
    ]
    path = traces.timeline_path(home, SCENARIO)
    path.parent.mkdir(parents=True)
    path.write_text(timeline.markdown(SCENARIO, passed))
    return path


def test_a_timeline_is_read_as_run_scenario_writes_it(tmp_path: Path) -> None:
    path = write_timeline(tmp_path / "home")
    assert path == tmp_path / "home" / "scenarios" / "lab1-registry-down" / "timeline.md"
    incident = traces.read_timeline(SCENARIO, path)
    assert incident is not None and incident.passed
    assert len(incident.events) == 8
    assert incident.injected_at == 9.5
    assert incident.after_injection("symptom") == pytest.approx(2.5)
    assert incident.after_injection("signal") == pytest.approx(8.0)
    assert incident.after_injection("mitigate") == pytest.approx(13.5)
    assert incident.duration_s == 26.5
    assert incident.checks == (2, 2)
    assert incident.whose_code == "model-holder, request-schema"
    assert incident.first("signal").detail == "load_failures 2 | and counting"  # type: ignore[union-attr]


def test_the_incidents_with_symptom_signal_mitigation_and_times(lab: Lab, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_timeline(home)
    text = page(lab, home, tmp_path)
    assert "## Start here" not in text, "a scenario run is something to talk about"
    section = text.split("### lab1/registry-down: The registry is down when a server starts", 1)[1]
    assert "PASSED in 26.5 s, 2 of 2 checks held; the servers ran your code for: model-holder" in section
    assert "- **Symptom**: A new server cannot resolve the champion. Seen: /readyz answers 503" in section
    assert "- **Signal**: /readyz 503 with Retry-After. Seen: load_failures 2 | and counting" in section
    assert "Done: the MLflow server is back" in section
    assert "symptom 2.5 s, signal 8.0 s, mitigation 13.5 s" in section
    assert "The signal came 8.0 s after the fault here" in section
    assert '("Readiness keeps it out of rotation")' in section
    assert "**One incident (20 s).** `lab1/registry-down`" in text, "the walkthrough tells it"


def test_a_failed_run_and_the_reference_are_said_plainly(lab: Lab, tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write_timeline(home, passed=False)
    path.write_text(
        path.read_text().replace("model-holder, request-schema", "none solved yet: the reference")
    )
    text = page(lab, home, tmp_path)
    assert "FAILED in 26.5 s, 1 of 2 checks held" in text
    assert "it ran the reference code, not yours: say so" in text
    assert "It failed: compare with `make scenario S=lab1/registry-down`" in text


def test_the_numbers_measured_by_make_bench(lab: Lab, tmp_path: Path) -> None:
    bench = tmp_path / "home" / "bench"
    bench.mkdir(parents=True)
    aa = {"runs": 300, "rolled_back": 0, "rate": 0.0, "upper95": 0.0122}
    (bench / "canary.json").write_text(json.dumps({"aa": {"sequential": aa}}))
    drift = {"null": {"triggers": 0, "windows": 500, "any_column_rate": 0.274}}
    (bench / "drift.json").write_text(json.dumps(drift))
    serving = {"figures": {"concurrency_1": {"predict": {"p50_ms": 0.41, "p99_ms": 2.0}}}}
    (bench / "serving.json").write_text(json.dumps(serving))
    text = page(lab, tmp_path / "home", tmp_path)
    numbers = text.split("## Numbers you measured", 1)[1]
    assert "| A/A false rollbacks of the canary judge | 0 of 300 (0.0%; 95% upper bound 1.22%) |" in numbers
    assert "| drift: retraining triggers on clean windows | 0 of 500 |" in numbers
    assert "| drift: naive 'any column drifted' on the same clean windows | 27.4% of windows |" in numbers
    assert "| predict p50 / p99, one request at a time | 0.41 / 2.00 ms |" in numbers
    assert "router" not in numbers, "a figure whose file is missing is left out, not invented"
    assert "measured: predict p50 / p99 0.41 / 2.00 ms at concurrency 1" in text  # in the walkthrough
    assert "measured: false rollbacks in A/A: 0 of 300" in text


def test_the_command_prints_the_page_and_writes_it(tmp_path: Path) -> None:
    from mlops_lab.cli import app

    home = tmp_path / "home"
    result = CliRunner().invoke(app, ["lab", "deep-dive"], env={"MLOPS_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Project deep dive: your notes\n")
    assert (home / "deep-dive.md").read_text() == result.stdout
    assert f"wrote {home / 'deep-dive.md'}" in result.stderr
