"""Grader of lab 5 / canary-judge (exercises/lab5/judge.py): the verdict, measured over simulated rollouts.

The judge is open-ended, so it is graded on what it decides over hundreds of rollouts simulated
by mlops_lab.bench.canary (the reference's `make bench`), with your `judge` in the reference's
place (`rate_of(..., decide=impl.judge)`). Each rollout follows the controller's real look
schedule for the default Settings at 50 requests a second: a 60 s shadow phase (6 looks on
500 to 3,000 paired requests), then 5/25/50% steps of 60 s (18 looks, canary samples 25 to
2,400), judged with the controller's JudgeConfig (mlops_lab.canary.controller.judge_config:
alpha 0.01, half for each phase). Scores come from real models on generated data, built once
and kept between runs (labs.grading.cached): a champion trained on 20,000 baseline rows
scoring 50,000 production rows; a model trained on amounts in cents and served dollars (a
training/serving skew, with the expectation recorded on the export's view); three retrains on
covariate_shift, prior_shift and concept_drift data with their recorded expectation.
Latencies are lognormal around 1 ms, errors 0.05% of requests.

  A/A             300 rollouts of identical models: at most 3 rolled back (1%). The reference:
                  0, as in the bench.
  looks           the same 300 rollouts without the minimum effect size on scores and decisions
                  (score_tolerance_sd = decision_tolerance = 0): the alpha spending alone must
                  hold false rollbacks to 1%. The reference: 1 (seeds 10 and 11 both); the naive
                  judge that tests at alpha at every look (sequential=False) rolls back 11 (3.7%),
                  and 39 (13%) with the guardrails' tolerances at 0 as well (make bench).
  regressions     a skew (in a full rollout and in one without shadow phase), +1 point of
                  errors, +25% latency: each rolled back in at least 95 of 100 rollouts. The
                  reference: 100 of 100 each.
  good retrains   each of the three promoted in at least 95 of 100 rollouts. The reference: 100.

And the contract the controller relies on, on small hand-made looks with the same scores
(checked first: they take milliseconds, the rollouts about 15 s in all on the reference):
too little data is INCONCLUSIVE, the fraction carries from look to look and the looks spend at
most alpha, a look with no new samples spends nothing, the spending function's shape, shadow
mode judges request by request, differences within the tolerances never fail, the p99 SLO, and
the latency floor. No HTTP and no model servers: the real loop (tests/system/test_canary.py)
takes minutes per rollout, and these measurements need hundreds of rollouts.
"""

from __future__ import annotations

import importlib
import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from mlops_lab.bench.canary import (
    BASE_ERROR_RATE,
    RATE_RPS,
    Fault,
    Look,
    Pool,
    clopper_pearson_upper,
    look_schedule,
    rate_of,
)
from mlops_lab.canary.controller import judge_config
from mlops_lab.canary.expectation import expectation_from_scores
from mlops_lab.canary.judgement import Expectation, JudgeConfig, Judgement, Paired, Variant, logit
from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.grading import cached
from mlops_lab.lifecycle.model import Hyperparams, budget_threshold, build_pipeline, scores
from mlops_lab.settings import Settings

AA_RUNS = 300
MAX_FALSE_ROLLBACKS = 3  # 1% of AA_RUNS
POWER_RUNS = 100
MIN_DETECTED = 95  # of POWER_RUNS
GOOD_RUNS = 100
MIN_PASSED = 95  # of GOOD_RUNS
AA_SEED = 10  # the bench's seeds, so that the figures here are the bench's
NONE = Fault("none")
GOOD_SCENARIOS = ("covariate_shift", "prior_shift", "concept_drift")
NO_MIN_EFFECT = {"score_tolerance_sd": 0.0, "decision_tolerance": 0.0}


@dataclass(frozen=True)
class World:
    looks: list[Look]  # the default rollout: shadow phase, then the split steps
    config: JudgeConfig  # as the controller builds it (alpha halved between the phases)
    split_looks: list[Look]  # a rollout without shadow phase (canary_shadow_s = 0)
    split_config: JudgeConfig  # its config: the whole alpha for the one phase
    threshold: float
    aa: Pool
    aa_expect: Expectation
    skew: Pool
    skew_expect: Expectation
    good: list[tuple[str, Pool, Expectation]]
    naive: dict[str, Any]  # the reference judge at alpha every look, without the minimum effect


