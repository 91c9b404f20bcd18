"""Failure scenarios: start the system, inject a real fault, verify the reliable behaviour.

    mlops-lab lab scenario list
    mlops-lab lab scenario lab1/corrupt-model [--impl exercises]   (make scenario S=...)

Each scenario is a module labs/scenarios/labN/<id>.py with `run(ctx)`. It uses the context to
start real processes (an MLflow server, model servers) under its own home
(<home>/scenarios/<labN>-<id>/, with free ports, so it never touches a running `make up`),
injects the fault, and records an incident timeline: what was injected, the symptom, the
signal that shows it, the mitigation, and checks that must hold. With `--impl exercises` the
servers and functions it exercises are the learner's (exercises/labN/...).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from mlops_lab.errors import UserError
from mlops_lab.labs.impl import REFERENCE, Choice, choose
from mlops_lab.labs.manifest import LabError, Scenario, get_scenario, load_manifest, repo_root
from mlops_lab.settings import Settings

STYLE = {"inject": "bold magenta", "symptom": "yellow", "signal": "cyan", "mitigate": "blue", "info": "dim"}


class ScenarioFailed(UserError):
    """A check of the scenario did not hold: the system did not behave reliably."""


@dataclass
class Event:
    t: float
    kind: str
    text: str
    ok: bool | None = None


@dataclass
class Timeline:
    console: Console
    started: float = field(default_factory=time.monotonic)
    events: list[Event] = field(default_factory=list)

    def add(self, kind: str, text: str, ok: bool | None = None) -> None:
        event = Event(time.monotonic() - self.started, kind, text, ok)
        self.events.append(event)
        self.console.print(self.line(event), highlight=False)

    @staticmethod
    def line(e: Event) -> str:
        if e.ok is None:
            label, style = e.kind, STYLE[e.kind]
        else:
            label, style = ("check ✔", "green") if e.ok else ("check ✘", "bold red")
        return f"  {e.t:6.1f}s  [{style}]{label:<9}[/] {escape(e.text)}"

    def markdown(self, scenario: Scenario, passed: bool) -> str:
        rows = [
            f"# {scenario.key}: {scenario.title}",
            "",
            f"- symptom: {scenario.symptom}",
            f"- signal: {scenario.signal}",
            f"- mitigation: {scenario.mitigation}",
            f"- result: {'PASSED' if passed else 'FAILED'}",
            "",
            "| t (s) | what | detail |",
            "|---:|---|---|",
        ]
        for e in self.events:
            what = e.kind if e.ok is None else ("check passed" if e.ok else "check FAILED")
            rows.append(f"| {e.t:.1f} | {what} | {e.text} |")
        return "\n".join(rows) + "\n"


@dataclass
class Context:
    """What a scenario works with: settings under its own home, processes, the timeline, and
    whose code plays each exercise (with --impl exercises: the learner's where it is solved)."""

    settings: Settings
    choice: Choice
    root: Path
    timeline: Timeline

    @property
    def impl(self) -> str:
        return self.choice.impl

    def __post_init__(self) -> None:
        from mlops_lab.runtime.supervisor import Supervisor

        self.supervisor = Supervisor(self.settings)

    # ---- the timeline
    def inject(self, text: str) -> None:
        self.timeline.add("inject", text)

    def symptom(self, text: str) -> None:
        self.timeline.add("symptom", text)

    def signal(self, text: str) -> None:
        self.timeline.add("signal", text)

    def mitigate(self, text: str) -> None:
        self.timeline.add("mitigate", text)

    def info(self, text: str) -> None:
        self.timeline.add("info", text)

    def check(self, ok: bool, text: str) -> None:
        self.timeline.add("check", text, ok=bool(ok))
        if not ok:
            raise ScenarioFailed(text)

    # ---- the implementation under test
    def module(self, exercise_id: str) -> ModuleType:
        """The learner's module for this exercise where it is solved, else the reference it mirrors."""
        exercise = next(e for e in self.choice.exercises if e.id == exercise_id)
        return self.choice.resolve(exercise.mirrors)

    # ---- the system
    def start_registry(self) -> None:
        """A real `mlflow server` under the scenario's home; the settings then point at it."""
        from mlops_lab.runtime.supervisor import mlflow_spec

        self.info("setup: starting an MLflow server")
        self.supervisor.start(mlflow_spec(self.settings))
        self.settings = self.settings.model_copy(update={"tracking_uri": self.settings.mlflow_server_uri})
        self.supervisor.settings = self.settings

    def stop_registry(self) -> None:
        self.supervisor.stop("mlflow")

    def train_champion(self, rows: int = 6_000, seed: int = 1, gate: bool = True) -> str:
        """Train a version on baseline data and promote it (through the gate unless gate=False)."""
        from mlops_lab.data.generator import generate
        from mlops_lab.lifecycle import registry
        from mlops_lab.lifecycle.release import train_and_release
        from mlops_lab.lifecycle.train import train
        from mlops_lab.store.db import Store

        self.info(f"setup: training a model on {rows:,} rows and promoting it to @champion")
        data = generate("baseline", rows, seed=seed)
        if not gate:  # setup only: a retrain as good as the champion can fail the margin on a small holdout
            version = train(self.settings, data).version
            store = Store(self.settings.resolved_store_url)
            try:
                registry.promote(
                    self.client(), store, self.settings.model_name, version, actor="setup", reason="setup"
                )
            finally:
                store.dispose()
            return version
        release = train_and_release(self.settings, data, promote=True, actor="scenario", reason="setup")
        if not release.promoted:
            raise ScenarioFailed(
                f"setup: v{release.trained.version} was not promoted: {release.verdict.summary()}"
            )
        return release.trained.version

    def pipeline_home(self, base_rows: int = 8_000) -> str:
        """What a retraining run starts from: MLflow on SQLite under the scenario's home, a base
        training set in home/data/train.parquet and v1, trained on it, as @champion (returned).
        The gate's margins are loosened (`testbed.PIPELINE_SETTINGS`): these runs are about the
        pipeline, not the gate."""
        from mlops_lab.data.generator import generate
        from mlops_lab.data.io import write_frame
        from mlops_lab.labs.testbed import PIPELINE_SETTINGS

        update = {"tracking_uri": self.settings.mlflow_sqlite_uri, **PIPELINE_SETTINGS}
        self.settings = self.settings.model_copy(update=update)
        write_frame(generate("baseline", base_rows, seed=1), self.settings.home / "data" / "train.parquet")
        return self.train_champion(rows=base_rows, seed=1)

    def client(self) -> Any:
        from mlops_lab.lifecycle.tracking import client_for

        return client_for(self.settings)

    def start_server(self, variant: str = "stable", wait_ready: bool = True, **env: str) -> str:
        """A real model server process (the learner's app + holder with --impl exercises)."""
        from mlops_lab.runtime.supervisor import server_spec

        spec = server_spec(self.settings, variant, impl=self.impl, learner=sorted(self.choice.learner))
        spec.env.update(env)
        yours = ", ".join(sorted(self.choice.learner)) or "none solved yet: the reference"
        self.info(f"setup: starting the {variant} model server (your code: {yours})")
        self.supervisor.start(spec)
        base = f"http://{self.settings.host}:{self.settings.port_of(variant)}"  # type: ignore[arg-type]
        if wait_ready and not self.wait_for(lambda: self.ready(base), timeout_s=60):
            raise ScenarioFailed(
                f"setup: the {variant} server did not become ready (see {self.settings.home}/logs)"
            )
        return base

    @staticmethod
    def ready(base: str) -> bool:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200

    def until(self, predicate: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
        """Poll until `predicate` returns something true and return it (an HTTP error counts as
        not yet); ScenarioFailed naming `what` after timeout_s. A deadline, never a budget: the
        scenario passes however long it takes within it."""
        got = _poll(predicate, timeout_s, 0.25)
        if not got:
            logs = self.settings.home / "logs"
            raise ScenarioFailed(f"{what}: not seen within {timeout_s:.0f} s (logs under {logs})")
        return got

    @staticmethod
    def wait_for(predicate: Callable[[], Any], timeout_s: float = 30, every_s: float = 0.2) -> bool:
        return bool(_poll(predicate, timeout_s, every_s))


def _poll(predicate: Callable[[], Any], timeout_s: float, every_s: float) -> Any:
    """The first true value `predicate` returns within timeout_s (None if none; an HTTP error
    counts as not yet)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            got = predicate()
        except httpx.HTTPError:
            got = None
        if got:
            return got
        time.sleep(every_s)
    return None


def scenario_settings(base: Settings, scenario: Scenario) -> Settings:
    from mlops_lab.labs.grading import free_port

    home = (base.home / "scenarios" / f"lab{scenario.lab}-{scenario.id}").resolve()
    shutil.rmtree(home, ignore_errors=True)  # each run starts from nothing
    ports = ("mlflow_port", "stable_port", "canary_port", "router_port", "monitor_port", "controller_port")
    settings = base.model_copy(
        update={"home": home, "tracking_uri": None, "store_url": None, "reload_poll_s": 1.0}
        | {p: free_port() for p in ports}
    )
    settings.ensure_dirs()
    return settings


def list_scenarios(console: Console) -> None:
    console.print("usage: make scenario S=<name> [IMPL=exercises] [TARGET=kind]\n")
    for lab in load_manifest():
        for s in lab.scenarios:
            console.print(f"  {s.key:<34} {s.title}", highlight=False)


def run_scenario(name: str, impl: str, base: Settings, console: Console, strict: bool = False) -> bool:
    if name == "list":
        list_scenarios(console)
        return True
    if name == "all":  # CI runs every scenario on the reference
        keys = [s.key for lab in load_manifest() for s in lab.scenarios]
        results = {key: run_scenario(key, impl, base, console, strict) for key in keys}
        failed = [key for key, ok in results.items() if not ok]
        console.print(
            f"\n{len(keys) - len(failed)}/{len(keys)} scenarios passed"
            + (f"; failed: {failed}" if failed else "")
        )
        return not failed
    from mlops_lab.lifecycle.tracking import configure_mlflow_env

    configure_mlflow_env()
    logging.getLogger("mlflow").setLevel(logging.ERROR)  # the timeline is the output
    warnings.filterwarnings("ignore")
    root = repo_root()
    scenario = get_scenario(load_manifest(root), name)
    module = _load_module(root / scenario.module_file)
    settings = scenario_settings(base, scenario)
    console.print(f"\n[bold]{scenario.key}: {scenario.title}[/]   (impl: {impl})", highlight=False)
    console.print(
        f"  expect  symptom: {scenario.symptom}\n          signal: {scenario.signal}", highlight=False
    )
    console.print(f"          mitigation: {scenario.mitigation}\n", highlight=False)
    choice = choose(impl, base.home, root=root)
    if impl != REFERENCE:
        show_needs(console, scenario, choice)
        unsolved = [e for e in choice.unsolved if e.id in scenario.needs]
        if strict and unsolved:  # before anything starts: seconds, not a timeout
            commands = " and ".join(sorted({f"make lab-{e.lab}" for e in unsolved}))
            names = ", ".join(e.id for e in unsolved)
            raise LabError(f"STRICT=1: {scenario.key} runs {names}, not solved yet: {commands}")
    ctx = Context(settings, choice, root, Timeline(console))
    passed = False
    try:
        module.run(ctx)
        passed = True
    except ScenarioFailed as exc:
        console.print(f"\n[bold red]scenario failed[/]: {exc}", highlight=False)
        if impl != REFERENCE:
            console.print(
                f"  your implementation is graded by make lab-{scenario.lab}; compare with --impl reference"
            )
    finally:
        ctx.supervisor.stop_all()
    report = settings.home / "timeline.md"
    report.write_text(ctx.timeline.markdown(scenario, passed))
    verdict = "[bold green]PASSED[/]" if passed else "[bold red]FAILED[/]"
    console.print(f"\n{verdict} in {time.monotonic() - ctx.timeline.started:.0f} s; timeline: {report}")
    return passed


def show_needs(console: Console, scenario: Scenario, choice: Choice) -> None:
    """Before anything starts: whose code plays each exercise the scenario runs, and what to do
    about an unsolved one (the reference plays it, so the scenario still teaches something)."""
    by_id = {e.id: e for e in choice.exercises}
    for exercise_id in scenario.needs:
        e = by_id[exercise_id]
        whose = (
            "yours" if exercise_id in choice.learner else f"the reference: not solved yet (make lab-{e.lab})"
        )
        console.print(f"  {exercise_id:<20} {e.file:<30} {whose}", highlight=False)
    unsolved = [x for x in scenario.needs if x not in choice.learner]
    if unsolved:
        console.print(
            f"  [yellow]{len(unsolved)} of the {len(scenario.needs)} exercises this scenario runs are not "
            "solved yet: the reference plays them[/]"
        )
    console.print("")


def _load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"mlops_lab_scenario_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise LabError(f"{path}: cannot load the scenario")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module
