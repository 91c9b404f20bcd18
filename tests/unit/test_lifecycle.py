"""Training, the evaluation gate, the compiled scorer, and alias moves with their audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.models import get_model_info

from mlops_lab.data.generator import generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.errors import InvalidValue
from mlops_lab.lifecycle import gate, registry
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle.tracking import CHAMPION, client_for, version_by_alias
from mlops_lab.lifecycle.train import HOLDOUT_ARTIFACT, REFERENCE_ARTIFACT, fit, load_run_frame
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


# ---------------------------------------------------------------- the seams lab 2's exercises fill
def test_train_is_fit_then_the_given_log_and_register(tmp_path: Path) -> None:
    from mlops_lab.lifecycle.train import Fitted, TrainResult, train

    seen: dict[str, object] = {}

    def log_and_register(
        settings: Settings, data: object, fitted: Fitted, *, lineage: dict[str, str] | None = None
    ) -> TrainResult:
        seen.update(rows=len(data), holdout=len(fitted.holdout), lineage=lineage)  # type: ignore[arg-type]
        return TrainResult("run", "7", fitted.metrics, fitted.threshold, "fp")

    s = make_settings(tmp_path)
    result = train(
        s, generate("baseline", 2_000, seed=5), lineage={"k": "v"}, log_and_register=log_and_register
    )
    assert result.version == "7"
    assert seen == {"rows": 2_000, "holdout": 500, "lineage": {"k": "v"}}


def test_gate_takes_its_schema_and_champion_checks_as_parameters(
    fitted: tuple[object, object], tmp_path: Path
) -> None:
    good, _ = fitted
    holdout = generate("baseline", 2_000, seed=13)
    calls: list[str] = []

    def schema_check(columns: object) -> gate.Check:
        calls.append("schema")
        return gate.Check("schema", False, "refused by the given check")

    def champion_checks(
        settings: Settings, rows: object, challenger: gate.Scored, champion: gate.Scored
    ) -> list[gate.Check]:
        calls.append("champion")
        assert rows is holdout and len(challenger.scores) == len(champion.scores) == len(holdout)
        return [gate.Check("custom", True, "ok")]

    verdict = gate.evaluate(
        make_settings(tmp_path, gate_latency_budget_ms=1000.0),
        good,
        0.1,
        holdout,
        champion=good,
        champion_threshold=0.1,
        signature_columns=SCHEMA.names,
        schema_check=schema_check,
        champion_checks=champion_checks,
    )
    assert calls == ["schema", "champion"]
    assert [c.name for c in verdict.checks] == ["schema", "recall", "latency", "custom"]
    assert not verdict.passed and verdict.reasons == ["schema: refused by the given check"]


def test_promote_moves_champion_through_the_given_set_alias() -> None:
    calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def set_alias(*args: object, **kwargs: object) -> str | None:
        calls.append((args, kwargs))
        return "1"

    got = registry.promote("client", "store", "m", "2", actor="a", reason="r", set_alias=set_alias)  # type: ignore[arg-type]
    assert got == "1"
    assert calls == [
        (("client", "store", "m", CHAMPION, "2"), {"actor": "a", "reason": "r", "action": "promote"})
    ]


def test_train_and_release_runs_the_given_train_evaluate_and_promote(tmp_path: Path) -> None:
    from mlops_lab.lifecycle.release import train_and_release
    from mlops_lab.lifecycle.train import train

    s = make_settings(tmp_path, gate_min_recall=0.0, gate_latency_budget_ms=1000.0)  # only the wiring
    s = s.model_copy(update={"tracking_uri": s.mlflow_sqlite_uri})
    calls: list[str] = []

    def counted(name: str, fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return fn(*args, **kwargs)

        return call

    rel = train_and_release(
        s,
        generate("baseline", 4_000, seed=3),
        promote=True,
        actor="tests",
        reason="injected",
        train_fn=counted("train", train),
        evaluate_fn=counted("evaluate", gate.evaluate),
        promote_fn=counted("promote", registry.promote),
    )
    assert rel.promoted, rel.verdict.summary()
    assert calls == ["train", "evaluate", "promote"]


def test_a_gpu_asked_for_with_the_sklearn_flavour_is_refused_not_run_on_cpu(tmp_path: Path) -> None:
    s = make_settings(tmp_path, model_device="cuda")
    with pytest.raises(InvalidValue, match="sklearn flavour trains on the CPU only"):
        fit(s, generate("baseline", 1_000, seed=2))