# What the world is computed with: a change to any of them rebuilds the cached world.
WORLD_SOURCES = (
    "mlops_lab.bench.canary",
    "mlops_lab.canary.controller",
    "mlops_lab.canary.expectation",
    "mlops_lab.canary.judge",
    "mlops_lab.canary.judgement",
    "mlops_lab.data.generator",
    "mlops_lab.data.schema",
    "mlops_lab.lifecycle.model",
    "mlops_lab.settings",
)


@pytest.fixture(scope="session")
def world() -> World:
    """Five real models and their scores, and the naive judge's 300 rollouts (together 15 s on a
    busy 2-core machine): kept between runs, rebuilt when any module they come from changes."""
    sources = [sys.modules[__name__], *(importlib.import_module(name) for name in WORLD_SOURCES)]
    kept = cached("lab5-judge-world", sources, lambda: vars_of(build_world()))
    return World(**kept)


def vars_of(world: World) -> dict[str, Any]:
    return {f.name: getattr(world, f.name) for f in fields(World)}


def fit(frame: Any) -> tuple[Any, float]:
    model = build_pipeline(Hyperparams()).fit(frame[SCHEMA.names], frame[SCHEMA.label])
    return model, budget_threshold(scores(model, frame[SCHEMA.names]), 0.05)


def build_world() -> World:
    """The bench's models, data and seeds (mlops_lab.bench.canary.run)."""
    settings = Settings.model_construct()  # the defaults, whatever MLOPS_* says here
    no_shadow = settings.model_copy(update={"canary_shadow_s": 0.0})
    config = judge_config(settings)
    looks = look_schedule(settings, RATE_RPS)

    champion, thr = fit(generate("baseline", 20_000, seed=1))
    traffic = features_only(generate("baseline", 50_000, seed=2))
    champ = scores(champion, traffic)
    aa = Pool(champ, champ, thr, thr)
    aa_expect = expectation_from_scores(champ[:5000], champ[:5000], thr, thr)

    export = generate("baseline", 20_000, seed=3)
    skewed, skew_thr = fit(export.assign(amount=export["amount"] * 100))
    offline = traffic.iloc[:5000]  # evaluated on the export's view: cents, as it was trained
    skew_expect = expectation_from_scores(
        champ[:5000], scores(skewed, offline.assign(amount=offline["amount"] * 100)), thr, skew_thr
    )
    skew = Pool(champ, scores(skewed, traffic), thr, skew_thr)  # served dollars

    good = []
    for i, scenario in enumerate(GOOD_SCENARIOS):
        drifted = generate(scenario, 30_000, seed=40 + i)
        retrained, r_thr = fit(drifted.iloc[:20_000])
        recent = features_only(drifted.iloc[20_000:25_000])
        live = features_only(generate(scenario, 50_000, seed=60 + i))
        expect = expectation_from_scores(scores(champion, recent), scores(retrained, recent), thr, r_thr)
        good.append((scenario, Pool(scores(champion, live), scores(retrained, live), thr, r_thr), expect))

    naive_config = replace(config, sequential=False, **NO_MIN_EFFECT)  # the reference's judge
    return World(
        looks=looks,
        config=config,
        split_looks=look_schedule(no_shadow, RATE_RPS, shadow=False),
        split_config=judge_config(no_shadow),
        threshold=thr,
        aa=aa,
        aa_expect=aa_expect,
        skew=skew,
        skew_expect=skew_expect,
        good=good,
        naive=rate_of(AA_RUNS, AA_SEED, aa, aa_expect, naive_config, looks, NONE),
    )


def rollouts(
    impl: ModuleType,
    runs: int,
    seed: int,
    pool: Pool,
    expect: Expectation,
    config: JudgeConfig,
    looks: list[Look],
    fault: Fault = NONE,
) -> dict[str, Any]:
    return rate_of(runs, seed, pool, expect, config, looks, fault, decide=impl.judge)


def share(result: dict[str, Any]) -> str:
    k, n = result["rolled_back"], result["runs"]
    return f"{k} ({k / n:.1%}, 95% upper bound {clopper_pearson_upper(k, n):.1%})"


