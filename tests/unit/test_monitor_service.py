"""The drift monitor service with real parts: MLflow (the `registry` fixture), a SQLite store
filled with generated traffic scored by the champion, and Evidently.

The trigger is a recording callable here; the retraining pipeline it normally calls is tested
on its own. Windows are 500 rows and K is 2, so each test evaluates a handful of windows.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlops_lab.data.generator import generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle.model import scores
from mlops_lab.lifecycle.tracking import CHAMPION, client_for
from mlops_lab.lifecycle.train import load_model
from mlops_lab.monitoring.policy import PolicyState
from mlops_lab.monitoring.service import Monitor, create_monitor_app
from mlops_lab.monitoring.window import load_reference
from mlops_lab.pipeline.trigger import RetrainAlreadyRunning
from mlops_lab.runtime.supervisor import monitor_spec
from mlops_lab.settings import Settings, get_settings
from mlops_lab.store.db import Store, utcnow

WINDOW = 500


class Recorder:
    """A trigger that records its calls (and can fail or skip on demand)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.reasons: list[str] = []
        self.error = error
        self.lock = threading.Lock()

    def __call__(self, _settings: Settings, reason: str) -> str:
        with self.lock:
            self.reasons.append(reason)
        if self.error is not None:
            raise self.error
        return "retrain recorded"


@pytest.fixture(scope="module")
def champion(registry: Settings) -> tuple[Any, float]:
    return load_model(registry, "1"), load_reference(registry).threshold


class Traffic:
    """Writes generated windows into the store the way the stable server logs predictions."""

    def __init__(self, store: Store, champion: tuple[Any, float]) -> None:
        self.store, (self.model, self.threshold) = store, champion
        self.seed = 100

    def send(self, scenario: str, n: int = WINDOW, variant: str = "stable") -> None:
        self.seed += 1
        frame = generate(scenario, n, seed=self.seed)
        feats = frame[[c for c in SCHEMA.names if c in frame.columns]]
        records = json.loads(feats.to_json(orient="records"))  # NaN -> null, numpy -> Python
        served = scores(self.model, frame.reindex(columns=SCHEMA.names))
        now = utcnow()
        self.store.insert_predictions(
            [
                {
                    "request_id": f"{scenario}-{self.seed}-{i}",
                    "ts": now,
                    "variant": variant,
                    "model_version": "1",
                    "features": rec,
                    "score": float(score),
                    "decision": bool(score >= self.threshold),
                    "latency_ms": 1.0,
                }
                for i, (rec, score) in enumerate(zip(records, served, strict=True))
            ]
        )


def monitor_settings(registry: Settings, home: Path, **overrides: object) -> Settings:
    update: dict[str, object] = {
        "home": home,
        "store_url": f"sqlite:///{home / 'store.db'}",
        "monitor_window_rows": WINDOW,
        "monitor_min_samples": WINDOW,
        "monitor_consecutive_windows": 2,
        "monitor_cooldown_s": 3600.0,
        "monitor_interval_s": 0.1,
    }
    update.update(overrides)
    return registry.model_copy(update=update)


def setup(registry: Settings, tmp_path: Path, champion: Any, **overrides: object) -> tuple[Settings, Traffic]:
    s = monitor_settings(registry, tmp_path, **overrides)
    return s, Traffic(Store(s.resolved_store_url), champion)


def test_baseline_windows_do_not_trigger_and_a_partial_window_waits(
    registry: Settings, tmp_path: Path, champion: Any
) -> None:
    s, traffic = setup(registry, tmp_path, champion)
    rec = Recorder()
    mon = Monitor(s, trigger=rec, keep_reports=1)
    assert mon.tick() is None  # nothing logged yet
    assert mon.reference is not None and mon.reference.version == "1"

    traffic.send("baseline", 300)
    traffic.send("baseline", 300, variant="canary")  # the canary's traffic is not the monitor's
    assert mon.tick() is None  # 300 of 500 rows: the window waits
    traffic.send("baseline", 200)
    first = mon.tick()
    assert first is not None and first.number == 1 and first.rows == WINDOW
    traffic.send("baseline", WINDOW)
    second = mon.tick()
    assert second is not None and second.first_id > first.last_id  # no overlap
    assert mon.tick() is None

    for report in (first, second):
        assert not report.decision.trigger, report.verdict.summary()
        assert report.champion_version == "1" and report.served_by == ("1",)
        assert report.report == f"window-{report.number}.html"  # Evidently's HTML was written
    assert mon.report_names() == ["window-2.html"]  # keep_reports=1: older reports are pruned
    assert (s.home / "monitor" / "reports" / "window-2.html").stat().st_size > 10_000
    assert rec.reasons == [] and mon.store.audit_log("monitor.trigger") == []
    saved = json.loads(s.monitor_state_path.read_text())
    assert saved["cursor"] == second.last_id and saved["windows"] == 2 and saved["reference_version"] == "1"
    assert PolicyState.load(s.monitor_state_path) == mon.state.policy  # the policy reads the same file


