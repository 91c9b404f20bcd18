"""lab5/per-request-randomization: routed per card, judged per request: good canaries rolled back.

    make scenario S=lab5/per-request-randomization [IMPL=exercises]

The router sends whole cards to the canary (sticky: one card, one model for the whole step);
the judge treats every request as an independent sample. That holds while each card sends a
request or two. It breaks when a few cards send many requests that look alike (fraud rings
testing stolen cards, bots, a fleet card): whichever side gets those cards gets all of their
requests, so the two sides' means differ by far more than the per-request standard error says.

Measured, no processes: a few hundred simulated A/A rollouts (the canary IS the champion), each
with the controller's split schedule from the settings (5/25/50% steps, a look every
`canary_look_s`, at 50 requests a second) and the judge with the controller's configuration,
on the same clustered traffic, three ways:
  - per card routing, per request analysis (the mistake): how often an identical model is
    rolled back;
  - per card routing, per card analysis (the fix: one observation per card, the unit that was
    randomized; the judge's sample sizes counted in cards);
  - per request routing, per request analysis (consistent as well, but every heavy card flaps
    between two models, which is why the router does not do it).
Rates with 95% Clopper-Pearson intervals. Seeded: the same numbers on every run of the
reference. With IMPL=exercises the judge, the expectation and the split's bucket are yours
(exercises/lab5/judge.py, expectation.py, split.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.stats import beta

from mlops_lab.bench.canary import clopper_pearson_upper
from mlops_lab.canary.controller import judge_config
from mlops_lab.canary.judgement import Expectation, JudgeConfig, Variant
from mlops_lab.data.generator import fraud_probability, generate
from mlops_lab.labs.scenarios import Context

RUNS = 300  # A/A rollouts per way
RATE_RPS = 50.0  # production requests a second during each simulated rollout
HEAVY_CARDS = 20  # cards that send many alike requests ...
HEAVY_SHARE = 0.3  # ... together this share of all requests
ALIKE_SD = 0.3  # logit spread of one heavy card's requests around its own typical score
LATENCY_SIGMA = 0.35  # lognormal spread of per-request latency, as in the bench
SEED = 5
GOAL = 0.01  # the lab's A/A goal (the bench's): at most 1% of good canaries rolled back
# Measured on the reference over seeds 1 to 8, 300 rollouts each: the mistake rolled back 39 to 59
# (13.0% to 19.7%, lowest 95% lower bound 9.4%); the fix and per request routing 0 every time
# (upper bound 1.2%). Checked with room: the mistake at least 8%, its lower bound over 5x the fix's
# upper bound, the two others within the 1% goal.
MISTAKE_AT_LEAST = 0.08


@dataclass(frozen=True)
class World:
    """What every simulated rollout draws from, and whose code judges it."""

    logits: np.ndarray  # the champion's logit scores of generated production rows
    threshold: float
    steps: np.ndarray  # the canary weight (%) in force for each request, in arrival order
    per_look: int  # requests between two looks
    expectation: Expectation
    config: JudgeConfig
    judge: Callable[..., Any]  # the learner's where solved, like the bucket
    bucket_of: Callable[[str], int]
    one_off: np.ndarray  # the buckets of as many one-request cards as a rollout has requests


@dataclass(frozen=True)
class Arm:
    name: str
    sticky: bool  # route whole cards (the router) or toss a coin per request
    per_card: bool  # judge one observation per card, or every request


MISTAKE = Arm("per card routing, per request analysis", sticky=True, per_card=False)
FIX = Arm("per card routing, per card analysis", sticky=True, per_card=True)
COIN = Arm("per request routing, per request analysis", sticky=False, per_card=False)


def simulate(world: World, arm: Arm, rng: np.random.Generator) -> tuple[bool, str]:
    """One A/A rollout: (rolled back?, the names of the checks that failed)."""
    n = world.steps.size
    heavy = rng.random(n) < HEAVY_SHARE
    heavy_card = rng.integers(0, HEAVY_CARDS, size=n)
    typical = rng.choice(world.logits, size=HEAVY_CARDS)  # each heavy card's own kind of transaction
    alike = typical[heavy_card] + rng.normal(0.0, ALIKE_SD, n)
    logit = np.where(heavy, alike, rng.choice(world.logits, size=n))
    card = np.where(heavy, heavy_card, HEAVY_CARDS + np.arange(n))  # every other card: one request
    if arm.sticky:  # the router's rule: the card's bucket against the step's weight
        salt = int(rng.integers(1 << 40))  # new heavy cards every rollout
        heavy_buckets = [world.bucket_of(f"heavy-{salt}-{c}") for c in range(HEAVY_CARDS)]
        buckets = np.concatenate([heavy_buckets, rng.permutation(world.one_off)])
        canary = buckets[card] < world.steps
    else:
        canary = rng.random(n) * 100 < world.steps
    score = 1 / (1 + np.exp(-logit))
    flagged = score >= world.threshold
    latency = rng.lognormal(0.0, LATENCY_SIGMA, n)
    config = world.config
    if arm.per_card:  # the judge counts cards now: its sample sizes in cards too
        cards_per_request = (n * (1 - HEAVY_SHARE) + HEAVY_CARDS) / n
        config = replace(
            config,
            min_samples=round(config.min_samples * cards_per_request),
            planned_samples=round(config.planned_samples * cards_per_request),
        )

    def variant(mask: np.ndarray) -> Variant:
        def rows(x: np.ndarray) -> np.ndarray:
            return x[: mask.size][mask]

        if not arm.per_card:
            return Variant.of(rows(score), rows(flagged), rows(latency))
        _, of = np.unique(rows(card), return_inverse=True)
        size = np.bincount(of)

        def mean(x: np.ndarray) -> np.ndarray:
            return np.bincount(of, rows(x).astype(float)) / size

        return Variant.of(1 / (1 + np.exp(-mean(logit))), mean(flagged) >= 0.5, mean(latency))

    previous = 0.0
    for seen in range(world.per_look, n + 1, world.per_look):  # the split's looks, cumulative
        on_canary = canary[:seen]
        verdict = world.judge(
            variant(~on_canary), variant(on_canary), world.expectation, config, previous_fraction=previous
        )
        previous = verdict.fraction
        if verdict.verdict == "FAIL":
            return True, ", ".join(c.name for c in verdict.checks if c.failed)
    return False, ""


def measure(world: World, arm: Arm, seed: int = SEED) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    outcomes = [simulate(world, arm, rng) for _ in range(RUNS)]
    k = sum(rolled for rolled, _ in outcomes)
    return {
        "rolled_back": k,
        "rate": k / RUNS,
        "lower95": 0.0 if k == 0 else float(beta.ppf(0.025, k, RUNS - k + 1)),
        "upper95": clopper_pearson_upper(k, RUNS),
        "checks": Counter(name for rolled, why in outcomes if rolled for name in why.split(", ")),
    }


def world_of(ctx: Context) -> World:
    s = ctx.settings
    scores = fraud_probability(generate("baseline", 50_000, seed=2))  # a champion's scores
    threshold = float(np.quantile(scores, 1 - s.flag_budget))
    expect = ctx.module("canary-expectation").expectation_from_scores(
        scores[:5_000], scores[:5_000], threshold, threshold
    )
    steps = np.repeat(np.asarray(s.canary_steps), int(RATE_RPS * s.canary_step_s))
    bucket_of = ctx.module("router-split").bucket_of
    return World(
        logits=np.log(scores / (1 - scores)),
        threshold=threshold,
        steps=steps,
        per_look=int(RATE_RPS * s.canary_look_s),
        expectation=expect,
        config=judge_config(s),
        judge=ctx.module("canary-judge").judge,
        bucket_of=bucket_of,
        one_off=np.array([bucket_of(f"card-{i}") for i in range(steps.size)]),
    )


def describe(m: dict[str, Any]) -> str:
    return f"{m['rolled_back']}/{RUNS} = {m['rate']:.1%} (95% CI {m['lower95']:.1%} to {m['upper95']:.1%})"


def run(ctx: Context) -> None:
    s = ctx.settings
    world = world_of(ctx)
    ctx.info(
        f"setup: {RUNS} A/A rollouts each way (the canary is the champion): steps {list(s.canary_steps)}% "
        f"of {s.canary_step_s:.0f} s, a look every {s.canary_look_s:.0f} s at {RATE_RPS:.0f} req/s "
        f"({world.steps.size:,} requests), the controller's judge (alpha {world.config.alpha:g}, "
        f"tolerance {world.config.score_tolerance_sd:g} SD)"
    )
    ctx.inject(
        f"clustered traffic: {HEAVY_CARDS} heavy cards (fraud rings, bots) send {HEAVY_SHARE:.0%} of the "
        f"requests, about {world.steps.size * HEAVY_SHARE / HEAVY_CARDS:.0f} alike ones each; every other "
        "card sends one"
    )
    mistake = measure(world, MISTAKE)
    ctx.symptom(f"routed per card, judged per request: identical models rolled back {describe(mistake)}")
    ctx.signal(
        f"the checks that failed: {dict(mistake['checks'])}: the side that got more heavy cards looks "
        "shifted by more than the per-request standard error allows"
    )
    fix, coin = measure(world, FIX), measure(world, COIN)
    ctx.mitigate(
        f"judge per card (one observation per card, the unit the router randomized): {describe(fix)}"
    )
    ctx.info(
        f"per request routing, per request analysis: {describe(coin)}; consistent too, but each heavy "
        "card is answered by both models: two decisions for one behaviour"
    )
    ctx.check(
        fix["rate"] <= GOAL and coin["rate"] <= GOAL,
        f"judged on the unit it was randomized on, A/A rollbacks meet the {GOAL:.0%} goal "
        f"({fix['rate']:.1%} per card, {coin['rate']:.1%} per request)",
    )
    ctx.check(
        mistake["rate"] >= MISTAKE_AT_LEAST,
        f"the mistake rolls back at least {MISTAKE_AT_LEAST:.0%} of good canaries ({mistake['rate']:.1%})",
    )
    ctx.check(
        mistake["lower95"] > 5 * fix["upper95"],
        f"no accident: the mistake's lower bound {mistake['lower95']:.1%} is over 5x the fix's upper "
        f"bound {fix['upper95']:.1%}",
    )
