"""The canary judge and the router's pure parts: statistics and admin without model servers."""

from __future__ import annotations

import numpy as np
import pytest
from starlette.testclient import TestClient

from mlops_lab.canary.evidence import judge_frame
from mlops_lab.canary.expectation import expectation_from_scores
from mlops_lab.canary.judge import judge, spending
from mlops_lab.canary.judgement import Expectation, JudgeConfig, Paired, Variant
from mlops_lab.canary.router import create_router
from mlops_lab.canary.split import bucket_of
from mlops_lab.canary.state import Rollout
from mlops_lab.canary.weights import Weights, shadow_id

from ..conftest import make_settings

RNG = np.random.default_rng(0)
SCORES = 1 / (1 + np.exp(-RNG.normal(-3.5, 1.2, size=20_000)))
THRESHOLD = float(np.quantile(SCORES, 0.95))


def variant(scores: np.ndarray, latency_factor: float = 1.0, errors: int = 0) -> Variant:
    lat = RNG.lognormal(0, 0.35, size=scores.size) * latency_factor
    return Variant.of(scores, scores >= THRESHOLD, lat, errors=errors)


AA = expectation_from_scores(SCORES[:5000], SCORES[:5000], THRESHOLD, THRESHOLD)


def test_identical_models_pass() -> None:
    j = judge(variant(SCORES[:10_000]), variant(SCORES[10_000:13_000]), AA, JudgeConfig())
    assert j.verdict == "PASS", j.reason


def test_too_little_data_is_inconclusive_never_pass() -> None:
    j = judge(variant(SCORES[:5000]), variant(SCORES[5000:5050]), AA, JudgeConfig(min_samples=200))
    assert j.verdict == "INCONCLUSIVE" and "too little data" in j.reason


@pytest.mark.parametrize(
    ("name", "canary"),
    [
        ("score", 1 / (1 + np.exp(-(np.log(SCORES[10_000:13_000] / (1 - SCORES[10_000:13_000])) + 0.6)))),
        ("latency", None),
        ("error rate", None),
    ],
)
def test_regressions_fail_with_the_check_that_saw_them(name: str, canary: np.ndarray | None) -> None:
    stable = variant(SCORES[:10_000])
    if name == "latency":
        c = variant(SCORES[10_000:13_000], latency_factor=1.5)
    elif name == "error rate":
        c = variant(SCORES[10_000:13_000], errors=90)
    else:
        assert canary is not None
        c = variant(canary)
    j = judge(stable, c, AA, JudgeConfig())
    assert j.verdict == "FAIL"
    assert name in [ch.name for ch in j.checks if ch.failed]


def test_a_shift_that_was_expected_passes_and_the_same_shift_unexpected_fails() -> None:
    shifted = 1 / (1 + np.exp(-(np.log(SCORES / (1 - SCORES)) + 0.5)))
    expected = expectation_from_scores(SCORES[:5000], shifted[:5000], THRESHOLD, THRESHOLD)
    stable, canary = variant(SCORES[:10_000]), variant(shifted[10_000:13_000])
    assert judge(stable, canary, expected, JudgeConfig()).verdict == "PASS"
    assert judge(stable, canary, AA, JudgeConfig()).verdict == "FAIL"


def test_paired_identical_models_pass_and_skew_fails() -> None:
    s = SCORES[:2000]
    same = Paired(s, s, s >= THRESHOLD, s >= THRESHOLD)
    assert judge(variant(s), variant(s), AA, JudgeConfig(), paired=same).verdict == "PASS"
    low = s / 10
    skew = Paired(s, low, s >= THRESHOLD, low >= THRESHOLD)
    j = judge(variant(s), variant(low), AA, JudgeConfig(), paired=skew)
    assert j.verdict == "FAIL" and j.paired


def test_alpha_spending_is_small_early_and_sums_to_alpha() -> None:
    assert spending(0.1, 0.01) < 1e-6
    assert spending(1.0, 0.01) == pytest.approx(0.01)
    assert spending(2.0, 0.01) == pytest.approx(0.01)  # capped at t = 1
    looks = [0.2, 0.4, 0.6, 0.8, 1.0]
    spent = [spending(b, 0.01) - spending(a, 0.01) for a, b in zip([0.0, *looks], looks, strict=False)]
    assert sum(spent) == pytest.approx(0.01) and all(x >= 0 for x in spent)


def test_no_new_samples_since_last_look_spends_nothing() -> None:
    j = judge(variant(SCORES[:5000]), variant(SCORES[5000:6000]), AA, JudgeConfig(), previous_fraction=1.0)
    assert j.verdict == "INCONCLUSIVE" and j.alpha_spent == 0


def test_expectation_round_trips_and_identical_is_zero_shift() -> None:
    assert Expectation.from_json(AA.to_json()) == Expectation.from_json(AA.to_json())
    assert Expectation.identical().score_shift == 0 and Expectation.identical().agreement == 1


