"""The reference story, played locally end to end in five acts.

    mlops-lab demo                  # what `make demo` runs (about 5 minutes on 2 cores)
    mlops-lab demo --profile short  # the end-to-end test's faster profile

  1. v1 is trained and promoted; `up` starts MLflow, the stable and canary servers, the router,
     the drift monitor, the canary controller (and Prometheus when installed); a load test
     checks the SLO through the router, batch inference scores a file, and steady production
     traffic starts (with delayed labels arriving behind it).
  2. A feature the model ignores drifts (irrelevant_drift): the monitor sees device_os move and
     does not retrain. (This act runs before the real drift: after a retrain on drifted data
     the champion's reference is a mixture, against which no traffic is "only" irrelevant.)
  3. Traffic drifts (covariate_shift); the monitor sees it on features that matter for K
     windows and triggers the Airflow retraining DAG; v2 is registered with lineage and staged
     as @challenger.
  4. The controller shadows, then steps v2 up (e.g. 5/25/50%); the judge passes it; v2 becomes
     @champion, stable reloads it, the router returns to 100/0.
  5. A candidate trained on a warehouse export with amounts in cents passes the offline gate,
     is staged, and fails online (training/serving skew); the controller rolls it back.

State lives in home/demo (wiped at the start, so every run tells the same story); the report
goes to home/reports/demo-<time>/index.html. The demo stops every process it started and
exits non-zero if any act did not play out.
"""

from __future__ import annotations

import shutil
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from mlops_lab.canary.stage import record_expectation, stage
from mlops_lab.canary.state import load_state
from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.io import write_frame
from mlops_lab.data.labels import deliver_arrived
from mlops_lab.data.schema import SCHEMA
from mlops_lab.errors import InvalidValue, UserError
from mlops_lab.labs.impl import REFERENCE, Choice, choose
from mlops_lab.lifecycle.registry import history
from mlops_lab.lifecycle.release import gate_version, train_and_release
from mlops_lab.lifecycle.tracking import CHALLENGER, CHAMPION, client_for, version_by_alias
from mlops_lab.load.traffic import Traffic, summarize
from mlops_lab.runtime.supervisor import Supervisor, mlflow_spec, system_specs
from mlops_lab.serving.batch import batch_predict
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store
from mlops_lab.story import plots
from mlops_lab.story.report import Report


@dataclass(frozen=True)
class Profile:
    train_rows: int
    load_users: int
    load_duration: str
    batch_rows: int
    traffic_rps: float
    irrelevant_windows: int  # act 5 watches this many full windows of irrelevant drift
    settings: dict[str, Any]  # compressed intervals for this profile


_COMMON: dict[str, Any] = {
    "label_delay_s": 2.0,
    "reload_poll_s": 1.0,
    # 1,000-row windows: half the sampling noise of 500-row windows, so the per-column flags
    # the timeline shows are nearly all real (at 500 rows, noise flags a heavy-tailed column such
    # as distance_from_home_km in about one baseline window in ten: make bench, drift.md).
    "monitor_window_rows": 1_000,
    "monitor_min_samples": 1_000,
    "monitor_interval_s": 1.0,
    "monitor_cooldown_s": 600.0,  # one retraining per story; act 5 is judged by the policy's reasons
    "canary_look_s": 2.0,
    "canary_poll_s": 1.0,
    "canary_max_wait_s": 40.0,
}

PROFILES = {
    "full": Profile(
        train_rows=60_000,
        load_users=8,
        load_duration="20s",
        batch_rows=200_000,
        traffic_rps=150,
        irrelevant_windows=5,
        settings=_COMMON
        | {
            "monitor_consecutive_windows": 3,
            "canary_shadow_s": 10.0,
            "canary_steps": (5, 25, 50),
            "canary_step_s": 8.0,
            "canary_min_samples": 150,
            "canary_planned_samples": 1_500,
        },
    ),
    "short": Profile(
        train_rows=20_000,
        load_users=4,
        load_duration="6s",
        batch_rows=20_000,
        traffic_rps=120,
        irrelevant_windows=3,
        settings=_COMMON
        | {
            "monitor_consecutive_windows": 3,
            "canary_shadow_s": 5.0,
            "canary_steps": (25, 50),
            "canary_step_s": 4.0,
            "canary_look_s": 1.0,
            "canary_min_samples": 100,
            "canary_planned_samples": 800,
        },
    ),
}


class StoryFailed(UserError):
    """A step of the story did not play out; the message says which and why."""


