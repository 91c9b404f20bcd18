"""The canary controller: a persisted state machine that rolls @challenger out or back.

    mlops-lab canary run                  # the daemon `mlops-lab up` starts (metrics on :8004)
    mlops-lab canary start --version 3    # stage a version and roll it out (foreground if no daemon)
    mlops-lab canary status
    mlops-lab canary abort --reason "pager says so"

    idle --(new @challenger)--> warming --(canary serves it)--> shadow --> step 5% --> 25% --> 50%
         --> promoting --> promoted
    any active phase --(judge FAIL, canary unhealthy, too little data too long, abort)-->
         rolling_back --> rolled_back

Each `tick` does one bounded piece of work and writes the state file (atomically) before
and after anything it changes outside, so a controller killed at any point resumes where it
was: every action is idempotent (set weights, move an alias, reload a server). The phases
themselves (`canary.rollout`, lab 5's `controller-tick`) act through this class as their
`World`; their order keeps one invariant: the router never sends more than the last step's
share to a version that is not @champion. Promotion moves @champion first, reloads stable, and
only then returns the router to 100/0; when MLflow is down it retries, leaving the router at
the last step. Rollback moves the router to 0% first (stop the harm), then clears @challenger.

Every transition goes to the audit log (actor "canary-controller") and to Prometheus.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge

from mlops_lab.canary.evidence import judge_frame
from mlops_lab.canary.judgement import JudgeConfig, Judgement
from mlops_lab.canary.state import (
    PHASES,
    Plan,
    Rollout,
    abort_path,
    controller_lock,
    load_state,
    save_state,
)
from mlops_lab.errors import UserError
from mlops_lab.lifecycle import registry
from mlops_lab.lifecycle.tracking import CHALLENGER, CHAMPION, client_for, version_by_alias
from mlops_lab.parts import Part
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

log = logging.getLogger("mlops_lab.canary")

ACTOR = "canary-controller"
# The lab 5 exercises run through a Part: one tick of the state machine, the verdict (both by the
# controller), and the expectation (recorded by canary.stage and the pipeline's evaluate step).
ROLLOUT, JUDGE = "mlops_lab.canary.rollout", "mlops_lab.canary.judge"
EXPECTATION = "mlops_lab.canary.expectation"
EXPECTATION_TAG = "canary_expectation"


class ControllerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.phase = Gauge("mlops_canary_phase", "1 for the rollout's current phase", ["phase"], registry=r)
        self.transitions = Counter(
            "mlops_canary_transitions_total",
            "Rollout transitions, by the phase entered",
            ["phase"],
            registry=r,
        )
        self.rollbacks = Counter("mlops_canary_rollbacks_total", "Canaries rolled back", registry=r)
        self.promotions = Counter(
            "mlops_canary_promotions_total", "Canaries promoted to @champion", registry=r
        )
        self.verdicts = Counter(
            "mlops_canary_verdicts_total", "Judge looks by verdict", ["verdict"], registry=r
        )
        self.candidate = Gauge(
            "mlops_canary_candidate_version", "Version being rolled out (0 when none)", registry=r
        )
        self.weight = Gauge("mlops_canary_weight", "Router canary weight the controller set (%)", registry=r)
        self.show("idle")

    def show(self, phase: str, candidate: str | None = None, weight: int = 0) -> None:
        for p in PHASES:
            self.phase.labels(p).set(1 if p == phase else 0)
        self.candidate.set(float(candidate) if candidate and candidate.isdigit() else 0)
        self.weight.set(weight)


class Services:
    """What the controller talks to over HTTP: the router's admin API and the model servers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        token = settings.admin_token.get_secret_value()
        self.http = httpx.Client(timeout=10.0, headers={"authorization": f"Bearer {token}"})
        self.router = settings.url_of("router", settings.router_port)

    def server(self, variant: str) -> str:
        return self.settings.url_of(variant, self.settings.port_of(variant))  # type: ignore[arg-type]

    def router_state(self) -> dict[str, Any]:
        resp = self.http.get(f"{self.router}/admin/state")
        resp.raise_for_status()
        state: dict[str, Any] = resp.json()
        return state

    def set_weights(self, weight: int, shadow: bool, reason: str) -> None:
        body = {"canary_weight": weight, "shadow": shadow, "actor": ACTOR, "reason": reason}
        self.http.post(f"{self.router}/admin/weights", json=body).raise_for_status()

    def served_version(self, variant: str) -> str | None:
        try:
            resp = self.http.get(f"{self.server(variant)}/v1/model")
        except httpx.HTTPError:
            return None
        return str(resp.json()["version"]) if resp.status_code == 200 else None

    def ready(self, variant: str) -> tuple[bool, str]:
        try:
            resp = self.http.get(f"{self.server(variant)}/readyz")
        except httpx.HTTPError as err:
            return False, f"{variant} server unreachable ({err.__class__.__name__})"
        return resp.status_code == 200, resp.text[:200]

    def reload(self, variant: str) -> None:
        with contextlib.suppress(httpx.HTTPError):  # a failed reload shows up as the wrong version
            self.http.post(f"{self.server(variant)}/admin/reload")

    def close(self) -> None:
        self.http.close()


