"""Grader of lab 2 / evaluation-gate (exercises/lab2/gate.py): challenger vs champion, offline."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_lab.data.generator import generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.grading import TinyModel
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.settings import Settings

SETTINGS = Settings(
    gate_latency_budget_ms=1000.0
)  # the grader's machine may be busy: latency is not graded here


class BlindOn:
    """The real model, except that it cannot tell fraud apart on one channel (a broken feature join)."""

    def __init__(self, pipeline: Any, channel: str) -> None:
        self.pipeline, self.channel = pipeline, channel

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        proba = np.array(self.pipeline.predict_proba(x), copy=True)
        blind = (x["channel"].astype(str) == self.channel).to_numpy()
        proba[blind, 1] = 0.5
        proba[blind, 0] = 0.5
        return proba


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    return generate("baseline", 6_000, seed=31)


@pytest.fixture(scope="module")
def weak(tiny_model: TinyModel) -> Any:
    data = generate("baseline", 4_000, seed=7)
    shuffled = data[SCHEMA.label].sample(frac=1.0, random_state=3).to_numpy()  # labels that mean nothing
    return fraud_model.build_pipeline(fraud_model.Hyperparams()).fit(data[SCHEMA.names], shuffled)


def failed(verdict: Any) -> list[str]:
    return [c.name for c in verdict.checks if not c.passed]


def test_first_model(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """without a champion, a good model passes on the champion-free checks only"""
    v = impl.evaluate(
        SETTINGS, tiny_model.pipeline, tiny_model.threshold, holdout, signature_columns=SCHEMA.names
    )
    assert v.passed, f"expected a good first model to pass, failed: {v.reasons}"
    names = {c.name for c in v.checks}
    assert "schema" in names, f"expected a schema check when a signature is given, checks: {sorted(names)}"
    assert "pr_auc" not in names, "there is no champion to compare PR-AUC with"


def test_equal_challenger(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """a challenger as good as the champion passes, with both models' metrics reported"""
    m, t = tiny_model.pipeline, tiny_model.threshold
    v = impl.evaluate(
        SETTINGS, m, t, holdout, champion=m, champion_threshold=t, signature_columns=SCHEMA.names
    )
    assert v.passed, f"expected an equal challenger to pass, failed: {v.reasons}"
    assert "pr_auc" in v.champion and "pr_auc" in v.challenger, (
        "expected PR-AUC of both models in the verdict"
    )


def test_worse_challenger(impl: ModuleType, tiny_model: TinyModel, weak: Any, holdout: pd.DataFrame) -> None:
    """a challenger trained on meaningless labels fails the PR-AUC comparison"""
    t = tiny_model.threshold
    v = impl.evaluate(SETTINGS, weak, t, holdout, champion=tiny_model.pipeline, champion_threshold=t)
    assert not v.passed, "expected the weak challenger to be blocked"
    assert "pr_auc" in failed(v), f"expected the pr_auc check to fail, failed: {failed(v)}"


def test_missing_column(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """a signature missing a serving column fails the schema check, whatever the metrics"""
    cols = [c for c in SCHEMA.names if c != "device_os"]
    v = impl.evaluate(SETTINGS, tiny_model.pipeline, tiny_model.threshold, holdout, signature_columns=cols)
    assert "schema" in failed(v), f"expected the schema check to fail without device_os, failed: {failed(v)}"
    assert any("device_os" in r for r in v.reasons), f"expected the reason to name device_os: {v.reasons}"


def test_extra_column(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """a signature with a column serving does not send fails the schema check"""
    cols = [*SCHEMA.names, "amount_cents"]
    v = impl.evaluate(SETTINGS, tiny_model.pipeline, tiny_model.threshold, holdout, signature_columns=cols)
    assert "schema" in failed(v), f"expected the schema check to fail with amount_cents, failed: {failed(v)}"


def test_slice(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """a challenger blind on one channel fails the per-slice check"""
    m, t = tiny_model.pipeline, tiny_model.threshold
    v = impl.evaluate(SETTINGS, BlindOn(m, "contactless"), t, holdout, champion=m, champion_threshold=t)
    assert "slices" in failed(v), f"expected the slices check to fail, failed: {failed(v)}"
    assert any("contactless" in r for r in v.reasons), f"expected the reason to name contactless: {v.reasons}"
