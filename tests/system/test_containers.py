"""The image, run for real on this machine's Docker engine (make image builds it; .ci/run does).

What a pod spec promises is checked on the container itself: uid 10001, a read-only root, no
capabilities, no privilege escalation; a model server started from the image answers /readyz
through a port published on 127.0.0.1 only; and `docker stop` (SIGTERM, then the grace period)
under load loses no acknowledged prediction. The containers run in a throwaway network with
their own MLflow and v1 (mlops_lab.cluster.sandbox), never the compose project's.

Without a Docker engine they skip, except under CI, where they must not (make docker starts one).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlops_lab.cluster.sandbox import HARDENED, Sandbox, docker, engine_answers, image_name, wait_http
from mlops_lab.load.acknowledged import Acknowledged

ROOT = Path(__file__).resolve().parents[2]
NO_ENGINE = "no Docker engine answers (make docker starts one; .ci/run does)"

pytestmark = [
    pytest.mark.skipif(not os.environ.get("CI") and not engine_answers(), reason=NO_ENGINE),
    pytest.mark.timeout(900),
]


@pytest.fixture(scope="module")
def image() -> str:
    """The image of this checkout's version; built (minutes) when the engine lacks it."""
    assert engine_answers(), f"a Docker engine is required in CI: {NO_ENGINE}"
    name = image_name()
    if subprocess.run(["docker", "image", "inspect", name], capture_output=True, check=False).returncode:
        subprocess.run([str(ROOT / "scripts" / "image.sh")], check=True, cwd=ROOT)
    return name


@pytest.fixture(scope="module")
def sandbox(image: str) -> Iterator[Sandbox]:
    box = Sandbox(image)
    try:
        yield box.start()
    finally:
        box.close()


def test_the_image_runs_unprivileged_on_a_read_only_root(image: str) -> None:
    config = docker("image", "inspect", "-f", "{{json .Config.User}}", image)
    assert config == '"10001:10001"', f"expected the image's user 10001:10001, got {config}"
    probe = (
        "id -u; grep -E '^(CapEff|NoNewPrivs):' /proc/self/status | tr -s '\\t' ' ';"
        "touch /opt/x 2>/dev/null && echo root-writable || echo root-read-only;"
        "touch /var/lib/mlops-lab/x && echo home-writable"
    )
    out = docker("run", "--rm", *HARDENED, "--entrypoint", "sh", image, "-c", probe).splitlines()
    assert out == [
        "10001",
        "CapEff: 0000000000000000",
        "NoNewPrivs: 1",
        "root-read-only",
        "home-writable",
    ], out


def test_the_server_is_ready_through_a_port_published_on_loopback(sandbox: Sandbox) -> None:
    port = sandbox.server("ready")
    took = wait_http(f"http://127.0.0.1:{port}/readyz", 180)
    model = httpx.get(f"http://127.0.0.1:{port}/v1/model", timeout=5).json()
    assert model["version"] == "1", model
    bindings = sandbox.inspect("ready")["HostConfig"]["PortBindings"]["8001/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"], f"expected 127.0.0.1 only, got {bindings}"
    state = sandbox.inspect("ready")
    assert state["HostConfig"]["ReadonlyRootfs"] and state["HostConfig"]["CapDrop"] == ["ALL"], state[
        "HostConfig"
    ]
    print(f"/readyz 200 {took:.1f} s after docker run returned")


def test_docker_stop_under_load_loses_no_acknowledged_prediction(sandbox: Sandbox) -> None:
    port = sandbox.server("stopped")
    wait_http(f"http://127.0.0.1:{port}/readyz", 180)
    client = Acknowledged(f"http://127.0.0.1:{port}", concurrency=8)
    try:
        time.sleep(4)
        docker("stop", "--time", "10", sandbox.name("stopped"))  # SIGTERM; SIGKILL after 10 s
    finally:
        client.stop()
    state = sandbox.inspect("stopped")["State"]
    assert state["ExitCode"] == 0, f"expected a clean exit on SIGTERM, got {state}"
    acked = set(client.ok)
    assert len(acked) > 100, f"expected the load to get answers before the stop, got {len(acked)}"
    stored = {row[0] for row in sandbox.sql("stopped", "SELECT request_id FROM predictions")}
    missing = acked - stored
    assert not missing, f"expected all {len(acked)} acknowledged predictions stored, {len(missing)} missing"
    print(f"{len(acked)} acknowledged, all stored; {client.failed} refused or failed while it stopped")
