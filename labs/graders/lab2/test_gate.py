"""Grader of lab 2 / evaluation-gate (exercises/lab2/gate.py): challenger vs champion, offline.

The checks go through `evaluate` (the reference's, with the implementation's `schema_check` and
`champion_checks`) with real models: a small fitted pipeline and one trained on shuffled labels.
The per-slice checks call `champion_checks` directly, with both models scored by the reference's
`score` as `evaluate` scores them, for a challenger that is blind on one channel: `evaluate`
would also time its single-row latency, about a second per check and graded nowhere here.
"""

from __future__ import annotations

import random
import re
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_lab.data.generator import generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.grading import TinyModel
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle.gate import SLICE_COLUMN, SLICE_MIN_FRAUDS, score
from mlops_lab.settings import Settings

# The grader's machine may be busy: latency is not graded here.
SETTINGS = Settings(gate_latency_budget_ms=1000.0)


class BlindOn:
    """The real model, except that it cannot tell fraud apart on one channel (a broken feature join)."""

    def __init__(self, pipeline: Any, channel: str) -> None:
        self.pipeline, self.channel = pipeline, channel

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        proba = np.array(self.pipeline.predict_proba(x), copy=True)
        blind = (x[SLICE_COLUMN].astype(str) == self.channel).to_numpy()
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


def thin(holdout: pd.DataFrame, channels: list[str], frauds: int) -> pd.DataFrame:
    """The holdout with only `frauds` frauds left on each of `channels`."""
    keep = pd.Series(True, index=holdout.index)
    for channel in channels:
        rows = holdout.index[(holdout[SLICE_COLUMN] == channel) & (holdout[SCHEMA.label] == 1)]
        keep[rows[frauds:]] = False
    return holdout[keep].reset_index(drop=True)


def only_frauds(holdout: pd.DataFrame, channel: str) -> pd.DataFrame:
    """The holdout without the legitimate rows of `channel`: that slice has frauds only."""
    legit = (holdout[SLICE_COLUMN] == channel) & (holdout[SCHEMA.label] == 0)
    return holdout[~legit].reset_index(drop=True)


def compare(
    impl: ModuleType, settings: Settings, challenger: Any, champion: Any, rows: pd.DataFrame, t: float
) -> Any:
    """The implementation's champion_checks on `rows`, both models scored as `evaluate` scores them."""
    return impl.champion_checks(settings, rows, score(challenger, t, rows), score(champion, t, rows))


def failed(verdict: Any) -> list[str]:
    return [c.name for c in verdict.checks if not c.passed]


def names(verdict: Any) -> list[str]:
    return [c.name for c in verdict.checks]


def check(verdict: Any, name: str) -> Any:
    """The check named `name` of a verdict, or of champion_checks' list."""
    checks = list(getattr(verdict, "checks", verdict))
    found = [c for c in checks if c.name == name]
    assert found, f"expected a {name!r} check, got the checks {[c.name for c in checks]}"
    return found[0]


def numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", text)]