class Timeline:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.start = time.monotonic()
        self.events: list[tuple[float, str, str]] = []

    def now(self) -> float:
        return time.monotonic() - self.start

    def step(self, what: str, detail: str = "", ok: bool = True) -> None:
        t = self.now()
        self.events.append((t, what, detail))
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self.console.print(f"[dim]{t:6.1f}s[/] {mark} [bold]{what}[/] {detail}", highlight=False)

    def act(self, title: str) -> None:
        self.events.append((self.now(), f"== {title}", ""))
        self.console.rule(f"[bold]{title}")


class Sampler:
    """Polls the router's weights and the monitor's windows in the background, for the plots."""

    def __init__(self, s: Settings, tl: Timeline) -> None:
        token = s.admin_token.get_secret_value()
        self.http = httpx.Client(timeout=3, headers={"authorization": f"Bearer {token}"})
        self.router = f"http://{s.host}:{s.router_port}/admin/state"
        self.monitor = f"http://{s.host}:{s.monitor_port}/v1/status"
        self.tl = tl
        self.weights: list[tuple[float, int, bool]] = []
        self.windows: dict[int, dict[str, Any]] = {}  # window number -> summary (+ "t")
        self.monitor_status: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.http.close()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                w = self.http.get(self.router).json()
                self.weights.append((self.tl.now(), int(w["canary_weight"]), bool(w["shadow"])))
                status = self.http.get(self.monitor).json()
                self.monitor_status = status
                for window in status.get("recent_windows", []):
                    self.windows.setdefault(int(window["window"]), {**window, "t": self.tl.now()})
            except (httpx.HTTPError, ValueError, KeyError):
                continue

    def new_windows(self, after: int) -> list[dict[str, Any]]:
        return [self.windows[n] for n in sorted(self.windows) if n > after]

    def windows_since(self, since: datetime) -> list[dict[str, Any]]:
        """Windows whose every row was served after `since` (the monitor may still be working
        through rows from before a traffic switch)."""
        return [w for n, w in sorted(self.windows.items()) if _utc(w["first_ts"]) >= since]

    @property
    def last_window(self) -> int:
        return max(self.windows, default=0)


def run_demo(
    settings: Settings, profile: str = "full", console: Console | None = None, choice: Choice | None = None
) -> Path:
    """Play the story; `choice` says whose code plays each exercise (default: the reference)."""
    if profile not in PROFILES:
        raise InvalidValue(f"unknown profile {profile!r}; choose {', '.join(PROFILES)}")
    p = PROFILES[profile]
    console = console or Console()
    reports = settings.home / "reports"
    demo_home = settings.home / "demo"
    if demo_home.exists():
        Supervisor(settings.model_copy(update={"home": demo_home})).stop_all()
        shutil.rmtree(demo_home)
    s = settings.model_copy(update={"home": demo_home, "tracking_uri": None, "store_url": None, **p.settings})
    s.ensure_dirs()
    out = reports / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    tl = Timeline(console)
    sup = Supervisor(s)
    report = Report(f"mlops-lab demo ({profile} profile)")
    choice = choice or choose(REFERENCE, settings.home)
    show_choice(console, report, choice)
    failure: StoryFailed | None = None
    outcome = f"did not finish: see the timeline and the logs in {s.home / 'logs'}"
    story = Story(s, p, sup, tl, report, out, choice)
    try:
        story.play()
        outcome = "played out: every act below passed its checks"
    except StoryFailed as exc:
        failure = exc
        outcome = f"did not play out: {exc}"
        tl.step("story did not play out", str(exc), ok=False)
    finally:
        story.stop_background()
        stopped = sup.stop_all()
        tl.step("stopped every process the demo started", ", ".join(stopped))
        story.write_report()
        report.text("Outcome", f"The story {outcome}.", first=True)
        report.table("Timeline", [(f"{t:.1f}s", w, d) for t, w, d in tl.events], ["time", "step", "detail"])
        index = report.write(out)
    console.print(f"\nreport: [bold]{index}[/]")
    if failure is not None:
        raise failure
    return index


# Exercises whose code the local story never calls, and where the learner's code does run.
NOT_IN_STORY = {
    "mlops_lab.pipeline.k8s_job": "the cluster's retraining Job (make scenario S=lab3/gpu-unavailable)",
    "mlops_lab.store.topk": "mlops-lab store top-risk --impl exercises",
    "mlops_lab.serving.merge": "mlops-lab batch-predict --input <shards folder> --impl exercises",
    "mlops_lab.data.features": "mlops-lab data features --impl exercises",
    "mlops_lab.monitoring.stats": "make scenario S=lab4/alert-storm IMPL=exercises",
    "mlops_lab.monitoring.alerts": "make scenario S=lab4/monitor-killed IMPL=exercises",
    "mlops_lab.monitoring.panels": "make scenario S=lab4/high-cardinality IMPL=exercises",
}


