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
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console

from mlops_lab.errors import UserError
from mlops_lab.labs.impl import REFERENCE, Choice, choose
from mlops_lab.labs.manifest import LabError, Scenario, get_scenario, load_manifest, repo_root
from mlops_lab.labs.timeline import Timeline
from mlops_lab.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from mlops_lab.canary.controller import Controller
    from mlops_lab.canary.state import Rollout

# Lab 5's rollouts in seconds (Context.fast_canary): a 3 s shadow, 25% then 50% for 3 s each, a look
# every second, a phase rolled back 8 s after its time without a PASS; the judge's sample sizes
# scaled to match (planned 400, at least 80), and passive health that keeps a dead canary out for
# the whole scenario (one probe per 30 s).
FAST_CANARY: dict[str, Any] = {
    "canary_shadow_s": 3.0,
    "canary_steps": (25, 50),
    "canary_step_s": 3.0,
    "canary_look_s": 1.0,
    "canary_max_wait_s": 8.0,
    "canary_min_samples": 80,
    "canary_planned_samples": 400,
    "reload_poll_s": 0.5,
    "router_probe_after_s": 30.0,
}


class ScenarioFailed(UserError):
    """A check of the scenario did not hold: the system did not behave reliably."""


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

    # ---- lab 5: the canary system (router, controller, candidates)
    def fast_canary(self, **overrides: Any) -> None:
        """A rollout in seconds instead of minutes (FAST_CANARY, then `overrides`), for every
        process started from now on and every controller made after."""
        self.settings = self.settings.model_copy(update=FAST_CANARY | overrides)
        self.supervisor.settings = self.settings

    def start_canary_system(self) -> str:
        """MLflow, a champion, the stable and canary model servers and the router in front of them
        (the learner's `router-split` where it is solved); the router's URL once it is ready."""
        from mlops_lab.runtime.supervisor import router_spec, server_spec

        self.start_registry()
        self.train_champion()
        learner = sorted(self.choice.learner)
        yours = ", ".join(learner) or "none solved yet: the reference"
        self.info(f"setup: starting the stable and canary model servers and the router (your code: {yours})")
        specs = [server_spec(self.settings, v, impl=self.impl, learner=learner) for v in ("stable", "canary")]
        self.supervisor.start_all([*specs, router_spec(self.settings, self.impl, learner)])
        base = f"http://{self.settings.host}:{self.settings.router_port}"
        if not self.wait_for(lambda: self.ready(base), timeout_s=60):  # the router asks stable
            raise ScenarioFailed(
                f"setup: the stable server did not become ready (see {self.settings.home}/logs)"
            )
        return base

    def stage_candidate(
        self,
        data: pd.DataFrame,
        recent: pd.DataFrame,
        offline: pd.DataFrame | None = None,
        reason: str = "scenario candidate",
    ) -> str:
        """Train a version on `data`, record its canary expectation (the learner's
        `canary-expectation` where solved) on the production rows `recent`, as the candidate's
        offline world shows them (`offline`, default the same rows), and stage it as @challenger."""
        from mlops_lab.canary.stage import record_expectation, stage
        from mlops_lab.lifecycle.train import train

        version = train(self.settings, data).version
        expectation = record_expectation(self.settings, version, recent, offline, part=self.choice.resolve)
        stage(self.settings, version, actor="scenario", reason=reason)
        self.info(f"setup: v{version} staged as @challenger; expectation {expectation.describe()}")
        return version

    def controller(self) -> Controller:
        """A canary controller to tick in-process (close it after): the learner's rollout tick
        (`controller-tick`) and judge (`canary-judge`) where they are solved."""
        from mlops_lab.canary.controller import Controller

        logging.getLogger("mlops_lab.canary").setLevel(logging.ERROR)  # the timeline is the output
        return Controller(self.settings, part=self.choice.resolve)

    def roll(
        self,
        controller: Controller,
        timeout_s: float = 90.0,
        during: Callable[[Rollout], None] | None = None,
        every_s: float = 0.3,
    ) -> Rollout:
        """Tick `controller` until its rollout ends and return the rollout; `during(rollout)` runs
        after every tick. ScenarioFailed when it has not ended within timeout_s (a deadline)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            r = controller.tick()
            if r is not None and during is not None:
                during(r)
            if r is not None and not r.active:
                return r
            time.sleep(every_s)
        r = controller.tick()
        where = "no rollout" if r is None else r.describe()
        raise ScenarioFailed(f"the rollout did not end within {timeout_s:.0f} s: {where}")

    def alias(self, alias: str) -> str | None:
        """The version `alias` ("champion", "challenger") points at, None when it points nowhere."""
        from mlops_lab.lifecycle.tracking import version_by_alias

        mv = version_by_alias(self.client(), self.settings.model_name, alias)
        return None if mv is None else str(mv.version)

    @staticmethod
    def metric(base: str, name: str, **labels: str) -> float | None:
        """One sample of a process's GET /metrics (e.g. "mlops_router_fallbacks_total"), None
        when it has no sample of that name with those labels."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{base}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return float(sample.value)
        return None

    def router_state(self) -> dict[str, Any]:
        """The router's GET /admin/state: weights, canary_healthy, counts per variant."""
        token = self.settings.admin_token.get_secret_value()
        url = f"http://{self.settings.host}:{self.settings.router_port}/admin/state"
        resp = httpx.get(url, headers={"authorization": f"Bearer {token}"}, timeout=5)
        resp.raise_for_status()
        state: dict[str, Any] = resp.json()
        return state

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
