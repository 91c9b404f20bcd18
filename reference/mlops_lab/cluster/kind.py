"""The kind cluster as the story and the scenarios see it from the laptop (story.kind_story).

    python -c "from mlops_lab.cluster.kind import Kind; print(Kind('kind-mlops-lab').monitor_status())"

The router through its NodePort (127.0.0.1:30800), as a user's traffic would reach it; the rest
through kubectl with the kind context only, never the current one: state is read inside the
pods (`kubectl exec`: the monitor's /v1/status, the controller's state file), and work that needs
MLflow and Postgres runs as Jobs made from the nightly CronJob's pod template
(mlops_lab.cluster.incluster).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
from typing import Any

import httpx

from mlops_lab.cluster.target import CommandError, Failed, Target

NAMESPACE = "mlops-lab"
ROUTER = os.environ.get("MLOPS_KIND_ROUTER", "http://127.0.0.1:30800")
COMPONENT = "app.kubernetes.io/component"
STATUS_URL = "http://127.0.0.1:8003/v1/status"  # from inside the monitor's pod: no port to open
STATUS_CMD = f"import urllib.request as u; print(u.urlopen('{STATUS_URL}', timeout=10).read().decode())"


__all__ = ["COMPONENT", "ROUTER", "STATUS_CMD", "Failed", "Kind", "KubectlError"]


class KubectlError(CommandError):
    """kubectl failed (the API server busy, a pod restarting): `Kind.wait` retries these."""


class Kind(Target):
    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context
        self.kubectl_bin = os.environ.get("KUBECTL", "kubectl")
        self.router = ROUTER
        self._token: str | None = None

    # ------------------------------------------------------------------ plumbing

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        argv = [self.kubectl_bin, "--context", self.context, "--namespace", NAMESPACE, *args]
        r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        if r.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args[:3])}: {r.stderr.strip()[:400]}")
        return r.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    # ------------------------------------------------------------------ what the cluster says
    def monitor_status(self) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("exec", "deploy/monitor", "--", "python", "-c", STATUS_CMD)))

    def rollout(self) -> dict[str, Any] | None:
        """The controller's current or last rollout, from its state file (None before the first)."""
        try:
            text = self.kubectl(
                "exec", "deploy/controller", "--", "cat", "/var/lib/mlops-lab/canary/rollout.json"
            )
        except KubectlError:
            return None
        rollout = json.loads(text).get("rollout")
        return dict(rollout) if rollout else None

    def auth(self) -> dict[str, str]:
        if self._token is None:
            secret = self.get("secret", "mlops-lab-secrets")
            self._token = base64.b64decode(secret["data"]["admin-token"]).decode()
        return {"authorization": f"Bearer {self._token}"}

    def served(self) -> str:
        return str(httpx.get(f"{ROUTER}/v1/model", timeout=5).json()["version"])

    def weights(self) -> dict[str, Any]:
        return dict(httpx.get(f"{ROUTER}/admin/state", headers=self.auth(), timeout=5).json())

    def pods(self, component: str) -> list[dict[str, Any]]:
        return list(self.get("pods", "-l", f"{COMPONENT}={component}")["items"])

    # ------------------------------------------------------------------ Jobs
    def run_job(
        self, name: str, args: list[str], timeout_s: float = 600, wait: bool = True, small: bool = False
    ) -> None:
        """A Job from the nightly CronJob's pod template (image, env, security, resources) that
        runs `python -m mlops_lab.cluster.incluster ARGS`."""
        template = copy.deepcopy(self.get("cronjob", "retrain-nightly")["spec"]["jobTemplate"])
        pod = template["spec"]["template"]
        pod["metadata"]["labels"][COMPONENT] = "cluster-test"  # not "retrain": the monitor would wait on it
        pod["spec"].pop("initContainers", None)
        main = pod["spec"]["containers"][0]
        main["command"], main["args"] = ["python", "-m", "mlops_lab.cluster.incluster"], args
        if small:  # the labels feed: a loop over the store, not a training run
            main["resources"] = {
                "requests": {"cpu": "50m", "memory": "256Mi"},
                "limits": {"cpu": "500m", "memory": "512Mi"},
            }
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "labels": {COMPONENT: "cluster-test"}},
            "spec": {**template["spec"], "backoffLimit": 0, "ttlSecondsAfterFinished": 600},
        }
        self.kubectl("delete", "job", name, "--ignore-not-found", "--wait=true")
        self.kubectl("create", "-f", "-", stdin=json.dumps(job))
        if wait:
            self.wait_job(name, timeout_s)

    def stop_job(self, name: str) -> None:
        self.kubectl("delete", "job", name, "--ignore-not-found", "--wait=false")

    def wait_job(self, name: str, timeout_s: float) -> None:
        def done() -> bool:
            conditions = self.get("job", name).get("status", {}).get("conditions", [])
            states = {c["type"] for c in conditions if c["status"] == "True"}
            if "Failed" in states:
                raise Failed(f"Job {name} failed: {self.kubectl('logs', f'job/{name}', '--tail=20')}")
            return "Complete" in states

        self.wait(done, timeout_s, f"Job {name} did not finish in {timeout_s:.0f} s")
        self.say(f"Job {name} complete", self.kubectl("logs", f"job/{name}", "--tail=1").strip())

    def challenger_of_job(self, job: str) -> str:
        """The version a Job staged, from its last log line (`@challenger -> vN`)."""
        line = self.kubectl("logs", f"job/{job}", "--tail=1").strip()
        if "@challenger -> v" not in line:
            raise Failed(f"Job {job} staged nothing: {line}")
        return line.rsplit("v", 1)[1]
