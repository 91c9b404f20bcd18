"""A solution of lab 5's `canary-judge` (exercises/lab5/judge.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab5/canary-judge.toml applied to it (a check must fail on each).

Each test is the same shape: how far the online number is from what the evaluation recorded,
minus the slack we agreed not to care about, in standard errors. So every test becomes one
(name, z, detail) triple, and one boundary for the whole look decides them all: the look's
alpha (what the O'Brien-Fleming-type spending adds since the previous look) split evenly
between the tests. The p99 SLO is not a statistical test but a promise to users, so it sits
apart and fails on its own.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from mlops_lab.canary.judgement import (
    MIN_SE,
    Check,
    Expectation,
    JudgeConfig,
    Judgement,
    Paired,
    Variant,
    Verdict,
    logit,
)

__all__ = [
    "Check",
    "Expectation",
    "JudgeConfig",
    "Judgement",
    "Paired",
    "Variant",
    "Verdict",
    "judge",
    "look_alpha",
    "spending",
]

Measured = tuple[str, float, str]  # (check name, one-sided z beyond the tolerance, detail)


def spending(t: float, alpha: float) -> float:
    """The alpha spent once the information fraction reaches t (O'Brien-Fleming-type)."""
    if t <= 0:
        return 0.0
    # Lan-DeMets: the z a single test at t = 1 would use, stretched by 1/sqrt(t). Early looks
    # see little data and get a huge boundary, so they spend almost nothing; at t = 1 this is
    # exactly alpha. norm.sf is 1 - cdf without the rounding of 1 - 0.9999999...
    critical = norm.isf(alpha / 2)
    return float(2 * norm.sf(critical / math.sqrt(min(t, 1.0))))


def look_alpha(config: JudgeConfig, fraction: float, previous_fraction: float) -> float:
    """The alpha this look may use, all its tests together."""
    if not config.sequential:
        return config.alpha  # the naive judge: the bench shows what it costs
    # Only what was not spent before: the looks of a rollout then add up to spending(last t).
    gained = spending(fraction, config.alpha) - spending(previous_fraction, config.alpha)
    return max(gained, 0.0)


def judge(
    stable: Variant,
    canary: Variant,
    expectation: Expectation,
    config: JudgeConfig,
    *,
    previous_fraction: float = 0.0,
    paired: Paired | None = None,
) -> Judgement:
    """One look at the rollout so far. Pure: the caller carries `fraction` to the next look."""
    shadow = paired is not None
    n = paired.n if paired is not None else canary.n

    def wait(why: str) -> Judgement:
        # Nothing tested, nothing spent: the next look starts from the same fraction.
        return Judgement("INCONCLUSIVE", (), n, previous_fraction, 0.0, why, shadow)

    # Never PASS on no data: a canary that answered nothing has shown nothing.
    if min(n, stable.n) < config.min_samples:
        return wait(f"too little data: {n} canary, {stable.n} stable samples (need {config.min_samples})")
    # The information fraction counts the canary's samples (the scarce side in split mode).
    t = min(1.0, n / config.planned_samples)
    fraction = max(t, previous_fraction)
    nothing_new = fraction <= previous_fraction
    if config.sequential and nothing_new:
        # The same data again (or past the plan): testing it again would only spend alpha.
        return wait(f"no new canary samples since the last look ({n})")

    alpha = look_alpha(config, fraction, previous_fraction)
    if paired is not None:
        measured = [paired_score(paired, expectation, config), agreement(paired, expectation, config)]
    else:
        measured = [
            split_score(stable, canary, expectation, config),
            flagged(stable, canary, expectation, config),
        ]
    measured += [errors(stable, canary, config), slower(stable, canary, config)]
    # Bonferroni over the tests of this look; isf(0) is inf, so a look with nothing to spend
    # can fail nothing (but the SLO).
    limit = float(norm.isf(alpha / len(measured)))
    checks = [Check(name, z > limit, z, limit, detail) for name, z, detail in measured]
    slo = p99_slo(stable, canary, config)
    if slo is not None:
        checks.append(slo)

    bad = [c for c in checks if c.failed]
    verdict: Verdict = "FAIL" if bad else "PASS"
    if bad:
        reason = "; ".join(c.describe() for c in bad)
    else:
        reason = f"as expected on {n:,} canary samples (t = {fraction:.2f})"
    return Judgement(verdict, tuple(checks), n, fraction, alpha, reason, shadow)


def beyond(excess: float, se: float) -> float:
    """A one-sided z: how many standard errors past the tolerance (negative: within it)."""
    return excess / max(se, MIN_SE)


def rate_variance(p: float, n: int) -> float:
    # A rate of 0 seen on n samples could well be 1/n: without this floor, one error on an
    # error-free stable would be infinitely significant.
    p = min(max(p, 1.0 / n), 1.0 - 1.0 / n)
    return p * (1.0 - p) / n


def split_score(stable: Variant, canary: Variant, expectation: Expectation, config: JudgeConfig) -> Measured:
    a, b = logit(stable.scores), logit(canary.scores)
    shift = float(b.mean() - a.mean())
    # Two independent samples: both means are uncertain.
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    slack = config.score_tolerance_sd * expectation.score_sd
    off = shift - expectation.score_shift
    detail = f"score shift {shift:+.3f} logit, expected {expectation.score_shift:+.3f} within {slack:.3f}"
    return "score", beyond(abs(off) - slack, se), detail


def paired_score(pairs: Paired, expectation: Expectation, config: JudgeConfig) -> Measured:
    # The same requests through both models: the traffic's own spread cancels in the
    # differences, which is why shadow mode sees small shifts so early.
    d = logit(pairs.canary_scores) - logit(pairs.stable_scores)
    mean_diff = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(d.size)
    # The tolerance is in SDs of the champion's scores, so it means the same for every model.
    allowed = config.score_tolerance_sd * expectation.score_sd
    miss = mean_diff - expectation.score_shift  # how far from what the evaluation saw
    detail = f"paired shift {mean_diff:+.3f} logit, expected {expectation.score_shift:+.3f} +/- {allowed:.3f}"
    return "score (paired)", beyond(abs(miss) - allowed, se), detail


def flagged(stable: Variant, canary: Variant, expectation: Expectation, config: JudgeConfig) -> Measured:
    ps = float(np.mean(stable.decisions))  # each variant's flagged rate, at its own threshold
    pc = float(np.mean(canary.decisions))
    off = (pc - ps) - expectation.flagged_shift
    se = math.sqrt(rate_variance(ps, stable.n) + rate_variance(pc, canary.n))
    detail = f"flagged {ps:.1%} stable, {pc:.1%} canary; expected shift {expectation.flagged_shift:+.1%}"
    return "decision rate", beyond(abs(off) - config.decision_tolerance, se), detail


def agreement(pairs: Paired, expectation: Expectation, config: JudgeConfig) -> Measured:
    same = float(np.mean(pairs.stable_decisions == pairs.canary_decisions))
    se = math.sqrt(rate_variance(same, pairs.n))
    # One-sided: agreeing more than the evaluation did is no reason to roll back.
    shortfall = expectation.agreement - same
    detail = f"decisions agree on {same:.1%} of requests, expected {expectation.agreement:.1%}"
    return "decision agreement (paired)", beyond(shortfall - config.decision_tolerance, se), detail


def errors(stable: Variant, canary: Variant, config: JudgeConfig) -> Measured:
    # Over requests, not scores: a request that errored has no score at all.
    n_stable, n_canary = max(stable.requests, 1), max(canary.requests, 1)
    rs, rc = stable.errors / n_stable, canary.errors / n_canary
    # Under "no difference" both share one rate: pooled, it is steadier than either alone.
    both = (stable.errors + canary.errors) / (n_stable + n_canary)
    se = math.sqrt(rate_variance(both, n_stable) + rate_variance(both, n_canary))
    detail = f"error rate {rs:.2%} stable, {rc:.2%} canary (budget +{config.error_tolerance:.2%})"
    return "error rate", beyond(rc - rs - config.error_tolerance, se), detail


def slower(stable: Variant, canary: Variant, config: JudgeConfig) -> Measured:
    # Below the floor every latency is "instant": a 40 us scorer becoming 50 us is not a
    # regression, and only the ranks above stable's quantile matter.
    floored_stable = np.maximum(stable.latency_ms, config.latency_floor_ms)
    cut = float(np.quantile(floored_stable, config.latency_quantile))
    share = float(np.mean(np.maximum(canary.latency_ms, config.latency_floor_ms) > cut))
    usual = 1.0 - config.latency_quantile  # the share an equally fast canary has above the cut
    se = math.sqrt(usual * (1.0 - usual) / canary.n)
    detail = (
        f"{share:.1%} of canary requests above stable's {config.latency_quantile:.2f} quantile ({cut:.2f} ms)"
    )
    return "latency", beyond(share - usual - config.latency_tolerance, se), detail


def p99_slo(stable: Variant, canary: Variant, config: JudgeConfig) -> Check | None:
    """The users' promise: fails outright, no alpha needed; the machine's fault when stable breaks it too."""
    canary_p99 = float(np.quantile(canary.latency_ms, 0.99))
    stable_p99 = float(np.quantile(stable.latency_ms, 0.99))
    if canary_p99 > config.slo_p99_ms and stable_p99 <= config.slo_p99_ms:
        detail = (
            f"canary p99 {canary_p99:.1f} ms > SLO {config.slo_p99_ms:.0f} ms, stable {stable_p99:.1f} ms"
        )
        return Check("latency SLO", True, canary_p99, config.slo_p99_ms, detail)
    return None