def test_first_model(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """without a champion, a good model passes on the champion-free checks only"""
    v = impl.evaluate(
        SETTINGS, tiny_model.pipeline, tiny_model.threshold, holdout, signature_columns=SCHEMA.names
    )
    assert v.passed, f"expected a good first model to pass, got the failures {v.reasons}"
    assert sorted(names(v)) == ["latency", "recall", "schema"], (
        f"expected the checks latency, recall and schema, got {sorted(names(v))}"
    )


def test_schema_any_order(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """a signature with exactly the serving columns, in another order, passes the schema check

    Compare sets, not lists.
    """
    cols = list(SCHEMA.names)
    random.Random(5).shuffle(cols)
    v = impl.evaluate(SETTINGS, tiny_model.pipeline, tiny_model.threshold, holdout, signature_columns=cols)
    got = check(v, "schema")
    assert got.passed, f"expected the schema check to pass for the shuffled columns, got {got.detail!r}"


def test_missing_column(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """a signature missing a serving column fails the schema check, which names it"""
    cols = [c for c in SCHEMA.names if c != "device_os"]
    v = impl.evaluate(SETTINGS, tiny_model.pipeline, tiny_model.threshold, holdout, signature_columns=cols)
    got = check(v, "schema")
    assert not got.passed and "device_os" in got.detail, (
        f"expected a failed schema check naming device_os, got passed={got.passed}, {got.detail!r}"
    )
    assert not v.passed, "expected the verdict to fail with a failed check, got a pass"


def test_extra_column(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """a signature with a column serving does not send fails the schema check, which names it"""
    cols = [*SCHEMA.names, "amount_cents"]
    v = impl.evaluate(SETTINGS, tiny_model.pipeline, tiny_model.threshold, holdout, signature_columns=cols)
    got = check(v, "schema")
    assert not got.passed and "amount_cents" in got.detail, (
        f"expected a failed schema check naming amount_cents, got passed={got.passed}, {got.detail!r}"
    )


def test_schema_names_all(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """the schema check names every missing and every extra column

    Both differences at once, each a sorted list: set(a) - set(b) both ways.
    """
    cols = [c for c in SCHEMA.names if c not in ("country", "device_os")] + ["amount_cents", "card_id"]
    v = impl.evaluate(SETTINGS, tiny_model.pipeline, tiny_model.threshold, holdout, signature_columns=cols)
    got = check(v, "schema")
    unnamed = [c for c in ("country", "device_os", "amount_cents", "card_id") if c not in got.detail]
    assert not got.passed and not unnamed, (
        f"expected a failed schema check naming country, device_os, amount_cents and card_id, "
        f"got passed={got.passed}, {got.detail!r}"
    )


def test_equal_challenger(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """a challenger as good as the champion passes, even with no PR-AUC margin

    Equal is not worse: >=, not >.
    """
    m, t = tiny_model.pipeline, tiny_model.threshold
    strict = SETTINGS.model_copy(update={"gate_pr_auc_margin": 0.0, "gate_slice_margin": 0.0})
    v = impl.evaluate(strict, m, t, holdout, champion=m, champion_threshold=t, signature_columns=SCHEMA.names)
    assert v.passed, f"expected an equal challenger to pass, got the failures {v.reasons}"
    assert "pr_auc" in names(v), f"expected a pr_auc check against the champion, got {names(v)}"
    assert "pr_auc" in v.champion and "pr_auc" in v.challenger, (
        f"expected both models' PR-AUC in the verdict, got {sorted(v.champion)} and {sorted(v.challenger)}"
    )


def test_worse_challenger(impl: ModuleType, tiny_model: TinyModel, weak: Any, holdout: pd.DataFrame) -> None:
    """a challenger trained on meaningless labels fails the PR-AUC comparison"""
    t = tiny_model.threshold
    v = impl.evaluate(SETTINGS, weak, t, holdout, champion=tiny_model.pipeline, champion_threshold=t)
    assert "pr_auc" in failed(v), f"expected the pr_auc check to fail, got the failures {failed(v)}"
    assert not v.passed, "expected the weak challenger to be blocked, got a pass"


def test_pr_auc_detail(impl: ModuleType, tiny_model: TinyModel, weak: Any, holdout: pd.DataFrame) -> None:
    """the pr_auc check's detail gives both models' PR-AUC

    A person reading a refusal needs both numbers: f"challenger {new:.3f} vs champion {old:.3f}".
    """
    t = tiny_model.threshold
    v = impl.evaluate(SETTINGS, weak, t, holdout, champion=tiny_model.pipeline, champion_threshold=t)
    detail = check(v, "pr_auc").detail
    shown = numbers(detail)
    want = {"challenger": v.challenger["pr_auc"], "champion": v.champion["pr_auc"]}
    assert abs(want["challenger"] - want["champion"]) > 0.02, (
        f"expected the grader's two models to differ in PR-AUC by more than 0.02, got {want}"
    )
    missing = [
        f"{who} {value:.3f}"
        for who, value in want.items()
        if not any(abs(n - value) <= 0.006 or abs(n / 100 - value) <= 0.0006 for n in shown)
    ]
    assert not missing, f"expected the detail to give the PR-AUCs {missing}, got {detail!r}"


def test_margin(impl: ModuleType, tiny_model: TinyModel, weak: Any, holdout: pd.DataFrame) -> None:
    """the PR-AUC margin is a tolerance: a worse challenger within it passes that check

    The floor is the champion's PR-AUC minus settings.gate_pr_auc_margin.
    """
    t = tiny_model.threshold
    lenient = SETTINGS.model_copy(update={"gate_pr_auc_margin": 1.0})
    v = impl.evaluate(lenient, weak, t, holdout, champion=tiny_model.pipeline, champion_threshold=t)
    got = check(v, "pr_auc")
    assert got.passed, f"expected the pr_auc check to pass with a margin of 1.0, got {got.detail!r}"


def test_slice(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """a challenger blind on one channel fails the per-slice check, which names the channel"""
    m, t = tiny_model.pipeline, tiny_model.threshold
    got = check(compare(impl, SETTINGS, BlindOn(m, "contactless"), m, holdout, t), "slices")
    assert not got.passed and "contactless" in got.detail, (
        f"expected a failed slices check naming contactless, got passed={got.passed}, {got.detail!r}"
    )


def test_slice_margin(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """the slice margin is a tolerance: a per-channel loss within it passes the slices check

    The check fails only when the largest loss exceeds settings.gate_slice_margin.
    """
    m, t = tiny_model.pipeline, tiny_model.threshold
    lenient = SETTINGS.model_copy(update={"gate_slice_margin": 1.0})
    got = check(compare(impl, lenient, BlindOn(m, "contactless"), m, holdout, t), "slices")
    assert got.passed, f"expected the slices check to pass with a slice margin of 1.0, got {got.detail!r}"


def test_slice_row_order(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """the slices follow the holdout's row order, whatever its index

    A split leaves the holdout's index shuffled; the scores follow its rows, not its index labels:
    select a slice with a boolean mask (.to_numpy()), never with holdout.index.
    """
    m, t = tiny_model.pipeline, tiny_model.threshold
    shuffled = holdout.sample(frac=1.0, random_state=11)  # the same rows, index labels out of order
    got = check(compare(impl, SETTINGS, BlindOn(m, "contactless"), m, shuffled, t), "slices")
    assert not got.passed and "contactless" in got.detail, (
        f"expected a failed slices check naming contactless on a holdout with a shuffled index, "
        f"got passed={got.passed}, {got.detail!r}"
    )


def test_thin_slice(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """a slice with fewer than SLICE_MIN_FRAUDS frauds is not judged

    Count the frauds of the slice (its labels sum) before computing its PR-AUC.
    """
    m, t = tiny_model.pipeline, tiny_model.threshold
    # Keep the contactless frauds the champion ranks highest: judged, the blind challenger's loss
    # there (about 0.25) would fail the check; not judged, the other channels show no loss.
    scores = fraud_model.scores(m, holdout[SCHEMA.names])
    frauds = np.flatnonzero((holdout[SLICE_COLUMN] == "contactless") & (holdout[SCHEMA.label] == 1))
    ranked = frauds[np.argsort(-scores[frauds])]  # positions, best-scored first
    rows = holdout.drop(index=holdout.index[ranked[SLICE_MIN_FRAUDS - 1 :]]).reset_index(drop=True)
    got = check(compare(impl, SETTINGS, BlindOn(m, "contactless"), m, rows, t), "slices")
    assert got.passed, (
        f"expected contactless ({SLICE_MIN_FRAUDS - 1} frauds) not to be judged, got {got.detail!r}"
    )


def test_min_frauds_slice(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """a slice with exactly SLICE_MIN_FRAUDS frauds is judged

    Fewer than SLICE_MIN_FRAUDS is not judged: SLICE_MIN_FRAUDS itself is.
    """
    m, t = tiny_model.pipeline, tiny_model.threshold
    rows = thin(
        thin(holdout, ["card_present", "online"], SLICE_MIN_FRAUDS - 1), ["contactless"], SLICE_MIN_FRAUDS
    )
    checks = compare(impl, SETTINGS, m, m, rows, t)
    got = [c.name for c in checks]
    assert "slices" in got, (
        f"expected a slices check judging contactless ({SLICE_MIN_FRAUDS} frauds), got the checks {got}"
    )


def test_no_legit_slice(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """a slice without a legitimate row is not judged

    A PR-AUC on frauds only is 1.0 for any model: it says nothing. Judge a slice only when its
    labels hold both classes.
    """
    m, t = tiny_model.pipeline, tiny_model.threshold
    rows = only_frauds(thin(holdout, ["card_present", "online"], SLICE_MIN_FRAUDS - 1), "contactless")
    got = [c.name for c in compare(impl, SETTINGS, m, m, rows, t)]
    assert "slices" not in got, (
        f"expected no slices check (contactless has frauds only, the others {SLICE_MIN_FRAUDS - 1} "
        f"frauds), got the checks {got}"
    )


def test_no_slice(impl: ModuleType, tiny_model: TinyModel, holdout: pd.DataFrame) -> None:
    """when no slice has enough frauds to judge, there is no slices check"""
    m, t = tiny_model.pipeline, tiny_model.threshold
    rows = thin(holdout, sorted(holdout[SLICE_COLUMN].astype(str).unique()), SLICE_MIN_FRAUDS - 1)
    v = impl.evaluate(SETTINGS, m, t, rows, champion=m, champion_threshold=t)
    assert "slices" not in names(v), f"expected no slices check, got the checks {names(v)}"