def test_covariate_shift_triggers_after_k_windows_exactly_once(
    registry: Settings, tmp_path: Path, champion: Any
) -> None:
    s, traffic = setup(registry, tmp_path, champion)
    rec = Recorder()
    mon = Monitor(s, trigger=rec)
    reports = []
    for _ in range(3):
        traffic.send("covariate_shift")
        report = mon.tick()
        assert report is not None
        reports.append(report)
    assert [r.decision.trigger for r in reports] == [False, True, False], [r.decision.reason for r in reports]
    assert reports[2].consecutive == 1  # the count restarts after a trigger; the cooldown holds at K
    assert mon.wait_for_trigger(30)
    assert len(rec.reasons) == 1 and rec.reasons[0].endswith("2/2 windows: retrain")

    audit = mon.store.audit_log("monitor.trigger")
    assert len(audit) == 1 and audit[0]["details"]["window"] == 2
    assert audit[0]["details"]["reason"] == rec.reasons[0]
    assert mon.store.audit_log("monitor.trigger_result")[0]["details"]["outcome"] == "success"
    last = mon.status()["last_trigger"]
    assert last["window"] == 2 and last["outcome"] == "success" and last["detail"] == "retrain recorded"
    text = _metrics_text(mon)
    assert "mlops_retrain_triggers_total 1.0" in text
    assert 'mlops_retrain_runs_total{result="success"} 1.0' in text
    assert "mlops_drift_detected 1.0" in text and 'mlops_feature_drift{feature="amount"} 1.0' in text


def test_a_restarted_monitor_does_not_double_trigger(
    registry: Settings, tmp_path: Path, champion: Any
) -> None:
    s, traffic = setup(registry, tmp_path, champion)
    rec = Recorder()
    first = Monitor(s, trigger=rec)
    for _ in range(2):
        traffic.send("covariate_shift")
        first.tick()
    assert first.wait_for_trigger(30) and len(rec.reasons) == 1

    # A new process over the same home: a new Monitor inside a new app, its loop doing the ticks.
    traffic.send("covariate_shift")
    traffic.send("covariate_shift")
    app = create_monitor_app(s, Monitor(s, trigger=rec))
    with TestClient(app) as client:
        status = _wait_for(client, lambda st: st["windows"] == 4)
        assert client.get("/healthz").json() == {"status": "alive"}
        assert client.get("/readyz").json() == {"status": "ready", "champion_version": "1"}
        metrics = client.get("/metrics").text
        listing = client.get("/reports/").json()["reports"]
        page = client.get(listing[0]["url"])
        missing = client.get("/reports/window-999.html")
    assert len(rec.reasons) == 1  # the cooldown survived the restart
    assert status["policy"]["consecutive"] == 2 and status["policy"]["last_trigger_ts"] is not None
    assert status["last_trigger"]["window"] == 2 and status["champion_version"] == "1"
    assert [w["window"] for w in status["recent_windows"]] == [4, 3, 2, 1]  # history survives too
    assert "cooling down until" in status["recent_windows"][0]["reason"]
    assert len(first.store.audit_log("monitor.trigger")) == 1
    for name in (
        "mlops_monitor_windows_total 2.0",
        "mlops_drift_consecutive_windows 2.0",
        "mlops_drift_detected 1.0",
        'mlops_monitor_champion_info{version="1"} 1.0',
        "mlops_retrain_triggers_total 0.0",
        "mlops_monitor_errors_total 0.0",
        "mlops_score_drift 1.0",
        "mlops_data_quality_alarm 0.0",
    ):
        assert name in metrics, name
    for gauge in (
        "mlops_drift_share_drifted",
        "mlops_drift_importance_share",
        "mlops_score_drift_statistic",
        "mlops_realized_precision",
        "mlops_realized_recall",
        "mlops_realized_labelled_rows",
        "mlops_expected_precision",
        "mlops_estimated_precision",
        "mlops_estimated_recall",
        "mlops_monitor_last_window_timestamp_seconds",
    ):
        assert f"\n{gauge} " in metrics, gauge
    expected = re.search(r"^mlops_expected_precision (\S+)$", metrics, re.M)
    assert expected is not None and 0.0 < float(expected.group(1)) < 1.0  # from the champion's run
    assert [r["name"] for r in listing] == [f"window-{n}.html" for n in (4, 3, 2, 1)]
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert missing.status_code == 404


