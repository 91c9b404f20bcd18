"""The drift monitor: windows of production traffic against the champion's training reference.

    mlops-lab monitor                              # :8003, one uvicorn worker
    curl -s 127.0.0.1:8003/v1/status | python -m json.tool
    curl -s 127.0.0.1:8003/metrics | grep ^mlops_drift

`Monitor.tick` takes the next full window of `monitor_window_rows` stable-variant predictions
after a persisted cursor (the last prediction id consumed, so windows never overlap and a
partial window waits), evaluates it (monitoring.window) against the current @champion's
reference, writes Evidently's HTML report, applies the trigger policy, and exports gauges.

Order of effects when a window triggers retraining, and why:
  1. the state file (cursor + the policy's count and last trigger time) is replaced atomically;
  2. the trigger is written to the audit log (`monitor.trigger`, with the reason);
  3. the trigger runs in a background thread (windows keep being evaluated meanwhile); its
     outcome goes to /v1/status, `mlops_retrain_runs_total{result}` and the audit log.
A restart therefore never triggers twice for the same drift (the cooldown survives it); a crash
between 1 and 3 loses that one trigger, and the persisting drift triggers again after the
cooldown: at most once, never twice.

Other rules: the reference is reloaded when @champion moves, and the consecutive count restarts
(the drift was measured against another reference). A monitor more than `max_lag_windows`
full windows behind skips the oldest whole windows (counted in mlops_monitor_skipped_rows_total):
it reports on recent traffic instead of falling ever further behind. Only the newest
`keep_reports` HTML reports are kept (about 4 MB each). Realized precision/recall
are computed over the trailing `realized_rows` consumed predictions whose labels have arrived,
because labels come late and one window holds too few flagged rows to mean anything.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import re
import threading
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mlops_lab.lifecycle.tracking import CHAMPION, client_for, version_by_alias
from mlops_lab.monitoring.metrics import MonitorMetrics
from mlops_lab.monitoring.policy import TriggerPolicy
from mlops_lab.monitoring.state import MonitorState, WindowReport, append_jsonl, tail_jsonl
from mlops_lab.monitoring.window import Reference, evaluate_window, load_reference, realized_of
from mlops_lab.parts import Part
from mlops_lab.pipeline.trigger import RetrainAlreadyRunning, Trigger, default_trigger
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store, utcnow

log = logging.getLogger("mlops_lab.monitor")

ACTOR = "monitor"
VARIANT = "stable"  # the monitor watches what the champion serves; the canary is the judge's job
POLICY = "mlops_lab.monitoring.policy"
REPORT_NAME = re.compile(r"^window-(\d+)\.html$")


class Monitor:
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        trigger: Trigger | None = None,
        policy: TriggerPolicy | None = None,
        max_lag_windows: int = 3,
        keep_reports: int = 20,  # Evidently's HTML is ~4 MB a window (its JS inlined)
        realized_rows: int | None = None,
        history: int = 20,
        part: Part = importlib.import_module,
    ) -> None:
        if max_lag_windows < 1 or keep_reports < 1:
            raise ValueError("max_lag_windows and keep_reports must be at least 1")
        self.settings = settings
        self.store = store or Store(settings.resolved_store_url)
        self.trigger = trigger or default_trigger(settings)
        # `part` says whose trigger policy and performance code run (the learner's with
        # `mlops-lab monitor --impl exercises`); the state file is the same either way.
        self.part = part
        self.policy = policy or part(POLICY).TriggerPolicy.from_settings(settings)
        self.max_lag_windows = max_lag_windows
        self.keep_reports = keep_reports
        self.realized_rows = realized_rows or 10 * settings.monitor_window_rows
        self.metrics = MonitorMetrics()
        self.metrics.window_rows.set(settings.monitor_window_rows)
        self.dir = settings.home / "monitor"
        self.reports_dir = self.dir / "reports"
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        self.state = MonitorState.load(settings.monitor_state_path)
        if self.state.last_window_ts is not None:
            self.metrics.last_window_ts.set(self.state.last_window_ts)
        self.recent: deque[dict[str, Any]] = deque(tail_jsonl(self.dir / "windows.jsonl", history), history)
        self.reference: Reference | None = None
        self.not_ready_reason: str | None = "the champion's reference is not loaded yet"
        self.last_error: str | None = None
        self._alarm: tuple[str, ...] = ()
        self._tick_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._trigger_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ one step
    def tick(self, now: datetime | None = None) -> WindowReport | None:
        """Evaluate the next full window, if there is one. Raises on failure (nothing is consumed)."""
        with self._tick_lock:
            now = now or utcnow()
            reference = self._refresh_reference()
            if reference is None:
                return None
            self.metrics.realized(
                realized_of(
                    self.store.labelled_predictions(self.state.cursor, self.realized_rows, VARIANT), self.part
                )
            )
            size = self.settings.monitor_window_rows
            skipped = self._skip_if_behind(size)
            window = self.store.predictions_frame(variant=VARIANT, after_id=self.state.cursor, limit=size)
            if len(window) < size:
                return None  # a partial window waits for more traffic
            return self._evaluate(window, reference, skipped, now)

    def safe_tick(self, now: datetime | None = None) -> WindowReport | None:
        """tick, with any error logged and counted instead of raised (the service loop uses this)."""
        try:
            report = self.tick(now)
        except Exception as exc:
            self.metrics.errors.inc()
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("monitor tick failed")
            return None
        self.last_error = None
        return report

    def _evaluate(self, window: Any, reference: Reference, skipped: int, now: datetime) -> WindowReport:
        number = self.state.windows + 1
        first_id, last_id = int(window["id"].iloc[0]), int(window["id"].iloc[-1])
        html = self.reports_dir / f"window-{number}.html"
        html.unlink(missing_ok=True)  # a report left by an earlier state file must not pass for this one
        labels = self.store.labelled_predictions(last_id, len(window), VARIANT)
        verdict = evaluate_window(
            reference.frame,
            window,
            reference.importance,
            labels,
            reference.threshold,
            max_null_fraction=self.settings.monitor_max_null_fraction,
            html_path=html,
            part=self.part,
        )
        decision, policy_state = self.policy.decide(self.state.policy, verdict, now)
        report = WindowReport(
            number=number,
            first_id=first_id,
            last_id=last_id,
            rows=len(window),
            first_ts=str(window["ts"].iloc[0]),
            last_ts=str(window["ts"].iloc[-1]),
            evaluated_at=now.isoformat(timespec="seconds"),
            champion_version=reference.version,
            served_by=tuple(sorted({str(v) for v in window["model_version"]})),
            skipped_rows=skipped,
            consecutive=policy_state.consecutive,
            report=html.name if html.exists() else None,
            verdict=verdict,
            decision=decision,
        )
        trigger = None
        if decision.trigger:
            trigger = {
                "window": number,
                "ts": now.isoformat(),
                "reason": decision.reason,
                "outcome": "running",
            }
        with self._state_lock:  # 1. the new state is on disk before anything is triggered
            self.state = replace(
                self.state,
                policy=policy_state,
                cursor=last_id,
                windows=number,
                last_window_ts=now.timestamp(),
                last_trigger=trigger or self.state.last_trigger,
            )
            self.state.save(self.settings.monitor_state_path)
        summary = report.to_json()
        self.recent.append(summary)
        append_jsonl(self.dir / "windows.jsonl", summary)
        for name in self.report_names()[self.keep_reports :]:  # newest first: the rest goes
            (self.reports_dir / name).unlink(missing_ok=True)
        self.metrics.window(verdict, decision, policy_state.consecutive, now.timestamp())
        log.info("window %d: %s -> %s", number, verdict.summary(), decision.reason)
        # Audit an alarm when it starts or moves to other columns, not at every window.
        alarmed = tuple(sorted({problem.split(":")[0] for problem in decision.alarms}))
        if alarmed != self._alarm:
            self._alarm = alarmed
            if alarmed:
                self.store.audit(ACTOR, "monitor.alarm", window=number, problems=list(decision.alarms))
        if trigger is not None:  # 2. audited, 3. started
            self.store.audit(
                ACTOR, "monitor.trigger", window=number, reason=decision.reason, champion=reference.version
            )
            self.metrics.retrain_triggers.inc()
            self._start_trigger(decision.reason)
        return report

    # ------------------------------------------------------------------ reference
    def _refresh_reference(self) -> Reference | None:
        client = client_for(self.settings)
        mv = version_by_alias(client, self.settings.model_name, CHAMPION)
        if mv is None:
            if self.reference is None:
                self.not_ready_reason = f"no @{CHAMPION} for {self.settings.model_name} yet"
            return self.reference  # an alias removed for a moment: keep comparing with the last one
        if self.reference is not None and self.reference.version == str(mv.version):
            return self.reference
        reference = load_reference(self.settings)  # may have moved again since: it says which
        run_id = client.get_model_version(self.settings.model_name, reference.version).run_id
        offline = client.get_run(str(run_id)).data.metrics  # the holdout metrics at its threshold
        with self._state_lock:
            previous = self.state.reference_version
            if previous is not None and previous != reference.version:
                log.info(
                    "@%s moved from v%s to v%s: the drift count restarts",
                    CHAMPION,
                    previous,
                    reference.version,
                )
                self.state = replace(self.state, policy=replace(self.state.policy, consecutive=0))
            self.state = replace(self.state, reference_version=reference.version)
            self.state.save(self.settings.monitor_state_path)
        self.reference, self.not_ready_reason = reference, None
        self.metrics.champion(reference.version, offline.get("precision"), offline.get("recall"))
        self.metrics.consecutive.set(self.state.policy.consecutive)
        return reference

    def _skip_if_behind(self, size: int) -> int:
        waiting = self.store.count_predictions(VARIANT, after_id=self.state.cursor) // size
        if waiting <= self.max_lag_windows:
            return 0
        skip = (waiting - self.max_lag_windows) * size
        new_cursor = self.store.prediction_id_at(self.state.cursor, skip - 1, VARIANT)
        if new_cursor is None:  # cannot happen with ids that only grow; be safe anyway
            return 0
        with self._state_lock:
            self.state = replace(self.state, cursor=new_cursor)
        self.metrics.skipped_rows.inc(skip)
        log.warning("monitor is %d windows behind: skipped %d rows", waiting, skip)
        return skip

    # ------------------------------------------------------------------ the trigger
    def _start_trigger(self, reason: str) -> None:
        if self._trigger_thread is not None and self._trigger_thread.is_alive():
            self._finish_trigger("skipped", "the previous triggered run is still going")
            return
        self._trigger_thread = threading.Thread(
            target=self._run_trigger, args=(reason,), name="monitor-trigger", daemon=True
        )
        self._trigger_thread.start()

    def _run_trigger(self, reason: str) -> None:
        try:
            result = self.trigger(self.settings, reason)
        except RetrainAlreadyRunning as exc:
            self._finish_trigger("skipped", str(exc))
        except Exception as exc:
            log.exception("the retraining trigger failed")
            self._finish_trigger("failed", f"{type(exc).__name__}: {exc}")
        else:
            self._finish_trigger("success", _describe(result))

    def _finish_trigger(self, outcome: str, detail: str) -> None:
        self.metrics.retrain_runs.labels(outcome).inc()
        with self._state_lock:
            last = dict(self.state.last_trigger or {})
            last.update(outcome=outcome, detail=detail[:2000])
            self.state = replace(self.state, last_trigger=last)
            self.state.save(self.settings.monitor_state_path)
        self.store.audit(
            ACTOR, "monitor.trigger_result", window=last.get("window"), outcome=outcome, detail=detail
        )
        log.info("triggered run: %s (%s)", outcome, detail)

    def wait_for_trigger(self, timeout_s: float | None = None) -> bool:
        """Wait for a triggered run to finish; True when none is running (tests, the demo)."""
        thread = self._trigger_thread
        if thread is not None:
            thread.join(timeout_s)
        return thread is None or not thread.is_alive()

    # ------------------------------------------------------------------ reading
    def status(self) -> dict[str, Any]:
        with self._state_lock:
            state = self.state
            recent = list(self.recent)
        policy = self.policy
        return {
            "ready": self.reference is not None,
            "reason": self.not_ready_reason,
            "champion_version": self.reference.version if self.reference is not None else None,
            "cursor": state.cursor,
            "windows": state.windows,
            "window_rows": self.settings.monitor_window_rows,
            "policy": {
                **state.policy.to_json(),
                "min_samples": policy.min_samples,
                "consecutive_windows": policy.consecutive_windows,
                "cooldown_s": policy.cooldown_s,
                "min_importance_share": policy.min_importance_share,
            },
            "last_trigger": state.last_trigger,
            "last_error": self.last_error,
            "recent_windows": recent[::-1],  # newest first
        }

    def report_path(self, name: str) -> Path | None:
        if not REPORT_NAME.match(name):
            return None
        path = self.reports_dir / name
        return path if path.is_file() else None

    def report_names(self) -> list[str]:
        found = [p.name for p in self.reports_dir.glob("window-*.html") if REPORT_NAME.match(p.name)]
        return sorted(found, key=lambda n: -int(REPORT_NAME.match(n).group(1)))  # type: ignore[union-attr]


def create_monitor_app(settings: Settings, monitor: Monitor | None = None) -> FastAPI:
    """The monitor's HTTP face, with a background loop calling `tick` every monitor_interval_s."""
    mon = monitor or Monitor(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(_loop(mon, settings.monitor_interval_s, stop))
        try:
            yield
        finally:
            stop.set()  # the tick in progress finishes (state stays consistent), then the loop ends
            await task

    app = FastAPI(title="mlops-lab drift monitor", version="1", lifespan=lifespan)
    app.state.monitor = mon

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", responses={503: {"description": "no reference loaded"}})
    async def readyz() -> Any:
        if mon.reference is None:
            return JSONResponse(
                {"detail": mon.not_ready_reason}, status_code=503, headers={"Retry-After": "5"}
            )
        return {"status": "ready", "champion_version": mon.reference.version}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(mon.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/status")
    async def status() -> dict[str, Any]:
        return mon.status()

    @app.get("/reports/")
    async def reports() -> dict[str, Any]:
        return {"reports": [{"name": n, "url": f"/reports/{n}"} for n in mon.report_names()]}

    @app.get("/reports/{name}", response_model=None)
    async def report(name: str) -> FileResponse | JSONResponse:
        path = mon.report_path(name)
        if path is None:
            return JSONResponse({"detail": f"no report {name}"}, status_code=404)
        return FileResponse(path, media_type="text/html")

    return app


async def _loop(mon: Monitor, interval_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        # Catch up on waiting windows, at most the lag limit per round (tick skips beyond it).
        for _ in range(mon.max_lag_windows):
            if stop.is_set() or await asyncio.to_thread(mon.safe_tick) is None:
                break
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)


def _describe(result: object) -> str:
    summary = getattr(result, "summary", None)
    if callable(summary):
        return str(summary())
    return "done" if result is None else str(result)
