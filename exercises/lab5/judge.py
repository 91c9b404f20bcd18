"""Lab 5, exercise `canary-judge`: the verdict that promotes a canary or rolls it back by itself.

    make lab-5        grade it          make hint-5      one more hint
    Reference: reference/mlops_lab/canary/judge.py     Docs: docs/labs/lab-5-system-design.md

Every `canary_look_s` the controller hands your judge what the two variants did online so far
and asks: PASS, FAIL or INCONCLUSIVE? FAIL rolls back at once; PASS lets the rollout go to the
next step; INCONCLUSIVE waits (and a rollout that stays inconclusive too long rolls back). You
write:

  spending     the alpha spent by information fraction t: 0 at t = 0, all of it at t = 1
  look_alpha   the alpha this look may use, given the fraction reached at the previous look
  judge        one look: the checks, the verdict, and the fraction to carry to the next look

The design, and why:

  Against the expectation, not against stable. A good retrain on drifted traffic is supposed
  to score differently from the champion (after a prior shift its scores move by most of a
  standard deviation): "canary differs from stable" cannot mean "roll back". The evaluate step
  recorded an Expectation (how the challenger differed from the champion on the same
  production-like rows); the judge measures the same quantities online and compares them
  with it. A model trained on amounts in cents and served dollars (a training/serving skew)
  is the bug this catches: offline, on the export's view, it agreed with the champion.
  One-sided, with a minimum effect size. Each test asks "is it off by MORE than the
  tolerance?" (JudgeConfig: score_tolerance_sd in units of expectation.score_sd,
  decision_tolerance absolute), so a difference too small to matter never rolls back, however
  many samples make it detectable. Agreeing more than expected is never a reason to roll back.
  Guardrails. Errors: the canary's error rate above stable's by more than error_tolerance (the
  SLO's error budget). Latency: the share of canary requests slower than stable's
  latency_quantile, above 1 - latency_quantile + latency_tolerance (latencies under
  latency_floor_ms count as equally fast: 40 us against 50 us is jitter). And the absolute p99
  SLO (slo_p99_ms): a canary over it fails, unless stable is over it too (then the machine is
  slow, not the canary).
  Repeated looks. The controller looks about 24 times per rollout on growing data. Testing at
  alpha at every look rolls back a good canary far more often than alpha (the grader measures
  by how much). Spend the family-wise alpha over the rollout instead: t = canary samples /
  planned_samples (at most 1); an O'Brien-Fleming-type spending function gives almost nothing
  to the first, small looks and alpha in all at t = 1; look k tests at spending(t_k) -
  spending(t_{k-1}), split over its tests (a union bound). `sequential=False` is the naive
  judge (alpha at every look), kept so that the bench can show the difference.
  Too little data. Fewer than min_samples canary (or stable) samples: INCONCLUSIVE, never PASS,
  whatever the numbers say; nothing is tested and nothing is spent. A look with no new canary
  samples since the last one (its fraction is not above previous_fraction) has nothing new to
  spend alpha on: INCONCLUSIVE, spending nothing, the fraction unchanged.
  Two modes. Shadow: the canary scores a mirrored copy of the same requests (`paired`); the
  score test uses the per-request differences and the decision test the agreement, which
  cancel the traffic's own variance (a shift far too small to see in two samples shows in the
  pairs). Split: the variants answer different requests, so the score and decision tests
  compare two independent samples. Errors and latency always compare the two Variants.

Graded on what it does (labs/graders/lab5/test_judge.py): hundreds of simulated rollouts that
follow the controller's look schedule, with scores of real models: at most 1% false rollbacks
of identical models, at least 95% of skews, error and latency regressions rolled back, at least
95% of good retrains (covariate shift, prior shift, concept drift) promoted. Plus the contract
above.

What it works with (all from mlops_lab.canary.judgement):

    Variant        .scores (probabilities), .decisions (bool), .latency_ms, .requests (errors
                   included), .errors, .n (samples with a score)
    Paired         .stable_scores, .canary_scores, .stable_decisions, .canary_decisions, .n:
                   the same requests, row by row (shadow mode only; None in split mode)
    Expectation    .score_shift (mean logit canary - champion), .score_sd, .paired_sd,
                   .agreement, .flagged_champion, .flagged_challenger, .flagged_shift
    JudgeConfig    alpha, planned_samples, min_samples, the tolerances, latency_floor_ms,
                   latency_quantile, slo_p99_ms, sequential
    Check          (name, failed, statistic, boundary, detail): one test's outcome
    Judgement      (verdict, checks, canary_samples, fraction, alpha_spent, reason, paired):
                   `fraction` is the t this look reached; the controller passes it back as
                   previous_fraction at the next look of the same mode
    logit(scores)  scores in logits (nearly normal: means and SDs behave there)
    MIN_SE         a floor for a standard error (identical models give paired differences of 0)
    scipy.stats.norm.ppf / .cdf
    mlops_lab.bench.canary.rate_of(..., decide=judge)   runs your judge over simulated rollouts
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


def spending(t: float, alpha: float) -> float:
    """The alpha spent once the information fraction reaches t (O'Brien-Fleming-type)."""
    # TODO(lab-5): an alpha-spending function: 0 for t <= 0, alpha at t = 1 (and beyond: t is
    #  capped at 1), increasing in between, and tiny for small t. The Lan-DeMets
    #  O'Brien-Fleming-type one is 2 - 2 * Phi(z_{1 - alpha/2} / sqrt(t)) (norm.cdf, norm.ppf).
    #  Think about: at t = 0.25 it gives well under a thousandth of alpha. Why is spending almost
    #  nothing on the first looks exactly what a canary wants, and what does it cost?
    raise NotImplementedError("TODO(lab-5): the alpha-spending function")


def look_alpha(config: JudgeConfig, fraction: float, previous_fraction: float) -> float:
    """The alpha this look may use, all its tests together."""
    # TODO(lab-5): with config.sequential, what spending() adds between previous_fraction and
    #  fraction (never negative); without it (the naive judge), config.alpha at every look.
    #  Think about: the looks of one rollout add up to spending(last t) <= alpha. What breaks
    #  that sum if the caller forgets to pass the previous fraction back?
    raise NotImplementedError("TODO(lab-5): the alpha of one look")


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
    # TODO(lab-5): return Judgement(verdict, checks, canary_samples, fraction, alpha_spent,
    #  reason, paired=paired is not None).
    #  - n is paired.n in shadow mode, canary.n in split mode. Under config.min_samples (or stable
    #    under it): INCONCLUSIVE, no checks, fraction = previous_fraction, alpha_spent 0.
    #  - fraction = the larger of previous_fraction and min(1, n / planned_samples). With
    #    config.sequential, a fraction not above previous_fraction is a look with no new samples:
    #    INCONCLUSIVE, no checks, previous_fraction carried, alpha_spent 0.
    #  - alpha = look_alpha(...); split it over the tests that use it (a one-sided boundary
    #    z = norm.ppf(1 - alpha / tests); infinite when alpha is 0).
    #  - The tests, each a Check whose statistic is a one-sided z of the excess beyond its
    #    tolerance (|observed - expected| - tolerance, over its standard error):
    #      score: mean logit difference canary - stable against expectation.score_shift, within
    #        score_tolerance_sd * expectation.score_sd. Shadow: the mean and SE of the per-row
    #        differences; split: two independent means (SE from both variances).
    #      decisions: shadow: agreement below expectation.agreement - decision_tolerance; split:
    #        flagged-rate difference against expectation.flagged_shift, within decision_tolerance.
    #      errors: canary error rate minus stable's above error_tolerance (rates over requests).
    #      latency: the share of canary latencies above stable's latency_quantile (both floored
    #        at latency_floor_ms) above 1 - latency_quantile + latency_tolerance.
    #    A proportion's SE needs a floor: an observed rate of 0 is not a certainty.
    #    Plus the p99 SLO: canary p99 > slo_p99_ms while stable's p99 <= it fails outright.
    #  - FAIL if any check failed (reason: what failed, in words); else PASS.
    #  Think about: the first shadow look (t = 0.25, alpha 0.005 over 4 tests) fails a test only
    #  past z = 5.7. Which regressions still fail at that look, and why is it the right trade?
    raise NotImplementedError("TODO(lab-5): one look's verdict")