def detected(result: dict[str, Any]) -> str:
    k, n = result["rolled_back"], result["runs"]
    median = result["median_canary_samples_to_rollback"]
    after = f", a median {median:.0f} canary samples to the rollback" if median is not None else ""
    return f"{k} of {n} ({k / n:.0%}{after})"


# ---------------------------------------------------------------- hand-made looks: the contract
RNG_SEED = 5


def variant(
    score: np.ndarray, threshold: float, latency_ms: np.ndarray | None = None, errors: int = 0
) -> Variant:
    if latency_ms is None:
        latency_ms = np.random.default_rng(score.size).lognormal(0.0, 0.35, size=score.size)
    return Variant.of(score, score >= threshold, latency_ms, errors=errors)


def draw(world: World, n: int, seed: int) -> np.ndarray:
    """n production scores of the champion (rows drawn from the pool)."""
    rng = np.random.default_rng(seed)
    return world.aa.champion[rng.integers(0, world.aa.champion.size, size=n)]


def moved(score: np.ndarray, logits: np.ndarray | float) -> np.ndarray:
    return 1 / (1 + np.exp(-(logit(score) + logits)))


def pairs(stable: np.ndarray, canary: np.ndarray, threshold: float) -> Paired:
    return Paired(stable, canary, stable >= threshold, canary >= threshold)


