"""The canary system with real processes: MLflow server, stable and canary uvicorn servers,
the router, and the controller driven tick by tick (the daemon runs the same `tick`).

The processes and the registry are module-scoped (starting them is most of the cost); each test
stages its own candidate against whatever @champion is then, and the `system` fixture puts the
system back in shape before every test (every process up, no rollout in flight, no @challenger,
the router at 100/0), so the tests pass in any order and after one another's failures. Each
test states the fault and the behaviour we require.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mlops_lab.canary.controller import Controller
from mlops_lab.canary.stage import record_expectation, stage
from mlops_lab.canary.state import Rollout, abort_path, load_state
from mlops_lab.data.generator import features_only, generate
from mlops_lab.labs.scenarios import FAST_CANARY
from mlops_lab.lifecycle.release import train_and_release
from mlops_lab.lifecycle.tracking import CHALLENGER, CHAMPION, client_for, version_by_alias
from mlops_lab.lifecycle.train import train
from mlops_lab.load.traffic import Traffic
from mlops_lab.runtime.supervisor import Supervisor, mlflow_spec, router_spec, server_spec
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

from ..conftest import TRAIN_ROWS, make_settings


@dataclass
class System:
    s: Settings
    sup: Supervisor

    @property
    def router(self) -> str:
        return f"http://{self.s.host}:{self.s.router_port}"

    def champion(self) -> str:
        mv = version_by_alias(client_for(self.s), self.s.model_name, CHAMPION)
        assert mv is not None
        return str(mv.version)

    def weights(self) -> dict[str, object]:
        auth = {"authorization": f"Bearer {self.s.admin_token.get_secret_value()}"}
        return httpx.get(f"{self.router}/admin/state", headers=auth, timeout=5).json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    home = tmp_path_factory.mktemp("canary")
    s = make_settings(home, **FAST_CANARY)  # the lab 5 scenarios' rollout in seconds
    s = s.model_copy(update={"tracking_uri": s.mlflow_server_uri})
    sup = Supervisor(s)
    sup.start(mlflow_spec(s))
    data = generate("baseline", TRAIN_ROWS, seed=1)
    rel = train_and_release(s, data, promote=True, actor="tests", reason="v1")
    assert rel.promoted
    sup.start_all([server_spec(s, "stable"), server_spec(s, "canary"), router_spec(s)])
    try:
        # Alive is not ready: the stable server loads @champion in the background.
        deadline = time.monotonic() + 60
        while httpx.get(f"http://{s.host}:{s.router_port}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the stable server never became ready"
            time.sleep(0.2)
        yield System(s, sup)
    finally:
        sup.stop_all()


@pytest.fixture
def system(running: System) -> System:
    """The running system as a fresh test needs it, whatever the tests before it did or broke:
    MLflow and every server up (a test may kill one), no rollout in flight or asked to abort,
    no @challenger, and the router sending everything to stable."""
    s, sup = running.s, running.sup
    if not sup.is_running("mlflow"):
        sup.start(mlflow_spec(s))
    servers = (server_spec(s, "stable"), server_spec(s, "canary"), router_spec(s))
    sup.start_all([spec for spec in servers if not sup.is_running(spec.name)])
    s.canary_state_path.unlink(missing_ok=True)
    abort_path(s).unlink(missing_ok=True)
    client = client_for(s)
    if version_by_alias(client, s.model_name, CHALLENGER) is not None:
        client.delete_registered_model_alias(s.model_name, CHALLENGER)
    auth = {"authorization": f"Bearer {s.admin_token.get_secret_value()}"}
    body = {"canary_weight": 0, "shadow": False, "actor": "tests", "reason": "reset between tests"}
    httpx.post(f"{running.router}/admin/weights", json=body, headers=auth, timeout=5).raise_for_status()
    return running


def candidate(system: System, *, scenario: str = "baseline", seed: int, cents: bool = False) -> str:
    """Train a version and stage it with its expectation. With cents=True the candidate's whole
    offline world (training data and the rows its expectation is measured on) has amounts in
    cents, while serving sends dollars: a training/serving skew no offline check can see."""
    data = generate(scenario, 8_000, seed=seed)
    recent = features_only(generate(scenario, 2_000, seed=seed + 100))
    offline = recent
    if cents:
        data, offline = data.assign(amount=data["amount"] * 100), recent.assign(amount=recent["amount"] * 100)
    version = train(system.s, data).version
    record_expectation(system.s, version, recent, offline)
    stage(system.s, version, actor="tests", reason="test candidate")
    return version


def roll(system: System, traffic: Traffic | None, timeout_s: float = 90, during=None) -> Rollout:  # type: ignore[no-untyped-def]
    """Tick a controller until the rollout finishes; `during(controller, rollout)` runs each tick."""
    controller = Controller(system.s)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            r = controller.tick()
            if during is not None and r is not None:
                during(controller, r)
            if r is not None and not r.active:
                return r
            # The invariant: never more than the last step's share to a non-champion.
            assert system.weights()["canary_weight"] <= max(system.s.canary_steps)
            time.sleep(0.3)
        raise AssertionError(f"rollout did not finish: {load_state(system.s).rollout}")
    finally:
        controller.close()
        if traffic is not None:
            traffic.stop()


def traffic_to(system: System, rate: float = 120) -> Traffic:
    return Traffic(system.router, rate, concurrency=8).start()


def audit_actions(system: System) -> list[str]:
    store = Store(system.s.resolved_store_url)
    try:
        return [e["action"] for e in store.audit_log() if e["action"].startswith("canary.")]
    finally:
        store.dispose()


def test_good_retrain_is_shadowed_stepped_and_promoted(system: System) -> None:
    before = system.champion()
    version = candidate(system, seed=11)
    traffic = traffic_to(system)
    r = roll(system, traffic)
    assert r.phase == "promoted", r.reason
    assert system.champion() == version != before
    assert version_by_alias(client_for(system.s), system.s.model_name, CHALLENGER) is None
    served = httpx.get(f"http://{system.s.host}:{system.s.stable_port}/v1/model", timeout=5).json()
    assert served["version"] == version
    state = system.weights()
    assert state["canary_weight"] == 0 and state["shadow"] is False
    assert {"canary.warming", "canary.shadow", "canary.step", "canary.promoting", "canary.promoted"} <= set(
        audit_actions(system)
    )
    errors = Counter((a.status, a.variant) for a in traffic.answers if a.status != 200)
    when = [round(a.t, 1) for a in traffic.answers if a.status != 200]
    assert not errors, (
        f"clients saw errors during a clean rollout: {dict(errors)} at t={when[:1]}..{when[-1:]}"
    )
    assert {a.variant for a in traffic.answers} == {"stable", "canary"}


def test_a_restarted_controller_resumes_the_rollout_where_it_was(system: System) -> None:
    version = candidate(system, seed=16)
    traffic = traffic_to(system)
    first = Controller(system.s)
    try:
        deadline = time.monotonic() + 60
        r = first.tick()
        while (r is None or r.phase != "step") and time.monotonic() < deadline:
            time.sleep(0.3)
            r = first.tick()
        assert r is not None and r.phase == "step", r
        looks_before, rollout_id = len(r.looks), r.rollout_id
    finally:
        first.close()  # the controller process dies here; its state file stays
    resumed = roll(system, traffic)
    assert resumed.rollout_id == rollout_id, "a restart must continue the rollout, not start another"
    assert len(resumed.looks) > looks_before and resumed.phase == "promoted", resumed.reason
    assert system.champion() == version


def test_skewed_candidate_passes_offline_and_is_rolled_back_online(system: System) -> None:
    before = system.champion()
    version = candidate(system, seed=12, cents=True)
    r = roll(system, traffic_to(system))
    assert r.phase == "rolled_back", r.reason
    assert "judge" in r.reason and "score" in r.reason
    assert system.champion() == before
    assert system.weights()["canary_weight"] == 0
    tags = client_for(system.s).get_model_version(system.s.model_name, version).tags
    assert tags["canary"].startswith("rolled_back")


def test_no_traffic_is_inconclusive_and_never_promotes(system: System) -> None:
    before = system.champion()
    candidate(system, seed=13)
    r = roll(system, None)
    assert r.phase == "rolled_back"
    assert "inconclusive" in r.reason
    assert {look["verdict"] for look in r.looks} == {"INCONCLUSIVE"}
    assert system.champion() == before


def test_registry_down_at_promotion_retries_and_ends_consistent(system: System) -> None:
    version = candidate(system, seed=14)
    traffic = traffic_to(system)
    seen: dict[str, object] = {}

    def during(controller: Controller, r: Rollout) -> None:
        if r.phase == "promoting" and "down" not in seen:
            system.sup.stop("mlflow")
            seen["down"] = time.monotonic()
        elif "down" in seen and "up" not in seen and r.last_error:
            seen["error"] = r.last_error
            # While the registry is down: still the last step, never 100% to the candidate.
            assert system.weights()["canary_weight"] == max(system.s.canary_steps)
            system.sup.start(mlflow_spec(system.s))
            seen["up"] = True

    r = roll(system, traffic, during=during)
    assert "error" in seen, "the controller never hit the registry outage"
    assert r.phase == "promoted", r.reason
    assert system.champion() == version
    assert system.weights()["canary_weight"] == 0


def test_canary_killed_mid_rollout_falls_back_and_rolls_back(system: System, tmp_path: Path) -> None:
    before = system.champion()
    candidate(system, seed=15)
    traffic = traffic_to(system)
    killed: dict[str, float] = {}

    def during(controller: Controller, r: Rollout) -> None:
        if r.phase == "step" and "at" not in killed:
            system.sup.stop("canary", grace_s=0.0)  # SIGTERM, then SIGKILL at once
            killed["at"] = traffic.now()

    r = roll(system, traffic, during=during)
    assert r.phase == "rolled_back", r.reason
    assert system.champion() == before
    after = traffic.since(killed["at"])
    failed = [a for a in after if a.status != 200]
    print(f"client-visible failures after the canary was killed: {len(failed)} of {len(after)}")
    assert len(failed) <= 8, "more failures than requests in flight (concurrency 8)"
    system.sup.start(server_spec(system.s, "canary"))