def show_choice(console: Console, report: Report, choice: Choice) -> None:
    """Say whose code plays each exercise: on the console before the story, first in the report."""
    rows = choice.rows()
    yours = [r for r in rows if r[2] == "yours"]
    if choice.impl == REFERENCE:
        console.print(
            "[dim]every part is the reference's (make demo IMPL=exercises plays your solved ones)[/]"
        )
    else:
        console.rule("[bold]Whose code runs")
        for exercise, file, whose in rows:
            mark = "[green]yours[/]    " if whose == "yours" else "[dim]reference[/]"
            console.print(f"  {mark} {exercise:<28} {file}", highlight=False)
        if len(yours) < len(rows):
            console.print(
                f"  {len(yours)}/{len(rows)} exercises are yours: the others run the reference until "
                "their make lab-N passes (STRICT=1 refuses to start instead)",
                highlight=False,
            )
    # Honest about the solved exercises the story never calls, and where they do run.
    mirrors = {e.file: e.mirrors for e in choice.exercises}
    elsewhere = [(e, f) for e, f, w in yours if mirrors.get(f) in NOT_IN_STORY]
    for exercise, file in elsewhere:
        console.print(
            f"  [dim]{exercise}: not in the story; {NOT_IN_STORY[mirrors[file]]}[/]", highlight=False
        )
    rows = [(e, f, "yours (not in the story)" if (e, f) in elsewhere else w) for e, f, w in rows]
    report.table("Whose code ran", rows, ["exercise", "file", "code"], first=True)


