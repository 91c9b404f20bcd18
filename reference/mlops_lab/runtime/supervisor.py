"""Local process supervision: start with a health wait, stop without leaving anything behind.

    mlops-lab up        # MLflow server + stable model server
    mlops-lab status
    mlops-lab down

Each component runs in its own session (process group), so `stop` signals the whole tree
(the MLflow server forks uvicorn workers). State per component, under home/:
  run/<name>.json   pid, process group, command, port, start time
  logs/<name>.log   stdout and stderr
`down` reads every run/*.json, so it also cleans up after a component that crashed or a
supervisor that was killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mlops_lab.errors import UserError
from mlops_lab.settings import Settings, child_env


class StartError(UserError):
    """A component did not become healthy; the message names the log to read."""


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    health_url: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    start_timeout_s: float = 90.0


def mlflow_spec(settings: Settings) -> ProcessSpec:
    settings.ensure_dirs()
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        settings.mlflow_sqlite_uri,
        "--artifacts-destination",
        str(settings.mlflow_artifacts_dir),
        "--host",
        settings.host,
        "--port",
        str(settings.mlflow_port),
        "--workers",
        "1",
    ]
    return ProcessSpec("mlflow", argv, f"{settings.mlflow_server_uri}/health", settings.mlflow_port)


def server_spec(
    settings: Settings, variant: str, impl: str = "reference", learner: Sequence[str] | None = None
) -> ProcessSpec:
    """A model server; impl="exercises" serves the learner's lab 1 code instead: every exercise,
    or only those in `learner` (the solved ones, in the demo and the scenarios)."""
    port = settings.port_of(variant)  # type: ignore[arg-type]
    argv = [sys.executable, "-m", "mlops_lab.cli", "serve", "--variant", variant, "--port", str(port)]
    argv += ["--impl", impl] if impl != "reference" else []
    if impl != "reference" and learner is not None:
        argv += ["--learner", ",".join(learner)]
    env = {"MLOPS_TRACKING_URI": settings.tracking_uri or settings.mlflow_server_uri}  # never serverless
    return ProcessSpec(variant, argv, f"http://{settings.host}:{port}/healthz", port, env=env)


def _learner_env(impl: str, learner: Sequence[str] | None) -> dict[str, str]:
    """How a child process is told whose code plays the exercises it runs."""
    if impl == "reference":
        return {}
    env = {"MLOPS_PIPELINE_IMPL": impl}
    if learner is not None:
        env["MLOPS_PIPELINE_LEARNER"] = ",".join(learner)
    return env


def router_spec(
    settings: Settings, impl: str = "reference", learner: Sequence[str] | None = None
) -> ProcessSpec:
    """The canary router; with impl "exercises" its routing decision is the learner's lab 5 split."""
    argv = [sys.executable, "-m", "mlops_lab.cli", "route", "--port", str(settings.router_port)]
    url = f"http://{settings.host}:{settings.router_port}/healthz"
    return ProcessSpec("router", argv, url, settings.router_port, env=_learner_env(impl, learner))


def controller_spec(
    settings: Settings, impl: str = "reference", learner: Sequence[str] | None = None
) -> ProcessSpec:
    """The canary controller daemon; its health URL is its Prometheus endpoint. With impl
    "exercises" the rollout's tick and the judge are the learner's lab 5 code."""
    argv = [sys.executable, "-m", "mlops_lab.cli", "canary", "run"]
    env = {"MLOPS_TRACKING_URI": settings.tracking_uri or settings.mlflow_server_uri}
    url = f"http://{settings.host}:{settings.controller_port}/metrics"
    env |= _learner_env(impl, learner)
    return ProcessSpec("controller", argv, url, settings.controller_port, env=env)


def judge_api_spec(
    settings: Settings,
    port: int | None = None,
    impl: str = "reference",
    learner: Sequence[str] | None = None,
) -> ProcessSpec:
    """The canary judge over HTTP (`mlops-lab canary judge-api`), for an external rollout engine;
    not part of `mlops-lab up` (the controller judges in-process). With impl "exercises" the
    verdict is the learner's lab 5 judge."""
    from mlops_lab.canary.judge_api import DEFAULT_PORT

    port = port or DEFAULT_PORT
    argv = [sys.executable, "-m", "mlops_lab.cli", "canary", "judge-api", "--port", str(port)]
    env = {"MLOPS_TRACKING_URI": settings.tracking_uri or settings.mlflow_server_uri}  # never serverless
    env |= _learner_env(impl, learner)
    return ProcessSpec("judge-api", argv, f"http://{settings.host}:{port}/healthz", port, env=env)


def monitor_spec(
    settings: Settings, impl: str = "reference", learner: Sequence[str] | None = None
) -> ProcessSpec:
    """The drift monitor (`mlops-lab monitor`); it reads the champion's reference from MLflow.
    With impl "exercises", the monitor's trigger policy and performance are the learner's lab 4
    code and the retraining runs it triggers run the learner's lab 2 and 3 code (every exercise,
    or only those in `learner`): it hands the setting to the Airflow run."""
    port = settings.monitor_port
    argv = [sys.executable, "-m", "mlops_lab.cli", "monitor", "--port", str(port)]
    env = {"MLOPS_TRACKING_URI": settings.tracking_uri or settings.mlflow_server_uri}  # never serverless
    env |= _learner_env(impl, learner)
    return ProcessSpec("monitor", argv, f"http://{settings.host}:{port}/healthz", port, env=env)


OBSERVABILITY = Path(__file__).resolve().parents[2] / "observability"