def test_irrelevant_drift_never_triggers(registry: Settings, tmp_path: Path, champion: Any) -> None:
    s, traffic = setup(registry, tmp_path, champion)
    rec = Recorder()
    mon = Monitor(s, trigger=rec)
    for _ in range(3):
        traffic.send("irrelevant_drift")
        report = mon.tick()
        assert report is not None and report.verdict.drift is not None
        assert "device_os" in report.verdict.drift.drifted_columns, report.verdict.summary()
        assert not report.decision.trigger and not report.decision.drifted_where_it_matters
    assert rec.reasons == [] and mon.state.policy.consecutive == 0


def test_the_monitor_runs_whichever_policy_and_performance_its_part_names(
    registry: Settings, tmp_path: Path, champion: Any
) -> None:
    """How `mlops-lab monitor --impl exercises` runs the learner's lab 4 code: through `part`."""
    s, traffic = setup(registry, tmp_path, champion)
    asked: list[str] = []

    def part(name: str) -> ModuleType:
        asked.append(name)
        return importlib.import_module(name)

    mon = Monitor(s, trigger=Recorder(), part=part)
    traffic.send("baseline")
    assert mon.tick() is not None
    assert {"mlops_lab.monitoring.policy", "mlops_lab.monitoring.performance"} <= set(asked)


def test_trigger_failures_skips_and_data_quality_alarms(
    registry: Settings, tmp_path: Path, champion: Any
) -> None:
    s, traffic = setup(registry, tmp_path, champion, monitor_consecutive_windows=1, monitor_cooldown_s=0.0)
    mon = Monitor(s, trigger=Recorder(RuntimeError("airflow exploded")))
    traffic.send("covariate_shift")
    assert mon.tick() is not None and mon.wait_for_trigger(30)
    assert mon.status()["last_trigger"]["outcome"] == "failed"

    mon.trigger = Recorder(RetrainAlreadyRunning("a retrain is already running"))
    traffic.send("covariate_shift")
    assert mon.tick(utcnow() + timedelta(seconds=1)) is not None and mon.wait_for_trigger(30)
    assert mon.status()["last_trigger"]["outcome"] == "skipped"

    traffic.send("missing_values")
    traffic.send("missing_values")
    alarms = [mon.tick(), mon.tick()]
    assert all(r is not None and r.verdict.data_quality_alarm and not r.decision.trigger for r in alarms)
    audit = mon.store.audit_log("monitor.alarm")
    assert len(audit) == 1  # audited when the alarm starts, not at every window
    assert any("distance_from_home_km" in p for p in audit[0]["details"]["problems"])
    text = _metrics_text(mon)
    for line in (
        'mlops_retrain_runs_total{result="failed"} 1.0',
        'mlops_retrain_runs_total{result="skipped"} 1.0',
        "mlops_data_quality_alarm 1.0",
    ):
        assert line in text, line


