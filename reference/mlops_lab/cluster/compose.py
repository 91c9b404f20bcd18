"""The system as containers (reference/compose/compose.yaml), as the story and the container
scenarios see it from the host: the same questions `cluster.kind.Kind` answers for kind.

    python -c "from mlops_lab.cluster.compose import Compose; print(Compose().monitor_status())"

The router through its port published on 127.0.0.1, as a user's traffic reaches it; the rest
through the Docker CLI: state is read inside the containers (`docker exec`: the monitor's
/v1/status, the controller's state file), and work that needs MLflow and Postgres runs as one-off
containers of the bootstrap service (`compose run`: its image, environment and security), the
way kind's story runs Jobs. Faults are injected with the engine's own verbs (kill, stop, pause,
network disconnect, update).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx

from mlops_lab.cluster.kind import STATUS_CMD
from mlops_lab.cluster.target import CommandError, Failed, Target

PROJECT = "mlops-lab"
COMPOSE_FILE = Path(__file__).resolve().parents[2] / "compose" / "compose.yaml"
ROUTER = os.environ.get("MLOPS_COMPOSE_ROUTER", "http://127.0.0.1:8000")
PROMETHEUS = os.environ.get("MLOPS_COMPOSE_PROMETHEUS", "http://127.0.0.1:9090")
BACKEND_NETWORK = "mlops-lab-backend"
ROLLOUT_FILE = "/var/lib/mlops-lab/canary/rollout.json"


class DockerError(CommandError):
    """A docker command failed (a container restarting, the engine busy): `wait` retries these."""


def compose_command() -> list[str]:
    """`docker compose` (v2, a laptop) or `docker-compose` (1.29, Debian's package)."""
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0
    ):
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise Failed("neither `docker compose` nor `docker-compose` is installed: run make compose-up")


def container(service: str) -> str:
    """The container of a compose service (container_name in compose.yaml)."""
    return f"{PROJECT}-{service}"


class Compose(Target):
    def __init__(self) -> None:
        super().__init__()
        self.router = ROUTER
        self.token = os.environ.get("MLOPS_ADMIN_TOKEN", "mlops-dev-token")  # compose.yaml's default
        self._compose: list[str] | None = None

    # ------------------------------------------------------------------ plumbing
    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
        if check and r.returncode != 0:
            raise DockerError(f"docker {' '.join(args[:3])}: {(r.stderr or r.stdout).strip()[:300]}")
        return r.stdout

    def compose(self, *args: str, timeout: float = 600) -> str:
        self._compose = self._compose or compose_command()
        argv = [*self._compose, "-p", PROJECT, "-f", str(COMPOSE_FILE), *args]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if r.returncode != 0:
            said = (r.stderr or r.stdout).strip()[-400:]
            raise DockerError(f"{' '.join(argv[:2])} {' '.join(args[:2])}: {said}")
        return r.stdout

    # ------------------------------------------------------------------ what the containers say
    def state(self, service: str) -> dict[str, Any]:
        """`docker inspect`'s State of a service's container (Status, OOMKilled, Health, ...)."""
        return dict(json.loads(self.docker("inspect", "-f", "{{json .State}}", container(service))))

    def restarts(self, service: str) -> int:
        return int(self.docker("inspect", "-f", "{{.RestartCount}}", container(service)).strip())

    def monitor_status(self) -> dict[str, Any]:
        return dict(json.loads(self.docker("exec", container("monitor"), "python", "-c", STATUS_CMD)))

    def rollout(self) -> dict[str, Any] | None:
        """The controller's current or last rollout, from its state file (None before the first)."""
        try:
            text = self.docker("exec", container("controller"), "cat", ROLLOUT_FILE)
        except DockerError:
            return None
        rollout = json.loads(text).get("rollout")
        return dict(rollout) if rollout else None

    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def served(self) -> str:
        return str(httpx.get(f"{ROUTER}/v1/model", timeout=5).json()["version"])

    def weights(self) -> dict[str, Any]:
        return dict(httpx.get(f"{ROUTER}/admin/state", headers=self.auth(), timeout=5).json())

    def alias(self, alias: str) -> str | None:
        """The version behind a registry alias, asked inside the MLflow container."""
        code = (
            "import json, urllib.request as u, urllib.error as e\n"
            "try:\n"
            f"    r = u.urlopen('http://127.0.0.1:5000/api/2.0/mlflow/registered-models/alias"
            f"?name=fraud-detector&alias={alias}', timeout=10)\n"
            "    print(json.load(r)['model_version']['version'])\n"
            "except e.HTTPError:\n"
            "    print('')\n"
        )
        out = self.docker("exec", container("mlflow"), "python", "-c", code).strip()
        return out or None

    def psql(self, sql: str) -> str:
        return self.docker("exec", container("postgres"), "psql", "-U", "mlops", "-d", "mlops", "-Atc", sql)

    def alerts(self) -> dict[str, str]:
        """Prometheus's alerts by name: "pending" or "firing"."""
        data = httpx.get(f"{PROMETHEUS}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return {a["labels"]["alertname"]: a["state"] for a in data}

    def query(self, promql: str) -> float:
        """One number from Prometheus (the largest of the result's series; 0 when there is none)."""
        params = {"query": promql}
        data = httpx.get(f"{PROMETHEUS}/api/v1/query", params=params, timeout=5).json()["data"]["result"]
        return max((float(r["value"][1]) for r in data), default=0.0)

    # ------------------------------------------------------------------ one-off jobs
    def run_job(
        self, name: str, args: list[str], timeout_s: float = 600, wait: bool = True, small: bool = False
    ) -> None:
        """A one-off container of the bootstrap service (its image, environment and security)
        that runs `python -m mlops_lab.cluster.incluster ARGS`, like kind's Jobs. `small` is
        accepted for the same signature: the service's memory limit bounds every job here."""
        del small
        self.stop_job(name)
        self.compose(
            "run", "-d", "--no-deps", "--name", container(f"job-{name}"),
            "bootstrap", "python", "-m", "mlops_lab.cluster.incluster", *args,
        )  # fmt: skip
        if wait:
            self.wait_job(name, timeout_s)

    def wait_job(self, name: str, timeout_s: float) -> None:
        job = container(f"job-{name}")
        try:
            code = int(self.docker("wait", job, timeout=timeout_s).strip())
        except subprocess.TimeoutExpired as exc:
            raise Failed(f"job {name} did not finish in {timeout_s:.0f} s") from exc
        if code != 0:
            raise Failed(f"job {name} failed (exit {code}): {self.logs(job, 20)}")
        self.say(f"job {name} complete", self.logs(job, 1))

    def stop_job(self, name: str) -> None:
        self.docker("rm", "-f", container(f"job-{name}"), check=False)

    def logs(self, name: str, tail: int) -> str:
        argv = ["docker", "logs", "--tail", str(tail), name]
        r = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (r.stdout + r.stderr).strip()

    def challenger_of_job(self, job: str) -> str:
        """The version a job staged, from its last log line (`@challenger -> vN`)."""
        line = self.logs(container(f"job-{job}"), 1)
        if "@challenger -> v" not in line:
            raise Failed(f"job {job} staged nothing: {line}")
        return line.rsplit("v", 1)[1]
