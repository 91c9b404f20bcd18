"""The story and the container scenarios, played from the host against reference/compose.

    python -m mlops_lab.story.containers_story story          # make demo TARGET=containers
    python -m mlops_lab.story.containers_story scenario canary-killed   # S=containers/canary-killed
    python -m mlops_lab.story.containers_story scenario all

Needs the containers up (make compose-up). Each check prints one timeline line; the first that
fails ends the run with exit code 1. Every scenario injects its fault with the engine's own verbs,
across real container boundaries, names the signal that shows it, and heals what it broke before
it returns, so the next one starts from a healthy system:

  canary-killed      docker kill of the canary mid-rollout: the router retries on stable, the
                     controller rolls back; every request after the kill is answered.
  registry-partition docker network disconnect of MLflow while the rollout promotes: the controller
                     records the error and retries; after the heal, aliases and router agree.
  monitor-paused     docker pause of the drift monitor: MLOpsMonitorDown goes pending (the absent
                     signal), and clears once it is unpaused.
  db-restart         docker restart of Postgres under load: every acknowledged prediction is in
                     the store afterwards (the writers spill and replay).
  server-oom         a model server whose memory limit is below what it needs: OOM-killed,
                     restarted by its policy, never ready, so never in rotation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from mlops_lab.cluster.compose import BACKEND_NETWORK, COMPOSE_FILE, Compose, container
from mlops_lab.cluster.target import Failed
from mlops_lab.load.acknowledged import Acknowledged
from mlops_lab.load.traffic import Traffic, summarize
from mlops_lab.story.kind_story import bad_candidate_scenario, story

# The demo's intervals, which compose.yaml reads too: the rollout's last step is the promotion's.
DEMO_ENV = COMPOSE_FILE.parents[1] / "k8s" / "components" / "demo-speed" / "demo.env"


# ---------------------------------------------------------------- helpers
def last_step(env_file: Path = DEMO_ENV) -> int:
    """The last canary step (percent) of the containers' settings."""
    for line in env_file.read_text().splitlines():
        if line.startswith("MLOPS_CANARY_STEPS="):
            return max(json.loads(line.split("=", 1)[1]))
    raise Failed(f"no MLOPS_CANARY_STEPS in {env_file}")


def staged_rollout(c: Compose) -> tuple[str, str]:
    """(champion, candidate): a healthy candidate staged by a one-off job, its rollout started."""
    champion = c.served()
    before = c.rollout()
    c.run_job("good-candidate", ["good-candidate"], timeout_s=600)
    candidate = c.challenger_of_job("good-candidate")

    def started() -> bool:
        r = c.rollout()
        return r is not None and r != before and r["candidate"] == candidate

    c.wait(started, 120, f"the controller started no rollout of v{candidate}", every_s=1)
    return champion, candidate


def consistent(c: Compose, candidate: str, champion: str) -> str:
    """After a rollout ended: registry, stable server and router agree (promoted or rolled back)."""
    r = c.rollout() or {}
    want = candidate if r.get("phase") == "promoted" else champion
    c.wait(lambda: c.alias("champion") == want, 60, f"@champion is not v{want}")
    c.wait(lambda: c.served() == want, 60, f"stable does not serve v{want}")
    weights = c.weights()
    if weights.get("canary_weight") != 0 or weights.get("shadow"):
        raise Failed(f"router not back to 100/0 without shadow: {weights}")
    return f"{r.get('phase')}: @champion v{want}, stable serves v{want}, router 100/0"


# ---------------------------------------------------------------- scenarios
def canary_killed(c: Compose) -> None:
    traffic = Traffic(c.router, 100, concurrency=16, seed=31).start()  # the judge needs canary data
    try:
        time.sleep(5)
        champion, candidate = staged_rollout(c)
        c.say(f"v{candidate} staged", f"stable serves v{champion}")
        c.wait(lambda: (c.rollout() or {}).get("weight", 0) > 0, 180, "the canary never got traffic")
        killed_at = traffic.now()
        c.docker("kill", container("canary"))
        c.say("inject: docker kill mlops-lab-canary", f"at {(c.rollout() or {}).get('weight')}% canary")
        r = c.follow_rollout(candidate, 180)
        if r["phase"] != "rolled_back":
            raise Failed(f"expected a rollback after the canary died, got {r['phase']}")
        time.sleep(3)
        after = traffic.since(killed_at)
    finally:
        traffic.stop()
        c.docker("start", container("canary"), check=False)
    failed = sum(a.status != 200 for a in after)
    c.say("symptom", f"{len(after)} requests after the kill, {failed} failed")
    if failed:
        raise Failed(f"expected every request after the kill answered (stable retries), got {failed} failed")
    fallbacks = c.query("increase(mlops_router_fallbacks_total[2m])")
    c.say("signal", f"mlops_router_fallbacks_total +{fallbacks:.0f}; rolled_back: {r.get('reason', '')}")
    c.say("mitigation", consistent(c, candidate, champion))