class Story:
    def __init__(
        self,
        s: Settings,
        p: Profile,
        sup: Supervisor,
        tl: Timeline,
        report: Report,
        out: Path,
        choice: Choice,
    ) -> None:
        self.s, self.p, self.sup, self.tl, self.report, self.out = s, p, sup, tl, report, out
        self.choice = choice
        self.router = f"http://{s.host}:{s.router_port}"
        self.traffic: Traffic | None = None
        self.sampler: Sampler | None = None
        self.labels_stop = threading.Event()
        self.labels_thread: threading.Thread | None = None
        self.switches: list[tuple[float, str]] = []  # (timeline time, scenario), for the drift plot
        self.rollouts: dict[str, dict[str, Any]] = {}  # version -> what happened, for the plots
        self.store: Store | None = None

    # ------------------------------------------------------------------ the acts
    def play(self) -> None:
        for act in (
            self.act1_serve,
            self.act2_irrelevant_drift,
            self.act3_drift_retrain,
            self.act4_canary_promote,
            self.act5_bad_candidate,
        ):
            try:
                act()
            except StoryFailed:
                raise
            except Exception as exc:
                if not self.choice.learner:
                    raise  # the reference alone: a bug, with its traceback
                # The learner's code ran: a mistake the graders missed is a failed act, not a crash.
                trace = self.out / "traceback.txt"
                self.out.mkdir(parents=True, exist_ok=True)
                trace.write_text(traceback.format_exc())
                name = act.__name__.removeprefix("act").replace("_", " ", 1)
                raise StoryFailed(
                    f"act {name} raised {type(exc).__name__}: {exc} (your code ran for "
                    f"{', '.join(sorted(self.choice.learner))}; traceback in {trace})"
                ) from exc

    def act1_serve(self) -> None:
        s, p, tl = self.s, self.p, self.tl
        tl.act("Act 1: train, promote, serve")
        data = generate("baseline", p.train_rows, seed=s.seed)
        write_frame(data, s.home / "data" / "train.parquet")
        tl.step(
            "generated training data",
            f"{len(data):,} baseline transactions, fraud {data['is_fraud'].mean():.2%}",
        )
        self.sup.start(mlflow_spec(s))
        tl.step("MLflow server up", s.mlflow_server_uri)
        lab2 = self.lifecycle_parts()
        rel = train_and_release(s, data, promote=True, actor="demo", reason="demo: first model", **lab2)
        m = rel.trained.metrics
        tl.step(f"trained v{rel.trained.version}", f"PR-AUC {m['pr_auc']:.3f}, recall {m['recall']:.3f}")
        if not rel.promoted:
            raise StoryFailed(f"v{rel.trained.version} was not promoted: {rel.verdict.summary()}")
        tl.step(f"@champion -> v{rel.trained.version}", f"gate {rel.verdict.summary()}")
        self.report.table(
            "v1", [("run id", rel.trained.run_id), ("threshold", rel.trained.threshold), *m.items()]
        )
        self.report.table("v1 evaluation gate", [(c.name, c.passed, c.detail) for c in rel.verdict.checks])

        learner = sorted(self.choice.learner)
        specs = system_specs(s, impl=self.choice.impl, learner=learner)[1:]  # MLflow is up
        self.sup.start_all(specs)
        tl.step("`mlops-lab up`", ", ".join(spec.name for spec in specs) + " healthy")
        _wait(lambda: _get(f"{self.router}/readyz") == 200, 60, "router not ready (stable not serving v1)")
        self.store = Store(s.resolved_store_url)

        run_load = self.choice.resolve("mlops_lab.load.slo").run_load  # lab 1's judgement of the SLO
        load = run_load(s, self.router, self.out / "load", users=p.load_users, duration=p.load_duration)
        tl.step(
            "load test through the router",
            f"{load.requests:,} requests, {load.rps:.0f} req/s, p50 {load.p50_ms:.1f} ms, "
            f"p99 {load.p99_ms:.1f} ms, "
            f"errors {load.error_rate:.2%} -> SLO {'met' if load.slo_met else 'MISSED'}",
        )
        self.report.table("Load test and SLO (through the router)", list(load.as_dict().items()))
        self.report.data["load"] = load.as_dict()
        if not load.slo_met:
            raise StoryFailed(f"SLO missed: p99 {load.p99_ms} ms, error rate {load.error_rate:.3%}")
        acknowledged = load.requests - load.failures
        stored = _wait_for_rows(self.store, acknowledged)
        tl.step("every acknowledged prediction is in the store", f"{stored:,} rows >= {acknowledged:,} 200s")

        batch_in = s.home / "data" / "batch.parquet"
        write_frame(generate("baseline", p.batch_rows, seed=s.seed + 1), batch_in)
        t0 = time.monotonic()
        res = batch_predict(
            s,
            f"models:/{s.model_name}@champion",
            batch_in,
            s.home / "data" / "scored.parquet",
            score_file_fn=self.choice.resolve("mlops_lab.serving.batch").score_file,
        )
        dt = time.monotonic() - t0
        tl.step("batch inference", f"{res.rows:,} rows in {dt:.1f}s ({res.rows / dt:,.0f} rows/s)")
        self.report.data["batch"] = {"rows": res.rows, "seconds": dt}

        self.traffic = Traffic(self.router, p.traffic_rps, concurrency=16, seed=s.seed + 7).start()
        self.sampler = Sampler(s, tl).start()
        self.labels_thread = threading.Thread(target=self._deliver_labels, name="labels", daemon=True)
        self.labels_thread.start()
        tl.step(
            "production traffic", f"{p.traffic_rps:.0f} req/s of baseline transactions through the router"
        )

    def act2_irrelevant_drift(self) -> None:
        tl = self.tl
        tl.act("Act 2: drift in a feature the model ignores")
        assert self.sampler is not None
        switched = self._switch("irrelevant_drift")

        def enough() -> bool:
            assert self.sampler is not None
            return len(self.sampler.windows_since(switched)) >= self.p.irrelevant_windows

        _wait(enough, 240, "the monitor closed too few windows of irrelevant drift")
        windows = self.sampler.windows_since(switched)
        for w in windows:
            tl.step(f"window {w['window']}", _window_line(w))
        if self.sampler.monitor_status.get("last_trigger"):
            raise StoryFailed("irrelevant drift triggered retraining")
        if not any("device_os" in (w.get("drifted_columns") or []) for w in windows):
            raise StoryFailed("the monitor never saw the device_os drift")
        tl.step("no retraining", "drift only on features that carry little of the model's importance")

    def act3_drift_retrain(self) -> None:
        tl, s = self.tl, self.s
        tl.act("Act 3: drift that matters, detection, retraining")
        assert self.sampler is not None
        seen = self.sampler.last_window
        self._switch("covariate_shift")
        champion_before = self._alias(CHAMPION)

        def triggered() -> bool:
            nonlocal seen
            assert self.sampler is not None
            for w in self.sampler.new_windows(seen):
                tl.step(f"window {w['window']}", _window_line(w))
                seen = w["window"]
            return bool(self.sampler.monitor_status.get("last_trigger"))

        _wait(triggered, 120, "the monitor never triggered retraining on covariate drift")
        trig = self.sampler.monitor_status["last_trigger"]
        tl.step("retraining triggered", trig.get("reason", ""))
        _wait(lambda: self._alias(CHALLENGER) not in (None, champion_before), 400, self._pipeline_failure)
        version = self._alias(CHALLENGER)
        assert version is not None
        tags = client_for(s).get_model_version(s.model_name, version).tags or {}
        lineage = {
            k: tags.get(k) for k in ("trigger_reason", "parent_version", "dag_run_id", "data_fingerprint")
        }
        tl.step(
            f"Airflow DAG registered v{version} -> @challenger",
            ", ".join(f"{k}={v}" for k, v in lineage.items()),
        )
        self.report.table(
            f"v{version} lineage (tags on the version)", [*lineage.items(), ("gate", tags.get("gate"))]
        )
        self.report.data["retrain"] = {"version": version, "trigger": trig, **lineage}
        self.candidate = version

    def act4_canary_promote(self) -> None:
        tl = self.tl
        tl.act("Act 4: canary rollout of the retrained model")
        r = self._follow_rollout(self.candidate, 240)
        if r.phase != "promoted":
            raise StoryFailed(f"v{self.candidate} was not promoted: {r.reason}")
        served = httpx.get(f"http://{self.s.host}:{self.s.stable_port}/v1/model", timeout=5).json()["version"]
        weights = httpx.get(f"{self.router}/admin/state", headers=self._auth(), timeout=5).json()
        if (
            self._alias(CHAMPION) != self.candidate
            or served != self.candidate
            or weights["canary_weight"] != 0
        ):
            raise StoryFailed(
                f"after promotion: champion {self._alias(CHAMPION)}, stable serves {served}, {weights}"
            )
        tl.step(f"v{self.candidate} is @champion", f"stable serves v{served}; router back to 100/0")

    def act5_bad_candidate(self) -> None:
        tl, s = self.tl, self.s
        tl.act("Act 5: a candidate that passes offline and fails online")
        champion = self._alias(CHAMPION)
        # --8<-- [start:bad_candidate]
        # The warehouse export stores amounts in cents; serving sends dollars.
        export = generate("covariate_shift", self.p.train_rows // 2, seed=s.seed + 40)
        export = export.assign(amount=export["amount"] * 100)
        # The export job drops the few rows its schema refuses (amounts over the cap, in cents).
        cap = next(f.maximum for f in SCHEMA.features if f.name == "amount")
        export = export[export["amount"] <= (cap or float("inf"))]
        # --8<-- [end:bad_candidate]
        lab2 = self.lifecycle_parts()
        version = lab2["train_fn"](
            s, export, lineage={"trigger_reason": "demo: notebook retrain on the warehouse export"}
        ).version
        verdict, _ = gate_version(s, version, evaluate_fn=lab2["evaluate_fn"])
        tl.step(f"trained v{version} on the warehouse export", f"offline gate: {verdict.summary()}")
        if not verdict.passed:
            raise StoryFailed(f"the skewed candidate should pass the offline gate: {verdict.summary()}")
        assert self.store is not None
        recent = features_only(self.store.predictions_frame(variant="stable").tail(2_000))
        expectation = record_expectation(s, version, recent, recent.assign(amount=recent["amount"] * 100))
        tl.step("expectation recorded on the export's view of recent traffic", expectation.describe())
        stage(s, version, actor="demo", reason="demo: hand-trained candidate")
        r = self._follow_rollout(version, 180)
        if r.phase != "rolled_back":
            raise StoryFailed(f"the skewed v{version} was not rolled back: {r.phase} {r.reason}")
        if self._alias(CHAMPION) != champion:
            raise StoryFailed(f"@champion moved to {self._alias(CHAMPION)} during a failed canary")
        tl.step(f"v{version} rolled back", f"@champion stays v{champion}")
        self.report.data["bad_candidate"] = {"version": version, "reason": r.reason}

    # ------------------------------------------------------------------ helpers
    def lifecycle_parts(self) -> dict[str, Any]:
        """Lab 2's parts as this run's choice has them: training, the gate, promotion. (Act 3's
        retraining runs under Airflow in its own process; the monitor hands it the same choice.)"""
        return {
            "train_fn": self.choice.resolve("mlops_lab.lifecycle.train").train,
            "evaluate_fn": self.choice.resolve("mlops_lab.lifecycle.gate").evaluate,
            "promote_fn": self.choice.resolve("mlops_lab.lifecycle.registry").promote,
        }

    def _follow_rollout(self, version: str, timeout_s: float) -> Any:
        shown: set[tuple[str, int]] = set()
        started = self.tl.now()

        def finished() -> bool:
            r = load_state(self.s).rollout
            if r is None or r.candidate != version:
                return False
            key = (r.phase, r.weight)
            if key not in shown:
                shown.add(key)
                self.tl.step(f"canary {r.phase}", f"{r.weight}%{' + shadow' if r.shadow else ''}: {r.reason}")
            return not r.active

        _wait(finished, timeout_s, f"the rollout of v{version} did not finish")
        r = load_state(self.s).rollout
        self.rollouts[version] = {"rollout": r, "t0": started, "t1": self.tl.now()}
        return r

    def _switch(self, scenario: str) -> datetime:
        """Switch the traffic's scenario; returns when (UTC), to tell old windows from new."""
        assert self.traffic is not None
        self.traffic.switch(scenario)
        self.switches.append((self.tl.now(), scenario))
        self.tl.step(f"traffic -> {scenario}", "")
        return datetime.now(UTC)

    def _deliver_labels(self) -> None:
        store = Store(self.s.resolved_store_url)
        try:
            while not self.labels_stop.wait(1.0):
                deliver_arrived(store, self.s.label_delay_s)
        finally:
            store.dispose()

    def _alias(self, alias: str) -> str | None:
        mv = version_by_alias(client_for(self.s), self.s.model_name, alias)
        return str(mv.version) if mv is not None else None

    def _auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.s.admin_token.get_secret_value()}"}

    def _pipeline_failure(self) -> str:
        trig = (self.sampler.monitor_status if self.sampler else {}).get("last_trigger") or {}
        return f"no new @challenger from the retraining pipeline ({trig}); see {self.s.home / 'logs'}"

    def stop_background(self) -> None:
        self.labels_stop.set()
        if self.traffic is not None:
            self.traffic.stop()
        if self.sampler is not None:
            self.sampler.stop()
        if self.labels_thread is not None:
            self.labels_thread.join(timeout=5)

    def write_report(self) -> None:
        """Plots and tables from whatever the story got to (also after a failure)."""
        rep, store = self.report, self.store
        if self.traffic is not None and self.traffic.answers:
            per_variant = summarize(self.traffic.answers)
            rep.table(
                "Production traffic per variant (client side)",
                [
                    (v, int(r["requests"]), int(r["errors"]), r["p50_ms"], r["p99_ms"])
                    for v, r in per_variant.items()
                ],
                ["variant", "requests", "errors", "p50 ms", "p99 ms"],
            )
            rep.data["traffic"] = per_variant
            plots.latency_per_variant(rep, self.traffic.answers)
        if self.sampler is not None:
            plots.drift_windows(rep, list(self.sampler.windows.values()), self.switches)
            plots.router_weights(rep, self.sampler.weights)
            rep.data["windows"] = list(self.sampler.windows.values())
        if store is not None:
            plots.rollout_scores(rep, store, {v: x["rollout"] for v, x in self.rollouts.items()})
            audit = [
                (
                    str(e["ts"])[:19],
                    e["actor"],
                    e["action"],
                    e["details"].get("version"),
                    e["details"].get("reason"),
                )
                for e in store.audit_log()
            ]
            rep.table("Audit log", audit, ["time", "actor", "action", "version", "reason"])
            rep.data["champion_history"] = history(store, self.s.model_name)
            store.dispose()


def _utc(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)  # SQLite hands back naive UTC


def _window_line(w: dict[str, Any]) -> str:
    share = w.get("importance_share", 0.0) or 0.0
    drifted = ", ".join(w.get("drifted_columns") or []) or "none"
    return f"drifted: {drifted} ({share:.0%} of importance) -> {w.get('reason', '')}"


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def _wait(predicate: Callable[[], bool], timeout_s: float, failure: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise StoryFailed(failure() if callable(failure) else failure)


def _wait_for_rows(store: Store, at_least: int, timeout_s: float = 10) -> int:
    deadline = time.monotonic() + timeout_s
    n = store.count_predictions()
    while n < at_least and time.monotonic() < deadline:
        time.sleep(0.2)
        n = store.count_predictions()
    if n < at_least:
        raise StoryFailed(f"only {n} predictions stored for {at_least} acknowledged")
    return n
