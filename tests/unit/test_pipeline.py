"""The retraining pipeline in process: validation stops, resumable runs, lineage, the lock.

    .venv/bin/pytest tests/unit/test_pipeline.py     # the Airflow run: tests/system/test_pipeline_airflow.py

Real MLflow (serverless SQLite) and a real store. The module has its own registry (v1
@champion trained on home/data/train.parquet), so staging @challenger here never disturbs the
shared `registry` fixture.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlops_lab.canary.judgement import Expectation
from mlops_lab.data.generator import generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle.tracking import CHALLENGER, client_for, version_by_alias
from mlops_lab.pipeline import guard, run, steps
from mlops_lab.pipeline.rundir import read_json, run_dir, sanitize_run_id
from mlops_lab.pipeline.validate import validate_rows
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

from ..support.pipeline import BASE_ROWS, lab_fixture, serve, settings_fixture, versions_of_run  # noqa: F401 (the fixtures lab and settings)


# ---------------------------------------------------------------- validation (pure)
@pytest.mark.parametrize(
    ("scenario", "reason", "fragments"),
    [
        ("baseline", None, ()),
        ("covariate_shift", None, ()),
        ("unit_bug", "unit_bug", ("amount", "median", "x10")),
        ("missing_values", "missing_values", ("distance_from_home_km", "account_age_days", "% missing")),
        ("schema_break", "schema_break", ("missing columns: amount", "hour")),
    ],
)
def test_validate_rows_names_the_problem(
    scenario: str, reason: str | None, fragments: tuple[str, ...]
) -> None:
    reference = generate("baseline", 5_000, seed=1)[SCHEMA.names]
    report = validate_rows(generate(scenario, 1_000, seed=3), reference, max_null_fraction=0.01)
    assert report.reason == reason, report.summary()
    for fragment in fragments:
        assert fragment in report.summary()


def test_validate_rows_allows_nulls_the_reference_has_and_needs_no_rows() -> None:
    reference = generate("missing_values", 5_000, seed=1)[SCHEMA.names]
    assert validate_rows(generate("missing_values", 1_000, seed=3), reference, max_null_fraction=0.01).passed
    assert validate_rows(pd.DataFrame(), reference, max_null_fraction=0.01).passed


def test_sanitize_run_id_makes_dag_run_ids_safe() -> None:
    assert sanitize_run_id("manual__2026-11-26T12:00:00.5+00:00") == "manual__2026-11-26T12_00_00.5_00_00"
    with pytest.raises(ValueError):
        sanitize_run_id("../..")


# ---------------------------------------------------------------- the pipeline (in-process)
@pytest.mark.parametrize("scenario", ["unit_bug", "missing_values", "schema_break"])
def test_validation_stops_a_broken_batch_with_its_reason(settings: Settings, scenario: str) -> None:
    serve(settings, scenario, 600, seed=11)
    run_id = f"bad-{scenario}"
    result = steps.run_pipeline(settings, run_id, f"drift ({scenario})")
    assert result.status == "stopped", result.summary()
    assert (result.step, result.stop_reason) == ("validate", scenario)
    column = {"unit_bug": "amount", "missing_values": "distance_from_home_km", "schema_break": "amount"}
    assert column[scenario] in (result.detail or "")
    assert result.done == ("extract",)
    assert versions_of_run(settings, run_id) == []


def test_a_recent_break_is_not_diluted_by_older_good_rows(settings: Settings) -> None:
    serve(settings, "baseline", 3_000, seed=18)  # labelled, fine
    serve(settings, "unit_bug", 500, seed=18, labelled=0)  # the newest window: cents, no labels yet
    result = steps.run_pipeline(settings, "diluted", "drift on amount")
    assert (result.step, result.stop_reason) == ("validate", "unit_bug"), result.summary()
    assert "500 new rows" in (result.detail or "")


def test_no_training_data_stops_at_extract(settings: Settings, tmp_path: Path) -> None:
    bare = settings.model_copy(update={"home": tmp_path / "bare"})  # same registry, no base set
    serve(bare, "baseline", 300, seed=17)
    result = steps.run_pipeline(bare, "no-data", "retrain before any data")
    assert (result.status, result.step, result.stop_reason) == ("stopped", "extract", "no_data")
    assert "300 training rows" in (result.detail or "")


def test_an_empty_or_too_small_window_stops_at_extract(settings: Settings) -> None:
    serve(settings, "baseline", 150, seed=19)
    small = steps.run_pipeline(settings, "small-window", "drift")
    assert (small.step, small.stop_reason) == ("extract", "window_too_small"), small.summary()
    assert "150 predictions" in (small.detail or "") and "200" in (small.detail or "")
    past = {"window_start": "2020-01-01T00:00:00+00:00", "window_end": "2020-01-02T00:00:00+00:00"}
    empty = steps.run_pipeline(settings, "empty-window", "backfill", params=past)
    assert (empty.step, empty.stop_reason) == ("extract", "empty_window"), empty.summary()
    assert "2020-01-01T00:00:00+00:00" in (empty.detail or "") and empty.version is None


def test_pipeline_stages_a_challenger_with_lineage_and_expectation(settings: Settings) -> None:
    serve(settings, "covariate_shift", 3_000, seed=12, labelled=2_500)
    run_id = "drift-ok"
    result = steps.run_pipeline(settings, run_id, "drift on amount, channel")
    assert result.ok, result.summary()
    assert result.done == steps.STEPS and result.skipped == ()
    assert result.parent_version == "1"

    client = client_for(settings)
    challenger = version_by_alias(client, settings.model_name, CHALLENGER)
    assert challenger is not None and str(challenger.version) == result.version
    tags = dict(client.get_model_version(settings.model_name, str(result.version)).tags or {})
    extracted = read_json(run_dir(settings, run_id) / "extract.json") or {}
    assert extracted["training_rows"] == BASE_ROWS + 2_500 and extracted["recent_rows"] == 500
    assert tags["data_fingerprint"] == extracted["data_fingerprint"]
    assert tags["trigger_reason"] == "drift on amount, channel"
    assert tags["parent_version"] == "1"
    assert tags["dag_run_id"] == run_id and tags["pipeline_run_id"] == run_id
    assert tags["gate"] == "PASS" and tags["gate_passed"] == "true"

    expectation = steps.load_expectation(settings, str(result.version))
    assert isinstance(expectation, Expectation)
    assert expectation == Expectation.from_json(tags["canary_expectation"])
    assert expectation.rows == 500 and 0.5 < expectation.agreement <= 1.0
    assert steps.load_expectation(settings, "1") is None

    store = Store(settings.resolved_store_url)
    staged = [e for e in store.audit_log("stage") if e["details"]["version"] == result.version]
    store.dispose()
    assert staged and staged[0]["actor"] == "pipeline"
    assert staged[0]["details"]["reason"] == "drift on amount, channel"


def test_a_failed_gate_stops_the_run_without_a_challenger(settings: Settings) -> None:
    serve(settings, "baseline", 500, seed=16)
    strict = settings.model_copy(update={"gate_min_recall": 0.99})
    before = version_by_alias(client_for(strict), strict.model_name, CHALLENGER)
    result = steps.run_pipeline(strict, "gate-fails", "retrain against a strict gate")
    assert (result.status, result.step, result.stop_reason) == ("stopped", "evaluate", "gate")
    assert "recall" in (result.detail or "")
    client = client_for(strict)
    tags = dict(client.get_model_version(strict.model_name, str(result.version)).tags or {})
    assert tags["gate"].startswith("FAIL") and "gate_passed" not in tags and "canary_expectation" not in tags
    after = version_by_alias(client, strict.model_name, CHALLENGER)
    assert (before and before.version) == (after and after.version)


def test_a_crashed_run_resumes_without_redoing_finished_steps(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(settings, "baseline", 1_500, seed=13)
    run_id = "crash-once"
    real_evaluate = steps.STEP_FUNCTIONS["evaluate"]
    monkeypatch.setitem(
        steps.STEP_FUNCTIONS, "evaluate", lambda ctx: (_ for _ in ()).throw(OSError("disk gone"))
    )
    with pytest.raises(OSError, match="disk gone"):
        steps.run_pipeline(settings, run_id, "scheduled retrain")
    crashed = steps.read_result(settings, run_id)
    assert (crashed.status, crashed.step, crashed.stop_reason) == ("crashed", "evaluate", "OSError")
    assert crashed.done == ("extract", "validate", "train")
    first = versions_of_run(settings, run_id)
    assert len(first) == 1

    # Worse: the crash hit right after registering, before train.json was written.
    (run_dir(settings, run_id) / "train.json").unlink()
    monkeypatch.setitem(steps.STEP_FUNCTIONS, "evaluate", real_evaluate)
    resumed = steps.run_pipeline(settings, run_id, "a different reason is ignored on resume")
    assert resumed.ok, resumed.summary()
    assert resumed.skipped == ("extract", "validate")
    assert versions_of_run(settings, run_id) == first == [resumed.version]
    assert resumed.reason == "scheduled retrain"
    assert not (run_dir(settings, run_id) / "failed.json").exists()

    again = steps.run_pipeline(settings, run_id, "scheduled retrain")
    assert again.ok and again.skipped == steps.STEPS


def test_two_triggers_at_once_start_one_run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_run(s: Settings, run_id: str, reason: str, **_: Any) -> Any:
        calls.append(run_id)
        started.set()
        assert release.wait(30)
        return steps.read_result(s, run_id)

    monkeypatch.setattr(run, "run_pipeline", slow_run)
    first = threading.Thread(target=run.retrain, args=(settings, "monitor"), kwargs={"in_process": True})
    first.start()
    try:
        assert started.wait(30)
        with pytest.raises(guard.RetrainAlreadyRunning, match="already running"):
            run.retrain(settings, "user", in_process=True)
    finally:
        release.set()
        first.join(30)
    assert len(calls) == 1
    run.retrain(settings, "after the first", in_process=True)  # the lock was released
    assert len(calls) == 2


def test_a_version_killed_before_its_tags_is_completed_on_resume(settings: Settings) -> None:
    """A worker killed between registering a version and tagging it: the resume finds the version
    by its MLflow run and puts the threshold and lineage back (the gate would judge it at 0.5)."""
    serve(settings, "baseline", 1_500, seed=22)
    run_id = "killed-before-tags"
    first = steps.run_pipeline(settings, run_id, "nightly")
    assert first.ok, first.summary()
    client = client_for(settings)
    for key in ("decision_threshold", "trigger_reason"):
        client.delete_model_version_tag(settings.model_name, str(first.version), key)
    for step in ("train", "evaluate", "register", "stage_challenger"):
        (run_dir(settings, run_id) / f"{step}.json").unlink()
    resumed = steps.run_pipeline(settings, run_id, "nightly")
    assert resumed.ok and resumed.version == first.version, resumed.summary()
    tags = dict(client.get_model_version(settings.model_name, str(first.version)).tags or {})
    assert float(tags["decision_threshold"]) < 0.5 and tags["trigger_reason"] == "nightly"