def look(impl: ModuleType, what: str, *args: Any, **kwargs: Any) -> Judgement:
    """impl.judge(*args, **kwargs); a crash is reported as the check's failure, in words."""
    try:
        return impl.judge(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as exc:
        pytest.fail(f"expected a Judgement for {what}, got {type(exc).__name__}: {exc}", pytrace=False)


def test_too_little_data(impl: ModuleType, world: World) -> None:
    """no data, or fewer than min_samples, is INCONCLUSIVE: never PASS (nor a crash)

    Check n (paired.n in shadow mode, canary.n in split mode) and stable.n against
    config.min_samples before computing anything: a quantile of no latencies raises, and a
    canary that answered nothing has shown nothing.
    """
    thr, cfg = world.threshold, JudgeConfig()
    short = cfg.min_samples - 1
    empty = variant(np.zeros(0), thr)
    s, c = draw(world, 3000, 1), draw(world, 3000, 2)
    cases: list[tuple[str, Variant, Variant, Paired | None]] = [
        ("no data at all", empty, empty, None),
        ("3,000 stable samples and no canary sample", variant(s, thr), empty, None),
        (f"{short} canary samples (split)", variant(s, thr), variant(c[:short], thr), None),
        (f"{short} stable samples (split)", variant(s[:short], thr), variant(c, thr), None),
        (
            f"{short} pairs (shadow)",
            variant(s[:short], thr),
            variant(s[:short], thr),
            pairs(s[:short], s[:short], thr),
        ),
        ("no pairs (shadow)", empty, empty, pairs(np.zeros(0), np.zeros(0), thr)),
    ]
    for what, stable, canary, paired in cases:
        j = look(impl, what, stable, canary, world.aa_expect, cfg, paired=paired)
        assert j.verdict == "INCONCLUSIVE", (
            f"expected INCONCLUSIVE for {what} (min_samples={cfg.min_samples}), got {j.verdict}: {j.reason}"
        )
    # Broken-looking but too short: still no PASS (the controller's health checks handle it).
    broken = variant(moved(c[:short], -3.0), thr, np.full(short, 200.0), errors=100)
    j = look(impl, "a broken-looking short canary", variant(s, thr), broken, world.aa_expect, cfg)
    assert j.verdict != "PASS", (
        f"expected no PASS on {short} canary samples (skewed, slow, 100 errors), got PASS: {j.reason}"
    )


def split_looks_aa(world: World, sizes: Sequence[int]) -> list[tuple[Variant, Variant]]:
    """Growing split-mode data of identical models, stable with 4 times the canary's samples."""
    s, c = draw(world, 4 * max(sizes), 11), draw(world, max(sizes), 12)
    return [(variant(s[: 4 * n], world.threshold), variant(c[:n], world.threshold)) for n in sizes]


def test_fraction_carries(impl: ModuleType, world: World) -> None:
    """the fraction carries from look to look: each look spends what spending(t) added, all at most alpha

    fraction = min(1, canary samples / planned_samples), never below previous_fraction; the
    look's alpha_spent is look_alpha(config, fraction, previous_fraction), and the controller
    passes Judgement.fraction back as the next look's previous_fraction.
    """
    cfg = JudgeConfig()
    sizes = [300, 500, 800, 1200, 2000]
    previous, total = 0.0, 0.0
    for stable, canary in split_looks_aa(world, sizes):
        j = look(
            impl,
            f"{canary.n} canary samples",
            stable,
            canary,
            world.aa_expect,
            cfg,
            previous_fraction=previous,
        )
        want = min(1.0, canary.n / cfg.planned_samples)
        assert j.verdict == "PASS" and math.isclose(j.fraction, want, abs_tol=1e-12), (
            f"expected PASS with fraction {want:.3f} (canary samples / planned_samples, at most 1) on "
            f"{canary.n} canary and {stable.n} stable samples of identical models after a look at "
            f"{previous:.3f}, got {j.verdict} with fraction {j.fraction:.3f}: {j.reason}"
        )
        spent = impl.spending(want, cfg.alpha) - impl.spending(previous, cfg.alpha)
        assert math.isclose(j.alpha_spent, spent, rel_tol=1e-6, abs_tol=1e-15), (
            f"expected the look from t={previous:.3f} to t={want:.3f} to spend spending({want:.3f}) - "
            f"spending({previous:.3f}) = {spent:.3g}, got alpha_spent {j.alpha_spent:.3g}"
        )
        total += j.alpha_spent
        previous = j.fraction
    assert total <= cfg.alpha * (1 + 1e-9), (
        f"expected the {len(sizes)} looks of one rollout to spend at most alpha={cfg.alpha} together, "
        f"got {total:.4g}"
    )


def test_no_new_samples(impl: ModuleType, world: World) -> None:
    """a look with no new canary samples since the last one is INCONCLUSIVE and spends nothing

    Its fraction is not above previous_fraction (the same data, or past planned_samples):
    there is nothing new to test, and testing the same data again would spend alpha twice.
    Return previous_fraction and alpha_spent 0.
    """
    cfg = JudgeConfig()
    (stable, canary), (big_stable, big_canary) = split_looks_aa(world, [1000, 3000])
    s = draw(world, 1000, 13)
    shadow = (variant(s, world.threshold), variant(s, world.threshold), pairs(s, s, world.threshold))
    cases = [
        ("the same 1,000 canary samples again (t = 0.5)", stable, canary, None, 0.5),
        ("3,000 canary samples past a look at t = 1", big_stable, big_canary, None, 1.0),
        ("the same 1,000 pairs again (shadow, t = 0.5)", *shadow, 0.5),
    ]
    for what, st, ca, paired, previous in cases:
        j = look(impl, what, st, ca, world.aa_expect, cfg, previous_fraction=previous, paired=paired)
        assert (j.verdict, j.alpha_spent, j.fraction) == ("INCONCLUSIVE", 0.0, previous), (
            f"expected INCONCLUSIVE, alpha_spent 0 and fraction {previous} for {what}, got {j.verdict}, "
            f"alpha_spent {j.alpha_spent:.3g}, fraction {j.fraction}: {j.reason}"
        )


def test_spending(impl: ModuleType) -> None:
    """spending(0) = 0, spending(1) = alpha, increasing, tiny early; look_alpha spends the difference

    An O'Brien-Fleming-type function, 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)), t capped at 1. Pocock-
    or linear-type spending (alpha * t) would use a quarter of alpha by t = 0.25, on the looks
    that see the least data. Without config.sequential, look_alpha is alpha at every look.
    """
    grid = [i / 20 for i in range(21)]
    for alpha in (0.01, 0.005, 0.05):
        ends = [impl.spending(t, alpha) for t in (0.0, 1.0, 1.5)]
        want = [0.0, alpha, alpha]
        assert all(
            math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-12) for g, w in zip(ends, want, strict=True)
        ), f"expected spending(t, {alpha}) at t = 0, 1, 1.5 (t is capped at 1) to be {want}, got {ends}"
        steps = [(t, impl.spending(t, alpha)) for t in grid]
        rising = all(b >= a and (b > a or t < 0.25) for (t, a), (_, b) in itertools.pairwise(steps))
        assert rising, f"expected spending(t, {alpha}) increasing in t (strictly from t = 0.25), got {steps}"
        early = impl.spending(0.25, alpha)
        assert early <= alpha / 20, (
            f"expected spending(0.25, {alpha}) at most alpha/20 = {alpha / 20:.3g} (O'Brien-Fleming-type: "
            f"{2.58e-5 * alpha / 0.01:.2g} for alpha 0.01), got {early:.3g} ({early / alpha:.0%} of alpha)"
        )
    cfg = JudgeConfig()
    want_step = impl.spending(0.5, cfg.alpha) - impl.spending(0.25, cfg.alpha)
    got = [impl.look_alpha(cfg, 0.5, 0.25), impl.look_alpha(cfg, 0.25, 0.5)]
    assert math.isclose(got[0], want_step, rel_tol=1e-9) and got[1] == 0, (
        f"expected look_alpha from t = 0.25 to 0.5 to be spending(0.5) - spending(0.25) = {want_step:.3g}, "
        f"and 0 from 0.5 back to 0.25 (never negative), got {got[0]:.3g} and {got[1]:.3g}"
    )
    naive = impl.look_alpha(replace(cfg, sequential=False), 0.5, 0.25)
    assert naive == cfg.alpha, (
        f"expected look_alpha = alpha = {cfg.alpha} with sequential=False, got {naive:.3g}"
    )


