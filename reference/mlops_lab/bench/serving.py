"""Serving benchmark: one real model server process, one load generator, one run.

    make bench            # = .venv/bin/python -m mlops_lab.bench.serving

Writes $MLOPS_HOME/bench/serving.json (every figure, the environment, each goal with target,
measured value and verdict) and serving.md (the summary it also prints). A missed goal is
reported, not fatal: the exit code is non-zero only when something could not be measured.

Setup: a throwaway MLOPS home with a local MLflow server (`mlflow server` on SQLite, as `mlops-lab
up` runs it); v1 trained on 20,000 baseline rows and promoted through it; one uvicorn worker
(`mlops_lab.bench.server:create_bench_app`, the real app plus a do-nothing POST /bench/noop) pinned
to one core, the load generator pinned to the other.

Start-up and memory: the model server as the supervisor starts it (`python -m mlops_lab.cli serve`)
and a do-nothing FastAPI app (`mlops_lab.bench.server:create_bare_app`) as the baseline, started
in alternation STARTUP_REPEATS times each on the server's core: seconds from process start to the
first /readyz 200, then RSS after a warm-up (single rows and two 1,000-row batches). Medians.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from mlops_lab.bench import runs
from mlops_lab.bench.report import COMMAND, goals_of, render_markdown
from mlops_lab.bench.server import (
    BARE_FACTORY,
    ServerProcess,
    launch,
    server_env,
    start_server,
    uvicorn_argv,
    wait_ready,
)
from mlops_lab.settings import Settings, get_settings

TRAIN_ROWS = 20_000
STARTUP_REPEATS = 3
STARTUP_POLL_S = 0.02  # /readyz polled this often: the resolution of the start-up figure
WARM_SINGLE, WARM_BATCHES = 200, 2  # the warm-up before RSS is read: single rows, 1,000-row batches
PACKAGES = ("fastapi", "starlette", "uvicorn", "pydantic", "scikit-learn", "uvloop", "httptools")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bench_settings(home: Path) -> Settings:
    """The project's settings under a throwaway home, free ports, serverless SQLite registry."""
    ports = {f"{n}_port": _free_port() for n in ("mlflow", "router", "stable", "canary", "monitor")}
    s = get_settings(home=home, **ports)
    # One load generator is one client at ~2,300 req/s and 1,000-row batches: the benchmark
    # measures the server's capacity, not a client's quota. The rate limiter stays on the path
    # (its cost is part of what is measured) at a rate no client reaches.
    unlimited = {"rate_limit_per_s": 1e9, "rate_limit_burst": 10**9}
    return s.model_copy(update={"tracking_uri": s.mlflow_sqlite_uri, **unlimited})


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# A start-up command: (argv, environment, base URL) for a port.
Command = tuple[list[str], dict[str, str], str]


def model_server_command(settings: Settings, port: int, extra_env: dict[str, str] | None = None) -> Command:
    """The stable model server exactly as `mlops-lab up` starts it (runtime.supervisor.server_spec)."""
    from mlops_lab.runtime.supervisor import server_spec

    spec = server_spec(settings.model_copy(update={"stable_port": port}), "stable")
    return (
        spec.argv,
        server_env(settings, {**spec.env, **(extra_env or {})}),
        f"http://{settings.host}:{port}",
    )


def bare_command(settings: Settings, port: int) -> Command:
    """The baseline: a do-nothing FastAPI app in one uvicorn worker, started the same way."""
    argv = uvicorn_argv(BARE_FACTORY, settings.host, port)
    return argv, server_env(settings), f"http://{settings.host}:{port}"


def _warm(base_url: str, rows: list[dict[str, Any]]) -> None:
    import httpx

    batch = json.dumps({"rows": rows[:1_000]}, separators=(",", ":"))
    with httpx.Client(timeout=60) as client:
        for row in rows[:WARM_SINGLE]:
            client.post(f"{base_url}/v1/predict", json=row).raise_for_status()
        for _ in range(WARM_BATCHES):
            client.post(
                f"{base_url}/v1/predict/batch", content=batch, headers={"content-type": "application/json"}
            ).raise_for_status()


def startup(
    settings: Settings,
    commands: dict[str, Any],
    *,
    core: int | None,
    log_dir: Path,
    repeats: int = STARTUP_REPEATS,
) -> dict[str, Any]:
    """Each command (name -> f(settings, port) -> Command) started `repeats` times, in alternation:
    process start -> /readyz 200, and RSS after the warm-up (and the model's own load_s where
    /v1/model says it). Per name: each sample and the medians."""
    from statistics import median

    from mlops_lab.bench.runs import bodies

    rows = bodies(1_000, seed=11)
    samples: dict[str, dict[str, list[float]]] = {
        n: {"ready_s": [], "rss_mib": [], "peak_mib": []} for n in commands
    }
    for _ in range(repeats):
        for name, command in commands.items():
            argv, env, base_url = command(settings, _free_port())
            server = launch(argv, env, base_url, core=core, log_path=log_dir / f"startup-{name}.log")
            try:
                ready_s = wait_ready(server, timeout_s=120.0, poll_s=STARTUP_POLL_S)
                load_s = _model_load_s(base_url)  # the holder's own share of ready_s (none: bare)
                if load_s is not None:
                    samples[name].setdefault("model_load_s", []).append(round(load_s, 3))
                _warm(base_url, rows)
                time.sleep(0.5)  # the store writer's last flush
                samples[name]["ready_s"].append(round(ready_s, 3))
                samples[name]["rss_mib"].append(round(server.rss_mib(), 1))
                samples[name]["peak_mib"].append(round(_peak_mib(server.pid), 1))
            finally:
                server.stop()
    out: dict[str, Any] = {
        "repeats": repeats,
        "warm_up": f"{WARM_SINGLE} single rows, {WARM_BATCHES} batches of 1,000",
    }
    for name, got in samples.items():
        out[name] = {**got, **{f"median_{k}": round(median(v), 3) for k, v in got.items()}}
    return out


