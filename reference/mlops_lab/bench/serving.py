"""Serving benchmark: one real model server process, one load generator, one run.

    make bench            # = .venv/bin/python -m mlops_lab.bench.serving

Writes $MLOPS_HOME/bench/serving.json (every figure, the environment, each goal with target,
measured value and verdict) and serving.md (the summary it also prints). A missed goal is
reported, not fatal: the exit code is non-zero only when something could not be measured.

Setup: a throwaway MLOPS home with a serverless SQLite registry; v1 trained on 20,000 baseline
rows and promoted; one uvicorn worker (`mlops_lab.bench.server:create_bench_app`, the real app
plus a do-nothing POST /bench/noop) pinned to one core, the load generator pinned to the other.
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
from mlops_lab.bench.server import ServerProcess, start_server
from mlops_lab.settings import Settings, get_settings

TRAIN_ROWS = 20_000
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


def measure() -> dict[str, Any]:
    from mlops_lab.data.generator import generate
    from mlops_lab.lifecycle.release import train_and_release
    from mlops_lab.lifecycle.tracking import configure_mlflow_env

    configure_mlflow_env()
    started = time.monotonic()
    notes: list[str] = []
    cores = sorted(os.sched_getaffinity(0))
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    home = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    server: ServerProcess | None = None
    server_core: int | None = None
    gen_core: int | None = None
    try:
        settings = _bench_settings(home)
        print(f"training v1 on {TRAIN_ROWS} rows under {home} ...", file=sys.stderr)
        rel = train_and_release(settings, generate("baseline", TRAIN_ROWS), promote=True, actor="bench",
                                reason="serving benchmark")  # fmt: skip
        if not rel.promoted:
            raise RuntimeError(f"v1 was not promoted: {rel.verdict.summary()}")
        if len(cores) >= 2:
            server_core, gen_core = cores[0], cores[1]
        else:
            notes.append("only one core available: server and load generator share it (unpinned), "
                         "so every figure is pessimistic")  # fmt: skip
        port = settings.stable_port
        print("starting the server ...", file=sys.stderr)
        server = start_server(settings, port, core=server_core, log_path=home / "logs" / "server.log")
        if gen_core is not None:
            os.sched_setaffinity(0, {gen_core})  # this process, and so the load generator
        # Training left this process with a large heap of long-lived objects; freeze it so no
        # collection walks them again while the load generator runs here.
        gc.collect()
        gc.freeze()
        figures = runs.run_all(settings, server, notes)
    finally:
        if server is not None:
            server.stop()
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