def test_shadow_pairs(impl: ModuleType, world: World) -> None:
    """shadow mode judges request by request: a small shift and swapped decisions fail

    The same 1,000 requests through both models: the per-request logit differences cancel the
    traffic's own spread (their SE is a fraction of two independent means'), and a canary that
    flags as many requests but not the same ones disagrees on about 10% of them (expectation:
    agreement 100%). Judged as two independent samples, both pass.
    """
    cfg, thr = JudgeConfig(), world.threshold
    rng = np.random.default_rng(RNG_SEED)
    s = draw(world, 1000, 14)
    sd = world.aa_expect.score_sd
    shifted = moved(s, 0.2 * sd + rng.normal(0.0, 0.1 * sd, size=s.size))  # 0.1 SD past the tolerance
    swapped = rng.permutation(s)  # the same scores on other requests: misaligned features
    cases = [
        ("a 0.2 SD score shift, +/- 0.1 SD per request", shifted),
        ("the same scores on other requests (decisions agree on 90%)", swapped),
    ]
    for what, c in cases:
        j = look(impl, what, variant(s, thr), variant(c, thr), world.aa_expect, cfg, paired=pairs(s, c, thr))
        split = look(impl, what, variant(s, thr), variant(c, thr), world.aa_expect, cfg)
        assert j.verdict == "FAIL", (
            f"expected FAIL in shadow mode for {what} on 1,000 pairs (t = 0.5), got {j.verdict}: {j.reason} "
            f"(judged as two independent samples: {split.verdict})"
        )


def test_within_tolerance(impl: ModuleType, world: World) -> None:
    """a difference within the tolerances never fails, however many samples show it

    One-sided past the tolerance: |observed - expected| - tolerance over its SE, with
    score_tolerance_sd in units of expectation.score_sd and decision_tolerance absolute. A test
    of "any difference" rolls back irrelevant changes as soon as the samples are many.
    """
    cfg, thr = JudgeConfig(), world.threshold
    rng = np.random.default_rng(RNG_SEED)
    sd = world.aa_expect.score_sd
    s, c = draw(world, 20_000, 15), draw(world, 20_000, 16)
    p = s[:2000]
    lower = float(np.quantile(c, 1 - world.aa_expect.flagged_champion - 0.01))  # flags 1 point more
    cases = [
        (
            "2,000 pairs shifted by 0.08 SD (+/- 0.02 SD per request), tolerance 0.1 SD",
            variant(p, thr),
            variant(moved(p, 0.08 * sd + rng.normal(0.0, 0.02 * sd, size=p.size)), thr),
            "shadow",
        ),
        (
            "20,000 canary samples shifted by 0.08 SD, tolerance 0.1 SD",
            variant(s, thr),
            variant(moved(c, 0.08 * sd), thr),
            None,
        ),
        (
            "20,000 canary samples flagging 1 point more, tolerance 2 points",
            variant(s, thr),
            variant(c, lower),
            None,
        ),
    ]
    for what, stable, canary, mode in cases:
        paired = None
        if mode == "shadow":  # the same requests: each variant's own decisions, row by row
            paired = Paired(stable.scores, canary.scores, stable.decisions, canary.decisions)
        j = look(impl, what, stable, canary, world.aa_expect, cfg, paired=paired)
        assert j.verdict == "PASS", f"expected PASS for {what}, got {j.verdict}: {j.reason}"


