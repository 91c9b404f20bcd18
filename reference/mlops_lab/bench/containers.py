"""The image in numbers: its size, and a model server's start-up as a container next to the same
server as a host process, in the same run, against the same registry (make bench).

    python -m mlops_lab.bench.containers     # -> $MLOPS_HOME/bench/containers.{json,md}

Start-up is `docker run` (or the process's spawn) -> /readyz 200, median of 3 each, alternated so
that a noisy neighbour hurts both. Both load v1 from MLflow in a throwaway sandbox network
(mlops_lab.cluster.sandbox): the container by the network's name, the process through MLflow's
port published on 127.0.0.1. Without a Docker engine it writes why, and nothing else.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlops_lab.bench.report import goal
from mlops_lab.cluster.sandbox import Sandbox, docker, engine_answers, image_name, wait_http
from mlops_lab.settings import get_settings

REPEATS = 3
# A container adds its namespaces, cgroup and overlay mount to the same process: tens to hundreds
# of milliseconds, not seconds. More than this means the image does something the process does not.
OVERHEAD_GOAL_S = 1.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_start(box: Sandbox, home: Path) -> float:
    """The same server, as a host process: spawn -> /readyz 200."""
    port = _free_port()
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "MLOPS_TRACKING_URI": box.mlflow_url,
        "OMP_NUM_THREADS": "1",
    }
    argv = [sys.executable, "-m", "mlops_lab.cli", "serve", "--variant", "stable", "--port", str(port)]
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", 180)
        return time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def container_start(box: Sandbox, name: str) -> float:
    """`docker run -d` of the server -> /readyz 200 on its published port."""
    started = time.monotonic()
    port = box.server(name)
    wait_http(f"http://127.0.0.1:{port}/readyz", 180)
    took = time.monotonic() - started
    docker("rm", "-f", box.name(name), check=False)
    return took


def measure() -> dict[str, Any]:
    image = image_name()
    if not engine_answers():
        return {"image": image, "skipped": "no Docker engine answers (make docker)"}
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode:
        return {"image": image, "skipped": f"no image {image} (make image)"}
    size = int(docker("image", "inspect", "-f", "{{.Size}}", image))
    box = Sandbox(image).start()
    as_process: list[float] = []
    as_container: list[float] = []
    try:
        for i in range(REPEATS):
            with tempfile.TemporaryDirectory() as home:
                as_process.append(process_start(box, Path(home)))
            as_container.append(container_start(box, f"bench-{i}"))
    finally:
        box.close()
    process_s, container_s = statistics.median(as_process), statistics.median(as_container)
    overhead = container_s - process_s
    return {
        "image": image,
        "image_size_mb": round(size / 1e6, 1),
        "start_to_ready_s": {
            "container": round(container_s, 2),
            "process": round(process_s, 2),
            "container_runs": [round(x, 2) for x in as_container],
            "process_runs": [round(x, 2) for x in as_process],
        },
        "goals": [
            goal(
                "container start-up overhead (container - process, start -> /readyz 200)",
                f"<= {OVERHEAD_GOAL_S} s",
                overhead,
                "s",
                overhead <= OVERHEAD_GOAL_S,
                f"container {container_s:.2f} s vs process {process_s:.2f} s, median of {REPEATS}",
            )
        ],
    }


def render_markdown(doc: dict[str, Any]) -> str:
    if "skipped" in doc:
        return f"# Containers\n\nNot measured: {doc['skipped']}.\n"
    start = doc["start_to_ready_s"]
    lines = [
        "# Containers",
        "",
        f"Image `{doc['image']}`: {doc['image_size_mb']} MB.",
        "",
        "| start -> /readyz 200 | median | runs |",
        "|---|---|---|",
        f"| container (`docker run`) | {start['container']} s | {start['container_runs']} |",
        f"| host process (baseline) | {start['process']} s | {start['process_runs']} |",
        "",
        "| goal | target | measured | met |",
        "|---|---|---|---|",
    ]
    for g in doc["goals"]:
        met = "met" if g["met"] else "NOT met"
        lines.append(f"| {g['name']} | {g['target']} | {g['measured']} {g['unit']} | {met} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    out = get_settings().home / "bench"
    out.mkdir(parents=True, exist_ok=True)
    doc = measure()
    (out / "containers.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "containers.md").write_text(render_markdown(doc))
    print(render_markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
