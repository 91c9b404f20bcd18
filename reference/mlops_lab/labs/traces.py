"""What the labs left under a learner's home, read back as records (for the deep dive).

    python -c "import pathlib, mlops_lab.labs.traces as t; print(t.numbers(pathlib.Path('var')))"

- progress: each exercise as <home>/labs/progress.json has it (`make lab-N` saves it), with the
  names of its grader's checks, and whether a pass still holds (the file and grader unchanged);
- incidents: each scenario's <home>/scenarios/labN-<id>/timeline.md, as run_scenario writes it
  (Timeline.markdown in scenarios.py), with when the symptom, signal and mitigation came;
- numbers: the figures `make bench` wrote in <home>/bench/*.json, those that are there.

`mlops-lab lab deep-dive` (deepdive.py) turns them into a page.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_lab.labs.manifest import Exercise, Lab, Scenario
from mlops_lab.labs.progress import fingerprint


# ---------------------------------------------------------------- what you solved
@dataclass(frozen=True)
class Solved:
    exercise: Exercise
    state: str  # "passed", "changed" (passed, edited since), "started" (checks failing), "todo"
    passed_checks: int
    total_checks: int
    checks: tuple[str, ...]  # the grader's check names


def check_names(grader: Path) -> tuple[str, ...]:
    """The checks of a grader, named as `make lab-N` names them: each test's docstring's first line."""
    try:
        tree = ast.parse(grader.read_text())
    except (OSError, SyntaxError):
        return ()
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            doc = ast.get_docstring(node)
            names.append(doc.strip().splitlines()[0] if doc else node.name)
    return tuple(names)


def solved(lab: Lab, progress: dict[str, Any], root: Path) -> list[Solved]:
    """Each exercise of `lab` as your saved progress has it (the lab's own key: your exercises/)."""
    entry = progress.get(str(lab.id), {})
    graded, passed_at = entry.get("exercises", {}), entry.get("passed_at", {})
    out = []
    for e in lab.exercises:
        names = check_names(root / e.grader)
        ok, total = graded.get(e.id, [0, len(names)])
        if e.id in passed_at:
            # A pass is valid for the file and grader it was graded with (the runner's rule).
            state = "passed" if passed_at[e.id] == fingerprint(root, root, e) else "changed"
        else:
            state = "started" if e.id in graded else "todo"
        out.append(Solved(e, state, int(ok), int(total), names))
    return out


# ---------------------------------------------------------------- what you broke
@dataclass(frozen=True)
class Event:
    t: float
    what: str  # inject, symptom, signal, mitigate, info, check passed, check FAILED
    detail: str


@dataclass
class Incident:
    scenario: Scenario
    path: Path
    ran_at: datetime
    passed: bool
    events: list[Event] = field(default_factory=list)

    def first(self, what: str) -> Event | None:
        """The first `what` at or after the first injection (setup lines come before it)."""
        start = self.injected_at
        return next((e for e in self.events if e.what == what and e.t >= start), None)

    @property
    def injected_at(self) -> float:
        return next((e.t for e in self.events if e.what == "inject"), 0.0)

    @property
    def duration_s(self) -> float:
        return self.events[-1].t if self.events else 0.0

    def after_injection(self, what: str) -> float | None:
        event = self.first(what)
        return None if event is None else event.t - self.injected_at

    @property
    def checks(self) -> tuple[int, int]:
        passed = sum(e.what == "check passed" for e in self.events)
        return passed, passed + sum(e.what == "check FAILED" for e in self.events)

    @property
    def whose_code(self) -> str | None:
        """What the scenario's servers ran, as its setup line says (`your code: ...`)."""
        for e in self.events:
            if m := re.search(r"\(your code: (.+)\)$", e.detail):
                return m.group(1)
        return None


def timeline_path(home: Path, scenario: Scenario) -> Path:
    """Where run_scenario writes a scenario's timeline (labs.scenarios.scenario_settings's home)."""
    return home / "scenarios" / f"lab{scenario.lab}-{scenario.id}" / "timeline.md"


def read_timeline(scenario: Scenario, path: Path) -> Incident | None:
    """A timeline.md as Timeline.markdown wrote it: the result line and the table of events."""
    try:
        text = path.read_text()
    except OSError:
        return None
    ran_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    incident = Incident(scenario, path, ran_at, "- result: PASSED" in text)
    for line in text.splitlines():
        cells = line.strip().strip("|").split("|", 2)  # the detail may hold a "|" of its own
        if len(cells) != 3:
            continue
        try:
            t = float(cells[0])
        except ValueError:  # the header and the separator
            continue
        incident.events.append(Event(t, cells[1].strip(), cells[2].strip()))
    return incident


def incidents(labs: list[Lab], home: Path) -> list[Incident]:
    found = (read_timeline(s, timeline_path(home, s)) for lab in labs for s in lab.scenarios)
    return [i for i in found if i is not None]


# ---------------------------------------------------------------- what you measured
@dataclass(frozen=True)
class Number:
    key: str  # what the page asks about it (deepdive.NUMBER_QUESTIONS)
    what: str
    value: str
    source: str


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads((folder / name).read_text())
    except (OSError, ValueError):
        return None
    return doc


def _try(read: Callable[[], str]) -> str | None:
    """A figure from a bench file, or None when the file or the key is not there."""
    try:
        return read()
    except (KeyError, IndexError, TypeError, ValueError, StopIteration):
        return None


def _rate(r: dict[str, Any]) -> str:
    return f"{r['rolled_back']} of {r['runs']} ({r['rate']:.1%}; 95% upper bound {r['upper95']:.2%})"


def numbers(home: Path) -> list[Number]:
    """The figures `make bench` measured (files under <home>/bench/), those that are there."""
    folder = home / "bench"
    files = ("serving", "router", "canary", "drift", "torch")
    sv, rt, cn, dr, tc = (_load(folder, f"{name}.json") or {} for name in files)

    def c1() -> str:
        p = sv["figures"]["concurrency_1"]["predict"]
        return f"{p['p50_ms']:.2f} / {p['p99_ms']:.2f} ms"

    def open80() -> str:
        return next(f"{r['p99_ms']:.1f} ms" for r in sv["figures"]["open_loop"] if r["fraction"] == 0.8)

    def router() -> str:
        r = rt["concurrency 8"]
        return f"{r['added_p50_ms']:.2f} / {r['added_p99_ms']:.2f} ms"

    def single_row() -> str:
        sk, to = (tc["figures"][m]["single_row_us"]["p50"] for m in ("sklearn", "torch_cpu"))
        return f"{sk:.1f} / {to:.1f} us"

    def aa() -> str:
        return _rate(cn["aa"]["sequential"])

    def naive() -> str:
        return _rate(cn["aa"]["naive_no_min_effect"])

    def triggers() -> str:
        return f"{dr['null']['triggers']} of {dr['null']['windows']}"

    def any_column() -> str:
        return f"{dr['null']['any_column_rate']:.1%} of windows"

    def rps() -> str:
        return f"{sv['figures']['throughput']['predict']['throughput_rps']:,.0f} req/s"

    rows: list[tuple[str, str, str, Callable[[], str]]] = [
        ("latency", "predict p50 / p99, one request at a time", "serving", c1),
        ("throughput", "one worker's throughput (closed loop, 16 connections)", "serving", rps),
        ("p99-at-load", "p99 at 80% of that, open loop", "serving", open80),
        ("router", "latency the canary router adds, p50 / p99 at concurrency 8", "router", router),
        ("false-rollbacks", "A/A false rollbacks of the canary judge", "canary", aa),
        ("naive-looks", "the same runs, plain significance at every look", "canary", naive),
        ("drift-triggers", "drift: retraining triggers on clean windows", "drift", triggers),
        ("naive-drift", "drift: naive 'any column drifted' on the same clean windows", "drift", any_column),
        ("single-row", "single-row scoring p50, sklearn / torch on the CPU", "torch", single_row),
    ]
    found = ((key, what, file, _try(read)) for key, what, file, read in rows)
    return [
        Number(key, what, v, str(folder / f"{file}.json")) for key, what, file, v in found if v is not None
    ]