def prometheus_spec(settings: Settings) -> ProcessSpec | None:
    """Prometheus scraping every local process with the lab's alert rules, when it is installed
    (Debian's `prometheus`, which setup installs for promtool). None when it is not."""
    binary = shutil.which("prometheus")
    source = OBSERVABILITY / "prometheus.yml"
    if binary is None or not source.exists():
        return None
    text = source.read_text().replace("rules/*.yml", str(OBSERVABILITY / "rules" / "*.yml"))
    defaults = {8000: settings.router_port, 8001: settings.stable_port, 8002: settings.canary_port}
    defaults |= {8003: settings.monitor_port, 8004: settings.controller_port}
    for default, port in defaults.items():  # the checked-in file uses the default ports
        text = text.replace(f"127.0.0.1:{default}", f"{settings.host}:{port}")
    home = (settings.home / "prometheus").resolve()
    home.mkdir(parents=True, exist_ok=True)
    (home / "prometheus.yml").write_text(text)
    argv = [
        binary,
        f"--config.file={home / 'prometheus.yml'}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address={settings.host}:{settings.prometheus_port}",
    ]
    url = f"http://{settings.host}:{settings.prometheus_port}/-/ready"
    return ProcessSpec("prometheus", argv, url, settings.prometheus_port)


def system_specs(
    settings: Settings,
    *,
    with_prometheus: bool = True,
    impl: str = "reference",
    learner: Sequence[str] | None = None,
) -> list[ProcessSpec]:
    """Everything `mlops-lab up` runs, MLflow first (the others read it at start); the model
    servers and the retraining the monitor triggers with the learner's code where `impl` and
    `learner` say so (see server_spec, monitor_spec)."""
    specs = [
        mlflow_spec(settings),
        server_spec(settings, "stable", impl, learner),
        server_spec(settings, "canary", impl, learner),
        router_spec(settings, impl, learner),
        monitor_spec(settings, impl, learner),
        controller_spec(settings, impl, learner),
    ]
    prometheus = prometheus_spec(settings) if with_prometheus else None
    return specs + ([prometheus] if prometheus is not None else [])


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.ensure_dirs()
        self.run_dir = settings.home / "run"
        self.log_dir = settings.home / "logs"

    def _state_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def read_state(self, name: str) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads(self._state_file(name).read_text())
            return state
        except (OSError, ValueError):
            return None

    def is_running(self, name: str) -> bool:
        state = self.read_state(name)
        return state is not None and _alive(int(state["pid"]))

    def start(self, spec: ProcessSpec) -> int:
        """Start `spec` (unless already running) and wait until its health URL answers 200."""
        return self.start_all([spec])[0]

    def start_all(self, specs: list[ProcessSpec]) -> list[int]:
        """Launch every spec at once, then wait for each: on 2 cores, processes that mostly
        import libraries start in about the time of the slowest, not the sum."""
        launched = [self._launch(spec) for spec in specs]
        return [self._wait(spec, proc) for spec, proc in zip(specs, launched, strict=True)]

    def _launch(self, spec: ProcessSpec) -> subprocess.Popen[bytes] | int:
        state = self.read_state(spec.name)
        if state is not None and _alive(int(state["pid"])):  # already running
            return int(state["pid"])
        if _port_busy(self.settings.host, spec.port):
            raise StartError(f"{spec.name}: port {spec.port} is already in use by another program")
        log_path = self.log_dir / f"{spec.name}.log"
        env = {**os.environ, **child_env(self.settings), **spec.env}
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                spec.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        state = {
            "pid": proc.pid,
            "pgid": proc.pid,
            "argv": spec.argv,
            "port": spec.port,
            "health_url": spec.health_url,
            "started": time.time(),
            "log": str(log_path),
        }
        self._state_file(spec.name).write_text(json.dumps(state))
        return proc

    def _wait(self, spec: ProcessSpec, proc: subprocess.Popen[bytes] | int) -> int:
        if isinstance(proc, int):
            return proc
        log_path = self.log_dir / f"{spec.name}.log"
        deadline = time.monotonic() + spec.start_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._state_file(spec.name).unlink(missing_ok=True)
                raise StartError(f"{spec.name} exited with code {proc.returncode}; see {log_path}")
            if _healthy(spec.health_url):
                return proc.pid
            time.sleep(0.25)
        self.stop(spec.name)
        raise StartError(f"{spec.name} not healthy after {spec.start_timeout_s:.0f}s; see {log_path}")

    def stop(self, name: str, grace_s: float = 20.0) -> bool:
        """SIGTERM the component's process group, wait, then SIGKILL what is left. True if it was running."""
        state = self.read_state(name)
        if state is None:
            return False
        pgid = int(state["pgid"])
        was_running = _group_alive(pgid)
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
            while _group_alive(pgid) and time.monotonic() < deadline + 5:
                time.sleep(0.05)
        self._state_file(name).unlink(missing_ok=True)
        return was_running

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.run_dir.glob("*.json"))

    def stop_all(self) -> list[str]:
        # Servers before the registry they read from.
        order = sorted(self.names(), key=lambda n: n == "mlflow")
        return [n for n in order if self.stop(n)]

    def status(self) -> list[dict[str, object]]:
        rows = []
        for name in self.names():
            state = self.read_state(name) or {}
            pid = int(state.get("pid", 0))
            alive = _alive(pid)
            rows.append(
                {
                    "name": name,
                    "pid": pid,
                    "port": state.get("port"),
                    "alive": alive,
                    "healthy": alive and _healthy(str(state.get("health_url", ""))),
                    "log": state.get("log"),
                }
            )
        return rows


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _port_busy(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still "exists"; reap it if we can.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # reap the leader if it is our zombie, so killpg stops seeing it
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