def registry_partition(c: Compose) -> None:
    traffic = Traffic(c.router, 100, concurrency=16, seed=37).start()
    try:
        time.sleep(5)
        champion, candidate = staged_rollout(c)
        c.say(f"v{candidate} staged", f"stable serves v{champion}")
        step = last_step()

        def at_last_step() -> bool:
            r = c.rollout() or {}
            return r.get("phase") in ("promoted", "rolled_back") or int(r.get("weight", 0)) >= step

        c.wait(at_last_step, 300, f"the rollout never reached {step}%", every_s=1)
        r = c.rollout() or {}
        if r.get("phase") in ("promoted", "rolled_back"):
            raise Failed(f"expected the rollout at {step}% first, got {r['phase']}: {r.get('reason')}")
        c.docker("network", "disconnect", BACKEND_NETWORK, container("mlflow"))
        c.say("inject: docker network disconnect mlops-lab-backend mlops-lab-mlflow", "the registry is gone")
        # Longer than the controller's registry calls retry (2 retries, 20 s timeouts), so the
        # promotion fails at least once, and the rollout must hold where it is until the heal.
        errors: set[str] = set()
        seen: set[tuple[str, int]] = set()
        deadline = time.monotonic() + 50
        while time.monotonic() < deadline:
            r = c.rollout() or {}
            seen.add((str(r.get("phase")), int(r.get("weight", 0))))
            if r.get("last_error"):
                errors.add(str(r["last_error"])[:100])
            time.sleep(1)
        c.say("symptom", f"rollout held at {sorted(seen)}; controller errors: {sorted(errors) or 'none'}")
    finally:
        c.docker("network", "connect", "--alias", "mlflow", BACKEND_NETWORK, container("mlflow"), check=False)
        c.say("heal: docker network connect", "MLflow is back on the backend network")
    try:
        r = c.follow_rollout(candidate, 240)
        c.say("signal", f"rollout {r['phase']}: {r.get('reason', '')}")
        c.say("mitigation", consistent(c, candidate, champion))
    finally:
        traffic.stop()
    failed = sum(a.status != 200 for a in traffic.answers)
    if failed:
        raise Failed(
            f"expected no failed request through the partition, got {failed} of {len(traffic.answers)}"
        )


def monitor_paused(c: Compose) -> None:
    c.wait(lambda: "MLOpsMonitorDown" not in c.alerts(), 120, "MLOpsMonitorDown is active before the fault")
    c.docker("pause", container("monitor"))
    c.say("inject: docker pause mlops-lab-monitor", "the process is frozen, its port still open")
    try:
        c.wait(lambda: "MLOpsMonitorDown" in c.alerts(), 90, "MLOpsMonitorDown did not go pending", every_s=2)
        c.say("signal", f"MLOpsMonitorDown {c.alerts()['MLOpsMonitorDown']} (fires after its `for: 5m`)")
    finally:
        c.docker("unpause", container("monitor"), check=False)
    c.wait(lambda: "MLOpsMonitorDown" not in c.alerts(), 120, "MLOpsMonitorDown did not clear after unpause")
    c.say("mitigation: docker unpause", "scrapes answer again; the alert cleared")


def db_restart(c: Compose) -> None:
    client = Acknowledged(c.router)
    try:
        time.sleep(8)
        c.docker("restart", container("postgres"))
        c.say("inject: docker restart mlops-lab-postgres", "under load")
        c.wait(
            lambda: c.state("postgres")["Health"]["Status"] == "healthy", 120, "postgres not healthy again"
        )
        time.sleep(8)
    finally:
        client.stop()
    acked = set(client.ok)
    c.say("symptom", f"{len(acked)} predictions acknowledged, {client.failed} refused or failed")
    missing: set[str] = set()

    def all_logged() -> bool:
        nonlocal missing
        ids = c.psql("SELECT request_id FROM predictions WHERE request_id LIKE 'ack-%'").split()
        missing = acked - set(ids)
        return not missing

    c.wait(all_logged, 180, "acknowledged predictions missing from the store", every_s=5)
    backlog = c.query("max_over_time(mlops_store_queue_depth[2m])")
    spilled = c.query("max_over_time(mlops_store_spilled_rows[2m])")
    c.say(
        "signal",
        f"mlops_store_queue_depth peaked at {backlog:.0f}, mlops_store_spilled_rows at {spilled:.0f}",
    )
    if backlog + spilled == 0:
        raise Failed("expected the prediction log's backlog or spill to show the outage, got 0 and 0")
    c.say("guarantee", f"all {len(acked)} acknowledged predictions are in the store, none lost")