def test_judge_frame_pairs_mirrored_rows_and_ignores_other_versions() -> None:
    import pandas as pd

    n = 400
    ids = [f"r{i}" for i in range(n)]
    s = SCORES[:n]
    rows = [
        *[(i, "stable", "1", x, x >= THRESHOLD, 1.0) for i, x in zip(ids, s, strict=True)],
        *[(shadow_id(i), "canary", "2", x, x >= THRESHOLD, 1.0) for i, x in zip(ids, s, strict=True)],
        ("old", "canary", "9", 0.99, True, 1.0),  # a stale version behind the canary: not counted
    ]
    frame = pd.DataFrame(
        rows, columns=["request_id", "variant", "model_version", "score", "decision", "latency_ms"]
    )
    r = Rollout(rollout_id="x", candidate="2", champion="1")
    counts = {"stable": {"requests": n, "errors": 0}, "canary": {"requests": n, "errors": 0}}
    j = judge_frame(frame, r, counts, JudgeConfig(min_samples=100), shadow=True)
    assert j.paired and j.canary_samples == n and j.verdict == "PASS"


def test_once_the_planned_samples_are_in_the_last_pass_stands() -> None:
    """At high traffic the split looks reach the planned samples before the last step ends; a
    later look can spend nothing, and an INCONCLUSIVE there would roll a good canary back."""
    import pandas as pd

    n = 600
    rows = [
        *[(f"s{i}", "stable", "1", x, x >= THRESHOLD, 1.0) for i, x in enumerate(SCORES[:n])],
        *[(f"c{i}", "canary", "2", x, x >= THRESHOLD, 1.0) for i, x in enumerate(SCORES[n : 2 * n])],
    ]
    frame = pd.DataFrame(
        rows, columns=["request_id", "variant", "model_version", "score", "decision", "latency_ms"]
    )
    counts = {"stable": {"requests": n, "errors": 0}, "canary": {"requests": n, "errors": 0}}
    config = JudgeConfig(min_samples=100, planned_samples=500)
    r = Rollout(rollout_id="x", candidate="2", champion="1")
    first = judge_frame(frame, r, counts, config, shadow=False)
    assert first.verdict == "PASS" and first.fraction == 1.0, first.reason
    r.fraction["split"] = first.fraction
    again = judge_frame(frame, r, counts, config, shadow=False)
    assert again.verdict == "PASS" and again.alpha_spent == 0.0 and "complete" in again.reason
    # Before the design is complete, a look without new samples is still INCONCLUSIVE.
    longer = JudgeConfig(min_samples=100, planned_samples=1_000)
    r.fraction["split"] = 0.6
    partial = judge_frame(frame, r, counts, longer, shadow=False)
    assert partial.verdict == "INCONCLUSIVE" and "no new canary samples" in partial.reason


def test_sticky_buckets_and_shadow_ids() -> None:
    assert bucket_of("card-1") == bucket_of("card-1")
    share = np.mean([bucket_of(f"card-{i}") < 25 for i in range(20_000)])
    assert 0.23 < share < 0.27
    assert shadow_id("a" * 64).endswith(":shadow") and len(shadow_id("a" * 64)) == 64


def test_router_admin_needs_the_token_validates_and_persists(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = make_settings(tmp_path)
    auth = {"authorization": f"Bearer {s.admin_token.get_secret_value()}"}
    with TestClient(create_router(s)) as client:
        assert client.get("/admin/state").status_code == 401
        bad = client.post("/admin/weights", json={"canary_weight": 150, "shadow": "yes"}, headers=auth)
        assert bad.status_code == 422
        fields = {tuple(e["loc"]) for e in bad.json()["detail"]}
        assert fields == {("body", "canary_weight"), ("body", "shadow")}
        ok = client.post("/admin/weights", json={"canary_weight": 25, "reason": "test"}, headers=auth)
        assert ok.status_code == 200 and ok.json()["canary_weight"] == 25
        metrics = client.get("/metrics").text
        assert "mlops_router_canary_weight 25.0" in metrics
    assert Weights.load(s.router_state_path).canary_weight == 25  # survives a restart
    with TestClient(create_router(s)) as client:
        assert client.get("/admin/state", headers=auth).json()["canary_weight"] == 25
        down = client.post("/v1/predict", json={"amount": 1})
        assert down.status_code == 503 and "retry-after" in down.headers  # stable unreachable


def test_microsecond_jitter_is_not_a_latency_regression() -> None:
    stable = Variant.of(SCORES[:3000], SCORES[:3000] >= THRESHOLD, RNG.lognormal(np.log(0.04), 0.3, 3000))
    slower = Variant.of(
        SCORES[3000:6000], SCORES[3000:6000] >= THRESHOLD, RNG.lognormal(np.log(0.08), 0.3, 3000)
    )
    j = judge(stable, slower, AA, JudgeConfig())
    assert j.verdict == "PASS", j.reason
