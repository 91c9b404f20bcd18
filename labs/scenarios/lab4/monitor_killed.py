"""lab4/monitor-killed: the drift monitor dies; a real Prometheus must page instead of going quiet.

    make scenario S=lab4/monitor-killed [IMPL=exercises]

A real drift monitor process (`mlops-lab monitor`) and a real Prometheus that scrapes it every
second and evaluates, every second, the ML alert rules rendered from the alerts part
(`rule_group()`). Every other ML alert reads the monitor's gauges: when the monitor dies they
do not fire, they vanish. So the monitor-down alert must:
  1. stay quiet while the monitor answers;
  2. go pending, then firing, once the monitor is SIGKILLed (up == 0);
  3. fire again when the target itself is removed from the configuration (no `up` series at
     all: only absent() sees that);
  4. resolve once the monitor is back.
Everything is read through Prometheus' HTTP API (/api/v1/query, /api/v1/alerts). The rules'
`for` durations are shortened to a few seconds so that the scenario runs in under a minute; the
timeline says so. With IMPL=exercises the alert rules are yours (exercises/lab4/alerts.py).
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from mlops_lab.labs.grading import free_port
from mlops_lab.labs.scenarios import Context, ScenarioFailed
from mlops_lab.monitoring.alerts import MONITOR_DOWN, render_rules
from mlops_lab.runtime.supervisor import ProcessSpec, monitor_spec

FOR = "4s"  # instead of the rules' minutes: the scenario waits seconds, not a page's patience
JOB = "monitor"
QUIET_EVALUATIONS = 3


def run(ctx: Context) -> None:
    alerts = ctx.module("alert-rules")
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus is None or promtool is None:
        raise ScenarioFailed(
            "prometheus and promtool are needed (make setup installs them: apt-get install prometheus)"
        )
    # No MLflow server: the monitor finds no @champion in this scenario's own registry, so it is
    # alive and exports its metrics without evaluating windows; that is all the down alert reads.
    ctx.settings = ctx.settings.model_copy(update={"tracking_uri": ctx.settings.mlflow_sqlite_uri})
    ctx.supervisor.settings = ctx.settings
    home = ctx.settings.home / "prometheus"
    home.mkdir(parents=True, exist_ok=True)

    group = copy.deepcopy(alerts.rule_group())
    original = {r.get("alert", r.get("record")): r.get("for") for r in group["rules"]}
    ctx.check(MONITOR_DOWN in original, f"the alerts part's rule_group() has {MONITOR_DOWN}")
    for rule in group["rules"]:
        if "for" in rule:
            rule["for"] = FOR
    (home / "rules.yml").write_text(render_rules(group))
    checked = subprocess.run(
        [promtool, "check", "rules", str(home / "rules.yml")], capture_output=True, text=True, timeout=60
    )
    said = " ".join((checked.stdout + checked.stderr).split())
    ctx.check(checked.returncode == 0, f"promtool check rules accepts the rendered group ({said})")
    shortened = ", ".join(f"{name} {was} -> {FOR}" for name, was in original.items() if was)
    ctx.info(f"rules from the alerts part, `for` shortened for this scenario: {shortened}")

    monitor = monitor_spec(ctx.settings)
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    write_config(home, monitor.port)
    spec = ProcessSpec(
        "prometheus",
        [
            prometheus,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",  # POST /-/reload applies a changed configuration
        ],
        f"{api}/-/ready",
        port,
    )
    ctx.info(
        f"setup: starting the drift monitor (mlops-lab monitor, port {monitor.port}) and Prometheus on "
        f"{api}, which scrapes it and evaluates the rules every second"
    )
    ctx.supervisor.start_all([monitor, spec])

    ctx.until(lambda: query(api, f'up{{job="{JOB}"}}') == [1.0], "Prometheus scrapes the monitor (up == 1)")
    ctx.signal(f'up{{job="{JOB}"}} 1; the monitor answers its scrapes')
    # Before the first scrape there is no `up` yet, so absent() may hold for an evaluation or two
    # (pending, never firing: the `for` covers a start). Quiet means quiet for several evaluations.
    ctx.until(lambda: down_alerts(api) == [], f"{MONITOR_DOWN} quiet once the monitor is scraped")
    quiet = True
    for _ in range(QUIET_EVALUATIONS):
        time.sleep(1.0)  # one evaluation interval
        quiet = quiet and down_alerts(api) == []
    ctx.check(
        quiet, f"{MONITOR_DOWN} stays quiet while the monitor answers ({QUIET_EVALUATIONS} evaluations)"
    )

    # ---- SIGKILL: no goodbye, no last scrape
    state = ctx.supervisor.read_state("monitor")
    assert state is not None
    os.killpg(int(state["pgid"]), signal.SIGKILL)
    killed = time.monotonic()
    ctx.inject(f"SIGKILL to the monitor's process group (pid {state['pid']}): the OOM killer, a lost node")
    ctx.until(lambda: query(api, f'up{{job="{JOB}"}}') == [0.0], "the next scrape fails: up == 0")
    ctx.symptom(
        f'{time.monotonic() - killed:.1f} s later: up{{job="{JOB}"}} 0; every gauge of the monitor goes stale'
    )
    # Polled four times a second, the pending phase (the `for`) is seen; on a starved machine it
    # might not be, and firing is what matters, so either counts here.
    pending = ctx.until(lambda: states(api, "pending") or states(api, "firing"), f"{MONITOR_DOWN} is active")
    ctx.signal(
        f"{time.monotonic() - killed:.1f} s after the kill: {MONITOR_DOWN} {pending[0]['state']} "
        f"{describe(pending)}"
    )
    firing = ctx.until(lambda: states(api, "firing"), f"{MONITOR_DOWN} fires")
    ctx.signal(f"{time.monotonic() - killed:.1f} s after the kill: {MONITOR_DOWN} firing {describe(firing)}")
    ctx.check(
        any(a["labels"].get("instance") == f"127.0.0.1:{monitor.port}" for a in firing),
        f"it names the dead target (instance 127.0.0.1:{monitor.port})",
    )

    # ---- the target disappears from the configuration: no `up` series left to be 0
    write_config(home, None)
    httpx.post(f"{api}/-/reload", timeout=10).raise_for_status()
    ctx.inject(
        "the monitor's target is removed from Prometheus' configuration (a deleted pod, a bad edit); reload"
    )
    ctx.until(lambda: query(api, f'up{{job="{JOB}"}}') == [], f'up{{job="{JOB}"}} is gone: no series at all')
    ctx.symptom(f'up{{job="{JOB}"}} returns nothing: an alert on up == 0 alone would resolve here, silently')
    gone = ctx.until(
        lambda: [a for a in states(api, "firing") if "instance" not in a["labels"]],
        f"{MONITOR_DOWN} fires from absent()",
    )
    ctx.signal(f"{MONITOR_DOWN} firing {describe(gone)}: the absent() clause")
    ctx.check(bool(gone), f"{MONITOR_DOWN} fires for a target that is gone, not only for one that fails")

    # ---- recovery: the monitor is back, the alert resolves
    ctx.mitigate("restart the monitor (mlops-lab up; in the cluster its Deployment) and restore its target")
    ctx.supervisor.start(monitor)
    write_config(home, monitor.port)
    httpx.post(f"{api}/-/reload", timeout=10).raise_for_status()
    ctx.until(lambda: query(api, f'up{{job="{JOB}"}}') == [1.0], "the monitor is scraped again")
    ctx.until(lambda: down_alerts(api) == [], f"{MONITOR_DOWN} resolves")
    ctx.check(down_alerts(api) == [], f"{MONITOR_DOWN} resolved once the monitor answers again")
    ctx.info("its cursor and cooldown are on disk: it resumes where it stopped, nothing is evaluated twice")


def write_config(home: Path, monitor_port: int | None) -> None:
    """prometheus.yml: the rules, and the monitor's job with its target, or with no target when
    `monitor_port` is None. The job stays: Prometheus marks a removed target's series stale (so
    they vanish from queries at once), but drops a removed job's without staleness markers, and
    those would linger for the 5-minute lookback."""
    targets = [] if monitor_port is None else [f"127.0.0.1:{monitor_port}"]
    scrape = [{"job_name": JOB, "static_configs": [{"targets": targets}]}]
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(home / "rules.yml")],
        "scrape_configs": scrape,
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def query(api: str, promql: str) -> list[float]:
    """The values of an instant query (an empty list: no series)."""
    r = httpx.get(f"{api}/api/v1/query", params={"query": promql}, timeout=5)
    r.raise_for_status()
    return [float(item["value"][1]) for item in r.json()["data"]["result"]]


def down_alerts(api: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{api}/api/v1/alerts", timeout=5)
    r.raise_for_status()
    return [a for a in r.json()["data"]["alerts"] if a["labels"].get("alertname") == MONITOR_DOWN]


def states(api: str, state: str) -> list[dict[str, Any]]:
    return [a for a in down_alerts(api) if a["state"] == state]


def describe(found: list[dict[str, Any]]) -> str:
    return "; ".join(
        "{" + ", ".join(f"{k}={v}" for k, v in sorted(a["labels"].items()) if k != "alertname") + "}"
        for a in found
    )
