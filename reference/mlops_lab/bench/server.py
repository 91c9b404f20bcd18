"""The benchmarked server: the real model server plus do-nothing routes, and its process.

    MLOPS_HOME=/tmp/lab MLOPS_TRACKING_URI=sqlite:////tmp/lab/mlflow/mlflow.db \\
      python -m uvicorn --factory mlops_lab.bench.server:create_bench_app --port 8011 \\
      --no-access-log --log-level warning
    curl -s 127.0.0.1:8011/bench/noop-get

The do-nothing routes live in the same app as /v1/predict, so "noop vs predict" differ only
by what the predict handler does: same middleware, same JSON parsing into PredictRequest.
`python -m mlops_lab.bench.serving` starts this with `start_server` (pinned to one core).
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

if TYPE_CHECKING:  # imported where used: the bare baseline app below imports FastAPI alone
    from mlops_lab.settings import Settings

NOOP_PATH = "/bench/noop"
NOOP_GET_PATH = "/bench/noop-get"
GC_PATH = "/bench/gc"
FACTORY = "mlops_lab.bench.server:create_bench_app"
# The start-up and memory baseline: a do-nothing FastAPI app, started like the bench server. This
# module imports nothing but FastAPI at the top (not the model server, its libraries, the settings
# or httpx), so the baseline stays bare.
BARE_FACTORY = "mlops_lab.bench.server:create_bare_app"


def add_noop_routes(app: FastAPI) -> FastAPI:
    """POST /bench/noop parses the body exactly as /v1/predict does, then returns a constant."""
    from mlops_lab.serving.schemas import PredictRequest

    async def noop(body: Any) -> dict[str, str]:
        return {"status": "ok"}

    noop.__annotations__["body"] = PredictRequest  # resolved here: this module imports it lazily
    app.post(NOOP_PATH)(noop)

    @app.get(NOOP_GET_PATH)
    async def noop_get() -> dict[str, str]:
        return {"status": "ok"}

    return app


class GcPauses:
    """A gc callback timing every collection, per generation (it observes; it changes nothing)."""

    def __init__(self) -> None:
        self._started = 0.0
        self.reset()

    def reset(self) -> None:
        self.count, self.total_s, self.max_s = [0, 0, 0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        g, took = info["generation"], time.perf_counter() - self._started
        self.count[g] += 1
        self.total_s[g] += took
        self.max_s[g] = max(self.max_s[g], took)

    def snapshot(self) -> dict[str, list[float]]:
        return {
            "collections": [float(c) for c in self.count],
            "total_ms": [round(t * 1000, 3) for t in self.total_s],
            "max_ms": [round(t * 1000, 3) for t in self.max_s],
        }


def add_gc_probe(app: FastAPI) -> FastAPI:
    """GET /bench/gc: the server's collector pauses since the last call (and resets them)."""
    pauses = GcPauses()
    gc.callbacks.append(pauses)

    @app.get(GC_PATH)
    async def gc_stats() -> dict[str, list[float]]:
        out = pauses.snapshot()
        pauses.reset()
        return out

    return app


def create_bench_app() -> FastAPI:
    """uvicorn --factory entry point: settings from MLOPS_* variables, like `mlops-lab serve`."""
    from mlops_lab.lifecycle.aliases import configure_mlflow_env
    from mlops_lab.serving.app import create_app
    from mlops_lab.settings import get_settings

    configure_mlflow_env()
    return add_gc_probe(add_noop_routes(create_app(get_settings(), "stable")))


def create_bare_app() -> FastAPI:
    """uvicorn --factory entry point of the baseline: /readyz and the predict routes answer a
    constant (JSON bodies are parsed, nothing is validated, scored or logged)."""
    app = FastAPI(title="bare baseline")

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/v1/predict")
    async def predict(body: dict[str, Any]) -> dict[str, float]:
        return {"score": 0.0}

    @app.post("/v1/predict/batch")
    async def predict_batch(body: dict[str, Any]) -> dict[str, int]:
        return {"rows": len(body.get("rows", ()))}

    return app


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    pinning: str  # how the process was pinned, in words (for the report)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024  # the kernel reports kB
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds (user + system) used so far: (whole process, event-loop thread).

        The event loop runs on the main thread (task id == pid); the rest is the store writer,
        the model holder's poller and library threads."""

        def of(stat_path: str) -> float:
            fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

        return of(f"/proc/{self.pid}/stat"), of(f"/proc/{self.pid}/task/{self.pid}/stat")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the process group (graceful: the app drains its store queue), then SIGKILL."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def uvicorn_argv(factory: str, host: str, port: int) -> list[str]:
    """`python -m uvicorn --factory <factory>`: one worker, no access log, warnings only."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def server_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A child's environment: the parent's without its MLOPS_* (so the child sees exactly
    `settings`, unset fields included), then `settings`, one BLAS thread, then `extra`."""
    from mlops_lab.settings import child_env

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update(child_env(settings))
    env["MLOPS_TRACKING_URI"] = settings.tracking_uri or settings.mlflow_sqlite_uri
    env["OMP_NUM_THREADS"] = "1"
    return env | (extra or {})


def launch(
    argv: list[str], env: dict[str, str], base_url: str, *, core: int | None, log_path: Path
) -> ServerProcess:
    """Start `argv` in its own session, pinned to `core` when given; does not wait for it."""
    pinning = "none"
    taskset = shutil.which("taskset")
    if core is not None and taskset:
        # taskset execs python, so the pid stays the same and every thread inherits the mask.
        argv = [taskset, "-c", str(core), *argv]
        pinning = f"taskset -c {core}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    if core is not None and not taskset:
        # No taskset: pin from outside. Python takes tens of ms to start its first thread,
        # so threads created later inherit this mask.
        os.sched_setaffinity(proc.pid, {core})
        pinning = f"sched_setaffinity({{{core}}})"
    return ServerProcess(proc, base_url, log_path, pinning)


def wait_ready(server: ServerProcess, timeout_s: float, poll_s: float = 0.2) -> float:
    """Seconds until GET /readyz answers 200 (polled every `poll_s` over one keep-alive
    client); RuntimeError with the log's tail if the process exits or the time runs out. The
    process is stopped on failure."""
    import httpx

    started = time.monotonic()
    deadline = started + timeout_s
    try:
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if server.proc.poll() is not None:
                    raise RuntimeError(
                        f"server exited with code {server.proc.returncode}:\n{server.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{server.base_url}/readyz").status_code == 200:
                        return time.monotonic() - started
                time.sleep(poll_s)
        raise RuntimeError(f"server not ready after {timeout_s:.0f}s:\n{server.log_tail()}")
    except BaseException:
        server.stop(grace_s=5)
        raise


def start_server(
    settings: Settings, port: int, *, core: int | None, log_path: Path, timeout_s: float = 120.0
) -> ServerProcess:
    """Start one uvicorn worker serving `create_bench_app` and wait until /readyz answers 200."""
    argv = uvicorn_argv(FACTORY, settings.host, port)
    server = launch(
        argv, server_env(settings), f"http://{settings.host}:{port}", core=core, log_path=log_path
    )
    wait_ready(server, timeout_s)
    return server