def server_oom(c: Compose) -> None:
    limit = "40m"
    canary = container("canary")
    restarts = c.restarts("canary")
    # A running container's limit cannot drop below its usage: stopped, updated, started, it
    # meets the limit while it imports and loads its model, like a version too big for its pod.
    c.docker("stop", canary)
    c.docker("update", "--memory", limit, "--memory-swap", limit, canary)
    c.docker("start", canary)
    c.say(f"inject: docker update --memory {limit} mlops-lab-canary", "below what it needs to start")
    traffic = Traffic(c.router, 40, concurrency=4, seed=41).start()
    try:

        def oom_restarted() -> bool:
            return c.restarts("canary") > restarts and bool(c.state("canary").get("OOMKilled"))

        c.wait(oom_restarted, 120, "the canary was not OOM-killed and restarted", every_s=1)
        state = c.state("canary")
        c.say("symptom", f"OOMKilled={state.get('OOMKilled')}, restarts {c.restarts('canary') - restarts}")
        ready = state.get("Health", {}).get("Status")
        if ready == "healthy":
            raise Failed("expected the OOM-killed canary never healthy, got healthy")
        down = 'min_over_time(up{job="model-servers",variant="canary"}[30s])'
        c.wait(lambda: c.query(down) == 0, 60, "Prometheus never saw the canary down", every_s=2)
        c.say(
            "signal", "docker inspect: OOMKilled, RestartCount; up{variant=canary} 0 (MLOpsModelServerDown)"
        )
    finally:
        c.docker("stop", canary, check=False)
        c.docker("update", "--memory", "512m", "--memory-swap", "512m", canary, check=False)
        c.docker("start", canary, check=False)
        traffic.stop()
    rows = summarize(traffic.answers)
    failed = sum(a.status != 200 for a in traffic.answers)
    if failed or "canary" in rows:
        raise Failed(f"expected all traffic answered by stable, got {failed} failed, {rows}")
    # Docker keeps OOMKilled set after a restart: "back" is running, and not restarted since.
    started = c.state("canary").get("StartedAt")
    time.sleep(10)
    state = c.state("canary")
    if state.get("Status") != "running" or state.get("StartedAt") != started:
        raise Failed(f"expected the canary running with its limit restored, got {state.get('Status')}")
    c.say("mitigation", f"limit restored, canary stays up; {len(traffic.answers)} requests all from stable")


SCENARIOS: dict[str, Callable[[Compose], None]] = {
    "canary-killed": canary_killed,
    "registry-partition": registry_partition,
    "monitor-paused": monitor_paused,
    "db-restart": db_restart,
    "server-oom": server_oom,
    "bad-candidate": bad_candidate_scenario,
}


def play(name: str, c: Compose) -> None:
    c.say(f"scenario containers/{name}")
    SCENARIOS[name](c)
    c.say(f"containers/{name} passed")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="The story and the container scenarios, against reference/compose."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("story")
    sub.add_parser("scenario").add_argument("name", choices=[*sorted(SCENARIOS), "all"])
    args = parser.parse_args(argv)
    c = Compose()
    try:
        c.wait(lambda: httpx.get(f"{c.router}/readyz", timeout=3).status_code == 200, 300, "router not ready")
        if args.command == "story":
            story(c)
        else:
            for name in sorted(SCENARIOS) if args.name == "all" else [args.name]:
                play(name, c)
    except Failed as exc:
        c.say("FAILED", str(exc))
        sys.exit(1)
    except httpx.HTTPError as exc:
        c.say("FAILED", f"the router at {c.router}: {exc.__class__.__name__}: {exc} (make compose-up?)")
        sys.exit(1)
    c.say("passed")


if __name__ == "__main__":
    main(sys.argv[1:])
