"""Training, the evaluation gate, the compiled scorer, and alias moves with their audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.models import get_model_info

from mlops_lab.data.generator import generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import gate, registry
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle.tracking import CHAMPION, client_for, version_by_alias
from mlops_lab.lifecycle.train import HOLDOUT_ARTIFACT, REFERENCE_ARTIFACT, load_run_frame
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

from ..conftest import make_settings


@pytest.fixture(scope="module")
def fitted() -> tuple[object, object]:
    data = generate("baseline", 8_000, seed=11)
    good = fraud_model.build_pipeline(fraud_model.Hyperparams()).fit(data[SCHEMA.names], data[SCHEMA.label])
    shuffled = data[SCHEMA.label].sample(frac=1.0, random_state=0).to_numpy()
    bad = fraud_model.build_pipeline(fraud_model.Hyperparams()).fit(data[SCHEMA.names], shuffled)
    return good, bad


def test_training_logs_lineage_signature_and_reference(registry: Settings) -> None:
    client = client_for(registry)
    mv = version_by_alias(client, registry.model_name, CHAMPION)
    assert mv is not None and str(mv.version) == "1"
    tags = mv.tags
    for key in ("decision_threshold", "data_fingerprint", "code_version", "run_id", "gate"):
        assert tags.get(key), f"version tag {key} missing"
    assert tags["gate"] == "PASS"
    run = client.get_run(mv.run_id)
    assert {"pr_auc", "recall", "latency_p50_ms", "fraud_rate"} <= set(run.data.metrics)
    info = get_model_info(f"models:/{registry.model_name}/1")
    assert info.signature is not None
    assert [c.name for c in info.signature.inputs] == SCHEMA.names
    reference = load_run_frame(registry, mv.run_id, REFERENCE_ARTIFACT)
    assert set(SCHEMA.names) <= set(reference.columns) and "score" in reference.columns
    holdout = load_run_frame(registry, mv.run_id, HOLDOUT_ARTIFACT)
    assert SCHEMA.label in holdout.columns and len(holdout) > 1000


def test_training_refuses_data_that_breaks_the_schema(registry: Settings) -> None:
    from mlops_lab.lifecycle.train import train

    with pytest.raises(ValueError, match="missing columns: amount"):
        train(registry, generate("schema_break", 500))


def test_compiled_scorer_matches_the_pipeline_including_unknowns_and_nans(
    fitted: tuple[object, object],
) -> None:
    good, _ = fitted
    rows = generate("missing_values", 3_000, seed=4)
    rows.loc[0, "country"] = "ZZ"  # never seen in training
    rows.loc[1, "hour"] = 3.0  # float hour from a JSON client
    compiled = fraud_model.compile_scorer(good)  # type: ignore[arg-type]
    assert compiled is not None
    expected = fraud_model.scores(good, rows[SCHEMA.names])  # type: ignore[arg-type]
    got = np.array([compiled(r) for r in rows[SCHEMA.names].to_dict("records")])
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_compile_refuses_a_pipeline_it_does_not_understand() -> None:
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import Pipeline

    assert fraud_model.compile_scorer(Pipeline([("clf", DummyClassifier())])) is None


def test_gate_passes_an_equal_model_and_stops_one_trained_on_shuffled_labels(
    fitted: tuple[object, object], tmp_path: Path
) -> None:
    good, bad = fitted
    s = make_settings(tmp_path)
    holdout = generate("baseline", 6_000, seed=12)
    train_scores = fraud_model.scores(good, generate("baseline", 5_000, seed=11)[SCHEMA.names])  # type: ignore[arg-type]
    threshold = fraud_model.budget_threshold(train_scores, s.flag_budget)
    same = gate.evaluate(
        s,
        good,
        threshold,
        holdout,
        champion=good,
        champion_threshold=threshold,
        signature_columns=SCHEMA.names,
    )
    assert same.passed, same.summary()
    worse = gate.evaluate(s, bad, threshold, holdout, champion=good, champion_threshold=threshold)
    assert not worse.passed
    assert any(r.startswith("pr_auc:") for r in worse.reasons)


def test_gate_refuses_a_signature_that_breaks_the_serving_contract(
    fitted: tuple[object, object], tmp_path: Path
) -> None:
    good, _ = fitted
    s = make_settings(tmp_path)
    cols = [c for c in SCHEMA.names if c != "amount"] + ["amount_usd"]
    verdict = gate.evaluate(s, good, 0.1, generate("baseline", 2_000), signature_columns=cols)
    assert not verdict.passed
    assert "schema: missing ['amount'], extra ['amount_usd']" in verdict.reasons


@pytest.fixture
def versions(tmp_path: Path) -> tuple[MlflowClient, Store, str]:
    """A fresh registry with three versions (sources need not be loadable for alias moves)."""
    s = make_settings(tmp_path)
    s = s.model_copy(update={"tracking_uri": s.mlflow_sqlite_uri})
    client = client_for(s)
    client.create_registered_model(s.model_name)
    for _ in range(3):
        client.create_model_version(s.model_name, source=(tmp_path / "model").as_uri())
    return client, Store(s.resolved_store_url), s.model_name


def test_promote_and_rollback_walk_the_audit_log_like_a_stack(
    versions: tuple[MlflowClient, Store, str],
) -> None:
    client, store, name = versions
    for v in ("1", "2", "3"):
        registry.promote(client, store, name, v, actor="alice", reason=f"release {v}")
    assert registry.rollback(client, store, name, actor="bob", reason="bad release") == "2"
    assert registry.rollback(client, store, name, actor="bob", reason="still bad") == "1"
    assert str(version_by_alias(client, name, CHAMPION).version) == "1"  # type: ignore[union-attr]
    with pytest.raises(registry.RegistryError, match="no earlier champion"):
        registry.rollback(client, store, name, actor="bob", reason="again")
    actions = [(e["actor"], e["action"], e["details"]["version"]) for e in registry.history(store, name)]
    assert actions == [
        ("alice", "promote", "1"),
        ("alice", "promote", "2"),
        ("alice", "promote", "3"),
        ("bob", "rollback", "2"),
        ("bob", "rollback", "1"),
    ]
    assert all(e["details"]["reason"] for e in registry.history(store, name))


def test_champion_at_answers_which_version_served_when(versions: tuple[MlflowClient, Store, str]) -> None:
    client, store, name = versions
    before = datetime.now(UTC)
    registry.promote(client, store, name, "1", actor="a", reason="r")
    between = datetime.now(UTC)
    registry.promote(client, store, name, "2", actor="a", reason="r")
    assert registry.champion_at(store, name, before.replace(year=2000)) is None
    assert registry.champion_at(store, name, between) == "1"
    assert registry.champion_at(store, name, datetime.now(UTC)) == "2"


def test_promoting_a_missing_version_is_a_clear_error(versions: tuple[MlflowClient, Store, str]) -> None:
    client, store, name = versions
    with pytest.raises(registry.RegistryError, match="has no version 9"):
        registry.promote(client, store, name, "9", actor="a", reason="r")
    assert store.audit_log() == []
