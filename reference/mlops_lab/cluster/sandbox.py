"""The image on its own: a throwaway network with MLflow and v1 in it, and model servers started
from the image with the pods' security settings, published on 127.0.0.1 only.

    python -m mlops_lab.cluster.sandbox      # start one, time a server's start, remove it all

Used by the container tests (tests/system/test_containers.py) and `make bench`
(mlops_lab.bench.containers). Everything it creates carries a random suffix and is removed by
`close()`: it never touches the compose project or anything else on the engine.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from importlib.metadata import version as package_version
from typing import Any

import httpx

# What every mlops-lab container runs with (reference/k8s, reference/compose).
HARDENED = [
    "--read-only",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--tmpfs",
    "/tmp:size=64m",
]


def image_name() -> str:
    return f"mlops-lab:{package_version('mlops-lab')}"


def docker(*args: str, timeout: float = 300, check: bool = True) -> str:
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:2])}: {(r.stderr or r.stdout).strip()[-500:]}")
    return r.stdout.strip()


def engine_answers() -> bool:
    try:
        return (
            subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def wait_http(url: str, timeout_s: float, every_s: float = 0.05) -> float:
    """Seconds until `url` answers 200; TimeoutError after `timeout_s`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(every_s)
    raise TimeoutError(f"{url} did not answer 200 in {timeout_s:.0f} s")


class Sandbox:
    """A network, MLflow (SQLite backend, its port published on 127.0.0.1) and v1 trained in it."""

    def __init__(self, image: str | None = None) -> None:
        self.image = image or image_name()
        self.suffix = secrets.token_hex(4)
        self.network = f"mlops-lab-sandbox-{self.suffix}"
        self.containers: list[str] = []
        self.volumes: list[str] = []
        self.mlflow_url = ""

    def name(self, what: str) -> str:
        return f"mlops-lab-sandbox-{self.suffix}-{what}"

    def run(self, what: str, *args: str, detach: bool = True, volume: bool = True) -> str:
        """`docker run` of the image as `what`, hardened, on the sandbox network, its home a volume."""
        name = self.name(what)
        self.containers.append(name)
        extra = ["--network", self.network, "--name", name, *HARDENED]
        if volume:
            self.volumes.append(name)
            extra += ["-v", f"{name}:/var/lib/mlops-lab"]
        return docker("run", *(["-d"] if detach else ["--rm"]), *extra, *args, timeout=900)

    def start(self) -> Sandbox:
        docker("network", "create", self.network)
        self.run(
            "mlflow",
            "--network-alias", "mlflow", "-p", "127.0.0.1::5000",
            self.image, "mlflow", "server", "--host=0.0.0.0", "--port=5000", "--workers=1",
            "--backend-store-uri=sqlite:////var/lib/mlops-lab/mlflow.db",
            "--artifacts-destination=/var/lib/mlops-lab/artifacts", "--serve-artifacts",
            "--allowed-hosts=mlflow,mlflow:*,localhost,localhost:*,127.0.0.1,127.0.0.1:*",
        )  # fmt: skip
        self.mlflow_url = f"http://127.0.0.1:{self.port('mlflow', 5000)}"
        wait_http(f"{self.mlflow_url}/health", 180, every_s=0.5)
        self.containers.append(self.name("bootstrap"))
        self.run(
            "bootstrap", "-e", "MLOPS_TRACKING_URI=http://mlflow:5000",
            self.image, "python", "-m", "mlops_lab.cluster.incluster", "bootstrap",
            detach=False,
        )  # fmt: skip
        return self

    def port(self, what: str, container_port: int) -> int:
        """The host port (on 127.0.0.1) published for `container_port` of `what`."""
        published = docker("port", self.name(what), f"{container_port}/tcp")
        return int(published.splitlines()[0].rsplit(":", 1)[1])

    def server(self, what: str, *, memory: str = "512m", env: dict[str, str] | None = None) -> int:
        """A stable model server from the image; returns its host port (published on 127.0.0.1)."""
        settings = {"MLOPS_TRACKING_URI": "http://mlflow:5000", **(env or {})}
        flags = [x for k, v in settings.items() for x in ("-e", f"{k}={v}")]
        self.run(
            what, "--memory", memory, "-p", "127.0.0.1::8001", *flags,
            self.image, "mlops-lab", "serve", "--variant", "stable", "--port", "8001",
        )  # fmt: skip
        return self.port(what, 8001)

    def inspect(self, what: str) -> dict[str, Any]:
        return dict(json.loads(docker("inspect", self.name(what)))[0])

    def sql(self, what: str, query: str) -> list[tuple[Any, ...]]:
        """A query on the SQLite prediction store in `what`'s home volume (read by a one-off container)."""
        code = (
            "import json, sqlite3, sys; c = sqlite3.connect('/data/store.db');"
            "print(json.dumps(c.execute(sys.argv[1]).fetchall()))"
        )
        out = docker(
            "run", "--rm", "--network", "none", *HARDENED, "-v", f"{self.name(what)}:/data",
            self.image, "python", "-c", code, query,
        )  # fmt: skip
        return [tuple(row) for row in json.loads(out)]

    def close(self) -> None:
        for name in reversed(self.containers):
            docker("rm", "-f", "-v", name, check=False)
        for volume in self.volumes:
            docker("volume", "rm", "-f", volume, check=False)
        docker("network", "rm", self.network, check=False)


def main() -> None:
    box = Sandbox().start()
    try:
        started = time.monotonic()
        port = box.server("server")
        took = wait_http(f"http://127.0.0.1:{port}/readyz", 120)
        total = time.monotonic() - started
        print(f"{box.image}: docker run -> /readyz 200 in {total:.2f} s ({took:.2f} s of it polling)")
    finally:
        box.close()


if __name__ == "__main__":
    main()