def test_p99_slo(impl: ModuleType, world: World) -> None:
    """the p99 SLO fails a canary over it at the first look, unless stable is over it too

    A promise to users, not a statistical test: canary p99 > slo_p99_ms while stable's p99 is
    within it fails outright, whatever alpha this look has (almost none at t = 0.25). When
    stable is over it as well, the machine is slow, not the canary.
    """
    cfg, thr = JudgeConfig(), world.threshold
    rng = np.random.default_rng(RNG_SEED)
    s, c = draw(world, 2000, 17), draw(world, 500, 18)

    def stalls(n: int) -> np.ndarray:
        lat = rng.lognormal(0.0, 0.35, size=n)
        lat[rng.permutation(n)[: n // 50]] = 80.0  # 2% of requests stall at 80 ms: p99 is 80 ms
        return lat

    stable, canary = variant(s, thr), variant(c, thr, stalls(c.size))
    fast = look(impl, "a canary over the SLO", stable, canary, world.aa_expect, cfg)
    assert fast.verdict == "FAIL", (
        f"expected FAIL for a canary whose p99 is 80 ms (SLO {cfg.slo_p99_ms:.0f} ms) while stable's is "
        f"{np.quantile(stable.latency_ms, 0.99):.1f} ms, at the first look (500 canary samples), "
        f"got {fast.verdict}: {fast.reason}"
    )
    slow = look(impl, "both over the SLO", variant(s, thr, stalls(s.size)), canary, world.aa_expect, cfg)
    assert slow.verdict == "PASS", (
        f"expected PASS when stable's p99 is over the {cfg.slo_p99_ms:.0f} ms SLO as well (the machine, "
        f"not the canary), got {slow.verdict}: {slow.reason}"
    )


def test_latency_floor(impl: ModuleType, world: World) -> None:
    """microsecond jitter is not a latency regression: latencies under latency_floor_ms are equal

    A 40 us scorer taking 80 us is twice as slow and nobody can feel it against a 50 ms SLO: floor
    both variants' latencies at latency_floor_ms before comparing them.
    """
    cfg, thr = JudgeConfig(), world.threshold
    rng = np.random.default_rng(RNG_SEED)
    s, c = draw(world, 3000, 19), draw(world, 3000, 20)
    stable = variant(s, thr, rng.lognormal(np.log(0.04), 0.3, size=s.size))
    canary = variant(c, thr, rng.lognormal(np.log(0.08), 0.3, size=c.size))
    j = look(impl, "microsecond latencies", stable, canary, world.aa_expect, cfg)
    assert j.verdict == "PASS", (
        f"expected PASS for a canary at 0.08 ms against stable's 0.04 ms (floor {cfg.latency_floor_ms} ms), "
        f"got {j.verdict}: {j.reason}"
    )


# ---------------------------------------------------------------- measured over many rollouts
# After the contract checks (cheap ones first: a wrong judge fails fast, on a mutant too).
def expect_detected(got: dict[str, Any], what: str) -> None:
    runs = got["runs"]
    assert got["rolled_back"] >= MIN_DETECTED, (
        f"expected {what} rolled back in at least {MIN_DETECTED} of {runs} rollouts, got {detected(got)}"
    )


def test_detects_errors(impl: ModuleType, world: World) -> None:
    """an error regression (+1 point of errors) is rolled back >= 95% of the time

    Count errors over requests (Variant.requests), not over scored samples, and test the
    canary's rate minus stable's past error_tolerance, one-sided.
    """
    fault = Fault("+1 point error rate", error_rate=BASE_ERROR_RATE + 0.01)
    got = rollouts(impl, POWER_RUNS, 20, world.aa, world.aa_expect, world.config, world.looks, fault)
    expect_detected(got, "a canary with 1.05% errors against stable's 0.05%")


def test_detects_latency(impl: ModuleType, world: World) -> None:
    """a latency regression (+25%) is rolled back >= 95% of the time

    Stable's latency_quantile (p95) is the yardstick: an equally fast canary has 5% of its
    requests above it; a slower one has many more.
    """
    fault = Fault("+25% latency", latency_factor=1.25)
    got = rollouts(impl, POWER_RUNS, 20, world.aa, world.aa_expect, world.config, world.looks, fault)
    expect_detected(got, "a canary 25% slower than stable")


def test_detects_skew(impl: ModuleType, world: World) -> None:
    """a training/serving skew (trained on cents, served dollars) is rolled back >= 95% of the time

    Offline the skewed model agreed with the champion (its expectation was recorded on the
    export's view, in cents); online it sees dollars and scores lower. Compare the online score
    shift with expectation.score_shift, in shadow mode per request (paired), in split mode as two
    independent means.
    """
    full = rollouts(impl, POWER_RUNS, 30, world.skew, world.skew_expect, world.config, world.looks)
    expect_detected(full, "a skewed canary (shadow phase, then split steps)")
    split = rollouts(
        impl, POWER_RUNS, 31, world.skew, world.skew_expect, world.split_config, world.split_looks
    )
    expect_detected(split, "a skewed canary in a rollout without shadow phase (split steps only)")


def test_aa_false_rollbacks(impl: ModuleType, world: World) -> None:
    """A/A: at most 1% of 300 rollouts of identical models rolled back

    The same model as stable and canary, 24 looks each: judge against the expectation with
    one-sided tests past a tolerance, and spend alpha over the looks (spending, look_alpha).
    """
    got = rollouts(impl, AA_RUNS, AA_SEED, world.aa, world.aa_expect, world.config, world.looks)
    assert got["rolled_back"] <= MAX_FALSE_ROLLBACKS, (
        f"expected at most {MAX_FALSE_ROLLBACKS} false rollbacks in {AA_RUNS} A/A rollouts (1%), got "
        f"{share(got)}; a median {got['median_canary_samples_to_rollback']} canary samples to the rollback"
    )


def test_alpha_spent_over_looks(impl: ModuleType, world: World) -> None:
    """repeated looks: without the minimum effect size, alpha spending alone holds A/A to 1%

    24 looks at alpha each roll back about 4% of good canaries (the naive judge, measured here):
    each look may only use what spending(t) adds since the previous look's fraction, split over
    its tests, so that all the looks of a rollout together use at most alpha.
    """
    config = replace(world.config, **NO_MIN_EFFECT)
    got = rollouts(impl, AA_RUNS, AA_SEED, world.aa, world.aa_expect, config, world.looks)
    assert got["rolled_back"] <= MAX_FALSE_ROLLBACKS, (
        f"expected at most {MAX_FALSE_ROLLBACKS} false rollbacks in {AA_RUNS} A/A rollouts (1%) with "
        f"score_tolerance_sd = decision_tolerance = 0, got {share(got)}; the naive judge that tests at "
        f"alpha at every look rolls back {share(world.naive)} of the same rollouts"
    )


def test_good_retrains_pass(impl: ModuleType, world: World) -> None:
    """good retrains (covariate shift, prior shift, concept drift) are promoted >= 95% of the time

    A retrain on drifted data scores differently from the champion by design (after the prior
    shift by 0.8 SD): compare the online differences with the recorded expectation
    (score_shift, flagged_shift, agreement), never with zero.
    """
    for i, (scenario, pool, expect) in enumerate(world.good):
        got = rollouts(impl, GOOD_RUNS, 50 + i, pool, expect, world.config, world.looks)
        passed = got["runs"] - got["rolled_back"]
        assert passed >= MIN_PASSED, (
            f"expected a good retrain on {scenario} data promoted in at least {MIN_PASSED} of "
            f"{GOOD_RUNS} rollouts, got {passed} (rolled back {detected(got)}); its expectation: "
            f"{expect.describe()}"
        )