def judge_config(settings: Settings) -> JudgeConfig:
    # The shadow phase and the split phases each get half the false-rollback budget.
    phases = 2 if settings.canary_shadow_s > 0 else 1
    return JudgeConfig(
        alpha=settings.canary_alpha / phases,
        planned_samples=settings.canary_planned_samples,
        min_samples=settings.canary_min_samples,
        score_tolerance_sd=settings.canary_score_tolerance_sd,
        decision_tolerance=settings.canary_decision_tolerance,
        error_tolerance=settings.slo_error_rate,
        latency_tolerance=settings.canary_latency_tolerance,
        latency_floor_ms=settings.canary_latency_floor_ms,
        slo_p99_ms=settings.slo_p99_ms,
    )


class Controller:
    def __init__(
        self,
        settings: Settings,
        *,
        services: Services | None = None,
        metrics: ControllerMetrics | None = None,
        clock: Callable[[], float] = time.time,
        on_transition: Callable[[Rollout], None] | None = None,
        part: Part = importlib.import_module,
    ) -> None:
        self.settings = settings
        self.part = part  # whose rollout tick and judge run (the reference's unless a learner's)
        self.plan = Plan.of(settings)
        self.services = services or Services(settings)
        self.metrics = metrics or ControllerMetrics()
        self.clock = clock
        self.on_transition = on_transition
        self.store = Store(settings.resolved_store_url)
        self.config = judge_config(settings)
        self.state = load_state(settings)
        r = self.state.rollout
        if r is not None:
            self.metrics.show(r.phase, r.candidate, r.weight)

    def close(self) -> None:
        self.store.dispose()
        self.services.close()

    # ------------------------------------------------------------------ the loop body
    def tick(self) -> Rollout | None:
        """One bounded step of work; returns the current (or last) rollout."""
        now = self.clock()
        r = self.state.rollout
        abort = self._take_abort()
        if abort is not None and r is not None and r.active and r.phase != "rolling_back":
            self.transition(r, "rolling_back", f"aborted: {abort}")
        if r is None or not r.active:
            r = self._maybe_start(now) or r
            if r is None or not r.active:
                return r
        try:
            self.part(ROLLOUT).advance(r, self, now, self.plan)
            r.last_error = None
        except NotImplementedError:  # a learner's unfinished exercise: say so, never retry it forever
            raise
        except Exception as exc:  # MLflow or the router down: keep the state, retry next tick
            r.last_error = f"{exc.__class__.__name__}: {str(exc)[:200]}"
            log.warning("canary %s: %s (will retry)", r.phase, r.last_error)
        self._save()
        return r

    def run(self, stop: threading.Event, until_done: bool = False) -> None:
        """Tick until `stop` is set (the daemon) or, with until_done, until the rollout finished."""
        poll = min(self.settings.canary_poll_s, self.settings.canary_look_s)
        while not stop.is_set():
            r = self.tick()
            if until_done and r is not None and not r.active:
                return
            stop.wait(poll)

    # ------------------------------------------------------------------ phases
    def _maybe_start(self, now: float) -> Rollout | None:
        client = client_for(self.settings)
        name = self.settings.model_name
        challenger = version_by_alias(client, name, CHALLENGER)
        champion = version_by_alias(client, name, CHAMPION)
        if challenger is None or champion is None:
            return None
        candidate, current = str(challenger.version), str(champion.version)
        if candidate == current or candidate in self.state.judged:
            return None
        r = Rollout(
            rollout_id=uuid.uuid4().hex[:12],
            candidate=candidate,
            champion=current,
            expectation=(challenger.tags or {}).get(EXPECTATION_TAG),
            started=now,
        )
        self.state.rollout = r
        self.transition(
            r, "warming", f"new @challenger v{candidate}; waiting for the canary server to load it"
        )
        self.services.reload("canary")
        return r

    # ------------------------------------------------------------------ the World a tick acts on
    def served_version(self, variant: str) -> str | None:
        return self.services.served_version(variant)

    def ready(self, variant: str) -> tuple[bool, str]:
        return self.services.ready(variant)

    def router_state(self) -> dict[str, Any]:
        return self.services.router_state()

    def reload(self, variant: str) -> None:
        self.services.reload(variant)

    def champion(self) -> str | None:
        mv = version_by_alias(client_for(self.settings), self.settings.model_name, CHAMPION)
        return None if mv is None else str(mv.version)

    def promote(self, r: Rollout) -> None:
        registry.promote(
            client_for(self.settings),
            self.store,
            self.settings.model_name,
            r.candidate,
            actor=ACTOR,
            reason=f"canary {r.rollout_id} passed",
        )

    # ------------------------------------------------------------------ helpers
    def route(self, r: Rollout, weight: int, shadow: bool, reason: str) -> None:
        self.services.set_weights(weight, shadow, reason)
        r.weight, r.shadow = weight, shadow
        self.metrics.show(r.phase, r.candidate, weight)
        self._save()

    def start_judging(self, r: Rollout, now: float) -> None:
        router = self.services.router_state()
        r.judged_since = datetime.fromtimestamp(now, UTC).isoformat()
        r.counts_base = router["counts"]
        r.counts_acc = {}
        r.router_started = float(router["started"])
        r.last_look = now  # the first look waits one look interval for data

    def clear_challenger(self, r: Rollout, outcome: str) -> None:
        client = client_for(self.settings)
        name = self.settings.model_name
        current = version_by_alias(client, name, CHALLENGER)
        if current is not None and str(current.version) == r.candidate:
            client.delete_registered_model_alias(name, CHALLENGER)
            self.store.audit(
                ACTOR, "unstage", model=name, alias=CHALLENGER, version=r.candidate, reason=outcome
            )
        client.set_model_version_tag(name, r.candidate, "canary", f"{outcome} ({r.rollout_id})")

    def finish(self, r: Rollout, phase: str, reason: str) -> None:
        self.state.judged[r.candidate] = phase
        (self.metrics.promotions if phase == "promoted" else self.metrics.rollbacks).inc()
        r.finished = self.clock()
        self.transition(r, phase, reason)

    def transition(self, r: Rollout, phase: str, reason: str) -> None:
        r.phase, r.reason = phase, reason
        r.phase_started = self.clock()
        r.last_verdict = None
        self._save()  # the state first: a crash right after replays the idempotent action
        self.store.audit(
            ACTOR,
            f"canary.{phase}",
            rollout=r.rollout_id,
            version=r.candidate,
            champion=r.champion,
            weight=r.weight,
            shadow=r.shadow,
            reason=reason,
        )
        self.metrics.transitions.labels(phase).inc()
        self.metrics.show(phase, r.candidate if r.active else None, r.weight)
        log.info("canary %s", r.describe())
        if self.on_transition:
            self.on_transition(r)

    def _save(self) -> None:
        save_state(self.settings, self.state)

    def _take_abort(self) -> str | None:
        path = abort_path(self.settings)
        try:
            reason = str(json.loads(path.read_text())["reason"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError):
            reason = "aborted by operator (unreadable abort request)"
        path.unlink(missing_ok=True)
        return reason

    def _counts(self, r: Rollout, router: dict[str, Any]) -> dict[str, dict[str, int]]:
        """Router requests/errors per variant since judging started, across router restarts."""
        now_counts: dict[str, dict[str, int]] = router["counts"]
        if float(router["started"]) != r.router_started:  # the router restarted: bank what we saw
            for v, c in r.counts_base.items():
                acc = r.counts_acc.setdefault(v, {"requests": 0, "errors": 0})
                for k in acc:
                    acc[k] += max(0, c.get(k, 0))
            r.counts_base = {v: {"requests": 0, "errors": 0} for v in now_counts}
            r.router_started = float(router["started"])
        out = {}
        for v, c in now_counts.items():
            base = r.counts_base.get(v, {})
            acc = r.counts_acc.get(v, {})
            out[v] = {k: c[k] - base.get(k, 0) + acc.get(k, 0) for k in ("requests", "errors")}
        return out

    def look(self, r: Rollout, router: dict[str, Any], now: float) -> Judgement:
        frame = self.store.scores_frame(datetime.fromisoformat(r.judged_since))
        counts = self._counts(r, router)
        verdict = judge_frame(
            frame, r, counts, self.config, shadow=r.phase == "shadow", decide=self.part(JUDGE).judge
        )
        mode = "paired" if verdict.paired else "split"
        r.fraction[mode] = verdict.fraction
        r.last_look, r.last_verdict = now, verdict.verdict
        r.looks.append(
            {
                "t": round(now, 3),
                "phase": r.phase,
                "weight": r.weight,
                "verdict": verdict.verdict,
                "samples": verdict.canary_samples,
                "alpha": verdict.alpha_spent,
                "reason": verdict.reason[:400],
            }
        )
        self.metrics.verdicts.labels(verdict.verdict).inc()
        log.info("canary look (%s, %s%%): %s", r.phase, r.weight, verdict.summary())
        return verdict


def run_daemon(settings: Settings, stop: threading.Event, part: Part = importlib.import_module) -> None:
    """`mlops-lab canary run`: metrics on controller_port, then tick until `stop` is set."""
    from prometheus_client import start_http_server

    with controller_lock(settings) as mine:
        if not mine:
            raise UserError(
                f"another canary controller holds {settings.canary_state_path.parent}/controller.lock"
            )
        controller = Controller(settings, part=part)
        server, thread = start_http_server(
            settings.controller_port, settings.host, registry=controller.metrics.registry
        )
        try:
            controller.run(stop)
        finally:
            server.shutdown()
            thread.join(timeout=5)
            controller.close()
