"""The story and the kind scenarios, played from the laptop against the cluster (scripts/cluster.sh).
The story and bad_candidate take any target with Kind's questions: story.containers_story plays
them against the containers of reference/compose (cluster.compose.Compose).

    python -m mlops_lab.story.kind_story story
    python -m mlops_lab.story.kind_story scenario stable-pod-deleted|corrupt-canary|bad-candidate

Each check prints one timeline line; the first that fails ends the run with exit code 1.
Needs a cluster made by `make cluster-up`. None of this has run on the machine it was written
on (no Docker there): docs/cluster.md says what was verified there, and how.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from mlops_lab.cluster.compose import Compose
from mlops_lab.cluster.kind import ROUTER, Failed, Kind
from mlops_lab.load.traffic import Traffic, summarize


# ---------------------------------------------------------------- the story
def story(kind: Kind | Compose) -> None:
    ready = f"{kind.router}/readyz"
    kind.wait(lambda: httpx.get(ready, timeout=3).status_code == 200, 120, "router not ready")
    champion = kind.served()
    kind.say("router ready", f"stable serves v{champion}")
    # Chargebacks arrive behind the traffic, as in the demo: retraining learns from them.
    kind.run_job("story-labels", ["labels", "--seconds", "1500"], wait=False, small=True)
    last = kind.rollout()
    before = last["rollout_id"] if last else None
    traffic = Traffic(kind.router, 100, concurrency=16, seed=11).start()
    try:
        status = kind.monitor_status()
        first, trigger_before = status["windows"], status.get("last_trigger")
        kind.wait(lambda: kind.monitor_status()["windows"] >= first + 2, 180, "the monitor closed no window")
        kind.say("baseline windows evaluated", "no retraining expected")
        traffic.switch("covariate_shift")
        kind.say("traffic -> covariate_shift")
        trigger: dict[str, Any] = {}

        def triggered() -> bool:  # the monitor creates a Job, waits for it, then records the outcome
            last = kind.monitor_status().get("last_trigger")
            if not last or last == trigger_before or last.get("outcome") == "running":
                return False
            trigger.update(last)
            return True

        kind.wait(triggered, 1200, "the monitor's retraining Job did not finish")
        if trigger["outcome"] != "success":
            raise Failed(f"retraining {trigger['outcome']}: {trigger.get('detail')}")
        kind.say("retraining triggered and done", f"{trigger.get('reason')} -> {trigger.get('detail')}")
        started: dict[str, Any] = {}

        def new_rollout() -> bool:
            r = kind.rollout()
            if r is None or r["rollout_id"] == before:
                return False
            started.update(r)
            return True

        kind.wait(new_rollout, 120, "the controller started no rollout of the retrained version")
        candidate = str(started["candidate"])
        r = kind.follow_rollout(candidate, 400)
        if r["phase"] != "promoted":
            raise Failed(f"v{candidate} was not promoted: {r.get('reason')}")
        kind.wait(lambda: kind.served() == candidate, 60, f"stable does not serve v{candidate}")
        if kind.weights()["canary_weight"] != 0:
            raise Failed(f"router not back to 100/0: {kind.weights()}")
        kind.say(f"v{candidate} promoted", "stable serves it; router back to 100/0")
        bad_candidate(kind, candidate)
    finally:
        traffic.stop()
        kind.stop_job("story-labels")
    rows = summarize(traffic.answers)
    errors = sum(int(v["errors"]) for v in rows.values())
    kind.say("traffic", json.dumps(rows))
    if errors > 0.001 * len(traffic.answers):
        raise Failed(f"{errors} of {len(traffic.answers)} requests failed (SLO 0.1%)")


def bad_candidate(kind: Kind | Compose, champion: str | None = None) -> None:
    champion = champion or kind.served()
    kind.run_job("bad-candidate", ["bad-candidate"], timeout_s=600)
    version = kind.challenger_of_job("bad-candidate")
    r = kind.follow_rollout(version, 300)
    if r["phase"] != "rolled_back":
        raise Failed(f"the skewed v{version} was not rolled back: {r['phase']} {r.get('reason')}")
    if kind.served() != champion:
        raise Failed(f"stable serves v{kind.served()}, not v{champion}, after the rollback")
    kind.say(f"v{version} rolled back", f"{r.get('reason', '')}; stable still serves v{champion}")


# ---------------------------------------------------------------- scenarios
def stable_pod_deleted(kind: Kind) -> None:
    """Delete a stable pod under load: failures at most the requests in flight, and the new pod
    gets traffic only once ready (the other replica carries it meanwhile)."""
    concurrency = 8
    traffic = Traffic(ROUTER, 80, concurrency=concurrency, seed=13).start()
    try:
        time.sleep(10)
        victim = kind.pods("stable")[0]["metadata"]["name"]
        kind.kubectl("delete", "pod", victim, "--wait=false")
        kind.say(f"deleted {victim} under 80 req/s")

        def replaced() -> bool:
            pods = [p for p in kind.pods("stable") if p["metadata"]["name"] != victim]
            ready = [
                p
                for p in pods
                if any(
                    c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", [])
                )
            ]
            return len(ready) >= 2

        kind.wait(replaced, 180, "the replacement stable pod never became ready")
        kind.say("replacement pod ready", "readiness (/readyz) kept it out of the Service until warm")
        time.sleep(10)
    finally:
        traffic.stop()
    failed = sum(a.status != 200 for a in traffic.answers)
    kind.say("traffic", f"{len(traffic.answers)} requests, {failed} failed")
    if failed > concurrency:
        raise Failed(f"{failed} failed requests: more than the {concurrency} that can be in flight")


def corrupt_canary(kind: Kind) -> None:
    """A candidate whose artifact cannot load: the canary never becomes ready, the rollout aborts.
    A fresh canary pod first: one that served an earlier candidate would keep it (a failed load
    keeps the old model) and stay Ready, which is right for serving and wrong for this check."""
    champion = kind.served()
    before = {p["metadata"]["name"] for p in kind.pods("canary")}
    kind.kubectl("rollout", "restart", "deployment/canary")

    def fresh() -> bool:
        pods = kind.pods("canary")
        started = [s.get("started") for p in pods for s in p["status"].get("containerStatuses", [])]
        return (
            bool(pods)
            and not before & {p["metadata"]["name"] for p in pods}
            and all(started)
            and bool(started)
        )

    kind.wait(fresh, 180, "no fresh canary pod started")
    kind.run_job("corrupt-candidate", ["corrupt-candidate"], timeout_s=600)
    version = kind.challenger_of_job("corrupt-candidate")
    r = kind.follow_rollout(version, 180)
    if r["phase"] != "rolled_back":
        raise Failed(f"the corrupt v{version} was not rolled back: {r['phase']}")
    for pod in kind.pods("canary"):
        ready = [c for c in pod["status"].get("conditions", []) if c["type"] == "Ready"]
        if ready and ready[0]["status"] == "True":
            raise Failed(f"{pod['metadata']['name']} is Ready while its model cannot load")
    if kind.served() != champion:
        raise Failed(f"stable moved to v{kind.served()}")
    kind.say(f"v{version} aborted", f"{r.get('reason', '')}; canary pod never Ready; stable v{champion}")


def bad_candidate_scenario(kind: Kind | Compose) -> None:
    traffic = Traffic(kind.router, 100, concurrency=16, seed=17).start()  # the judge needs canary traffic
    try:
        time.sleep(15)
        bad_candidate(kind)
    finally:
        traffic.stop()


SCENARIOS: dict[str, Callable[[Kind], None]] = {
    "stable-pod-deleted": stable_pod_deleted,
    "corrupt-canary": corrupt_canary,
    "bad-candidate": bad_candidate_scenario,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The story and the kind scenarios, against the cluster.")
    parser.add_argument("--context", default="kind-mlops-lab", help="kubectl context (never the current one)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("story")
    sub.add_parser("scenario").add_argument("name", choices=sorted(SCENARIOS))
    args = parser.parse_args(argv)
    kind = Kind(args.context)
    try:
        story(kind) if args.command == "story" else SCENARIOS[args.name](kind)
    except Failed as exc:
        kind.say("FAILED", str(exc))
        sys.exit(1)
    except httpx.HTTPError as exc:  # the router's NodePort: is the cluster up, is 30800 mapped?
        kind.say("FAILED", f"the router at {ROUTER}: {exc.__class__.__name__}: {exc}")
        sys.exit(1)
    kind.say("passed")


if __name__ == "__main__":
    main(sys.argv[1:])