def _model_load_s(base_url: str) -> float | None:
    """The served model's load_s from /v1/model (alias resolution, download, checks), or None."""
    import httpx

    r = httpx.get(f"{base_url}/v1/model", timeout=10)
    load_s = r.json().get("load_s") if r.status_code == 200 else None
    return float(load_s) if isinstance(load_s, int | float) else None


def _peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure() -> dict[str, Any]:
    from mlops_lab.data.generator import generate
    from mlops_lab.lifecycle.aliases import configure_mlflow_env
    from mlops_lab.lifecycle.release import train_and_release
    from mlops_lab.runtime.supervisor import Supervisor, mlflow_spec

    configure_mlflow_env()
    started = time.monotonic()
    notes: list[str] = []
    cores = sorted(os.sched_getaffinity(0))
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    home = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    server: ServerProcess | None = None
    server_core: int | None = None
    gen_core: int | None = None
    settings = _bench_settings(home)
    registry = Supervisor(settings)
    try:
        print(f"starting an MLflow server under {home} ...", file=sys.stderr)
        registry.start(mlflow_spec(settings))
        settings = settings.model_copy(update={"tracking_uri": settings.mlflow_server_uri})
        print(f"training v1 on {TRAIN_ROWS} rows ...", file=sys.stderr)
        rel = train_and_release(settings, generate("baseline", TRAIN_ROWS), promote=True, actor="bench",
                                reason="serving benchmark")  # fmt: skip
        if not rel.promoted:
            raise RuntimeError(f"v1 was not promoted: {rel.verdict.summary()}")
        if len(cores) >= 2:
            server_core, gen_core = cores[0], cores[1]
        else:
            notes.append("only one core available: server and load generator share it (unpinned), "
                         "so every figure is pessimistic")  # fmt: skip
        print(f"start-up and memory ({STARTUP_REPEATS} starts each, alternating) ...", file=sys.stderr)
        commands = {"server": model_server_command, "bare": bare_command}
        started_up = startup(settings, commands, core=server_core, log_dir=home / "logs")
        port = settings.stable_port
        print("starting the server ...", file=sys.stderr)
        server = start_server(settings, port, core=server_core, log_path=home / "logs" / "server.log")
        if gen_core is not None:
            os.sched_setaffinity(0, {gen_core})  # this process, and so the load generator
        # Training left this process with a large heap of long-lived objects; freeze it so no
        # collection walks them again while the load generator runs here.
        gc.collect()
        gc.freeze()
        figures = runs.run_all(settings, server, notes) | {"startup": started_up}
    finally:
        if server is not None:
            server.stop()
        registry.stop_all()
        os.sched_setaffinity(0, cores)
        gc.unfreeze()
        shutil.rmtree(home, ignore_errors=True)
    notes.append("the machine is shared: other processes (see load average) add noise to every figure")
    environment = {
        "cpu_model": _cpu_model(),
        "cores_available": len(cores),
        "server_pinning": server.pinning,
        "loadgen_pinning": f"sched_setaffinity({{{gen_core}}})" if gen_core is not None else "none",
        "python": platform.python_version(),
        "packages": _versions(),
        "loadavg_before": loadavg_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "server": "uvicorn, 1 worker, --no-access-log, --log-level warning, OMP_NUM_THREADS=1",
        "loadgen": "asyncio streams" + (" on uvloop" if _versions()["uvloop"] != "not installed" else ""),
    }
    doc: dict[str, Any] = {
        "command": COMMAND,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment,
        "setup": {
            "train_rows": TRAIN_ROWS,
            "registry": "a local `mlflow server` (SQLite, proxied artifacts), as `mlops-lab up` runs it",
            "distinct_request_bodies": runs.DISTINCT_BODIES,
            "model_version": figures["in_process"]["model_version"],
            "scorer": figures["in_process"]["scorer"],
        },
        "figures": figures,
        "goals": goals_of(figures),
        "notes": notes,
    }
    doc["runtime_s"] = round(time.monotonic() - started, 1)
    return doc


def main() -> int:
    try:
        doc = measure()
    except Exception as exc:  # could not measure: the one case that fails the command
        print(f"bench: could not measure: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    out = get_settings().home / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n")
    markdown = render_markdown(doc)
    (out / "serving.md").write_text(markdown)
    print(markdown)
    print(f"wrote {out / 'serving.json'} and {out / 'serving.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