def test_a_failing_tick_is_counted_and_consumes_nothing(
    registry: Settings, tmp_path: Path, champion: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s, traffic = setup(registry, tmp_path, champion)
    mon = Monitor(s, trigger=Recorder())
    traffic.send("baseline")

    def down(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("database is down")

    monkeypatch.setattr(mon.store, "predictions_frame", down)
    assert mon.safe_tick() is None and mon.state.cursor == 0
    assert mon.status()["last_error"] == "ConnectionError: database is down"
    assert "mlops_monitor_errors_total 1.0" in _metrics_text(mon)
    monkeypatch.undo()
    report = mon.safe_tick()
    assert report is not None and report.number == 1 and mon.last_error is None


def test_a_monitor_far_behind_skips_old_windows(registry: Settings, tmp_path: Path, champion: Any) -> None:
    s, traffic = setup(registry, tmp_path, champion)
    mon = Monitor(s, trigger=Recorder(), max_lag_windows=1)
    traffic.send("baseline", 3 * WINDOW + 100)
    report = mon.tick()
    assert report is not None and report.skipped_rows == 2 * WINDOW
    assert mon.tick() is None  # 100 rows left: a partial window
    assert "mlops_monitor_skipped_rows_total 1000.0" in _metrics_text(mon)

    # Labels arrive (for the first 1,200 rows, the skipped ones included): realized metrics cover
    # the consumed rows whose label is in, on every tick, with or without a new window.
    logged = mon.store.predictions_frame(variant="stable").head(1_200)
    mon.store.insert_labels(
        [
            {"request_id": rid, "ts": utcnow(), "label": int(flagged)}
            for rid, flagged in zip(logged["request_id"], logged["decision"], strict=True)
        ]
    )
    assert mon.tick() is None
    text = _metrics_text(mon)
    for line in (
        "mlops_realized_labelled_rows 1200.0",
        "mlops_realized_precision 1.0",
        "mlops_realized_recall 1.0",
    ):
        assert line in text, line


def test_champion_move_reloads_the_reference_and_restarts_the_count(
    registry: Settings, tmp_path: Path, champion: Any
) -> None:
    # A model of its own (two versions of the registry's v1), so the shared @champion stays put.
    client = client_for(registry)
    name = f"monitor-test-{uuid.uuid4().hex[:8]}"
    source = client.get_model_version(registry.model_name, "1")
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, str(source.source), run_id=source.run_id, tags=source.tags)
    client.set_registered_model_alias(name, CHAMPION, "1")

    s, traffic = setup(registry, tmp_path, champion, model_name=name)
    rec = Recorder()
    mon = Monitor(s, trigger=rec)
    traffic.send("covariate_shift")
    report = mon.tick()
    assert report is not None and report.champion_version == "1" and report.consecutive == 1
    client.set_registered_model_alias(name, CHAMPION, "2")
    traffic.send("covariate_shift")
    report = mon.tick()
    # Compared with v2's reference, and the count started over: no trigger at K=2.
    assert report is not None and report.champion_version == "2" and report.consecutive == 1
    assert rec.reasons == []
    assert 'mlops_monitor_champion_info{version="2"} 1.0' in _metrics_text(mon)
    assert 'version="1"' not in _metrics_text(mon).split("mlops_monitor_champion_info")[-1]


def test_monitor_spec(tmp_path: Path) -> None:
    s = get_settings(home=tmp_path, monitor_port=18003)
    spec = monitor_spec(s)
    assert spec.name == "monitor" and spec.port == 18003
    assert spec.argv[-4:] == ["mlops_lab.cli", "monitor", "--port", "18003"]
    assert spec.health_url == "http://127.0.0.1:18003/healthz"
    assert spec.env["MLOPS_TRACKING_URI"] == s.mlflow_server_uri


def _metrics_text(mon: Monitor) -> str:
    from prometheus_client import generate_latest

    return generate_latest(mon.metrics.registry).decode()


def _wait_for(client: TestClient, done: Any, timeout_s: float = 60.0) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        status: dict[str, Any] = client.get("/v1/status").json()
        if done(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_the_default_trigger_maps_pipeline_outcomes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mlops_lab.pipeline import trigger
    from mlops_lab.pipeline.rundir import PipelineResult
    from mlops_lab.pipeline.trigger import pipeline_trigger

    outcome: dict[str, Any] = {}

    def retrain(_settings: Settings, reason: str) -> PipelineResult:
        if "error" in outcome:
            raise outcome["error"]
        return PipelineResult("r1", outcome["status"], reason, step="train", stop_reason="boom", detail="x")

    monkeypatch.setattr(trigger, "retrain", retrain)
    s = get_settings(home=tmp_path)
    outcome["status"] = "staged"
    assert isinstance(pipeline_trigger(s, "drift"), PipelineResult)
    outcome["status"] = "stopped"  # a step refused on purpose (the gate, bad data): the run did its job
    assert isinstance(pipeline_trigger(s, "drift"), PipelineResult)
    outcome["status"] = "crashed"
    with pytest.raises(RuntimeError, match="run r1"):
        pipeline_trigger(s, "drift")
    outcome["error"] = RetrainAlreadyRunning("held by pid 42")
    with pytest.raises(RetrainAlreadyRunning, match="pid 42"):
        pipeline_trigger(s, "drift")
