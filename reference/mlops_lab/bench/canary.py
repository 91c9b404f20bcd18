"""Statistical quality of the canary judge: simulated rollouts, no HTTP (part of `make bench`).

    .venv/bin/python -m mlops_lab.bench.canary [--runs 300]

Writes $MLOPS_HOME/bench/canary.json and canary.md. Every simulated rollout follows the
controller's real look schedule (the default settings: a shadow phase, then 5/25/50% steps, a
look every `canary_look_s`) at a fixed production rate, and is judged by `judge()` exactly as
the controller calls it. Scores come from real models trained on generated data:

  A/A            identical models: how often a good canary is rolled back (false rollbacks),
                 with the 95% Clopper-Pearson upper bound; the same runs through a naive judge
                 that re-tests at full alpha at every look, with and without the minimum effect
                 size, to show the inflation the alpha spending avoids.
  power          online score shift of 0.2 SD beyond the expected one; a training/serving skew
                 (a model trained on amounts in cents, served dollars); +1 point error rate;
                 +25% latency: detection rate and median canary samples to the rollback,
                 in shadow (paired) and in split (unpaired) mode.
  good retrains  candidates retrained on drifted data, judged on drifted traffic against
                 their recorded expectation: how often they pass.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.stats import beta

from mlops_lab.bench.report import write_outputs
from mlops_lab.canary.controller import judge_config
from mlops_lab.canary.expectation import expectation_from_scores
from mlops_lab.canary.judge import judge
from mlops_lab.canary.judgement import Expectation, JudgeConfig, Judgement, Paired, Variant, logit
from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle.model import Hyperparams, budget_threshold, build_pipeline, scores
from mlops_lab.settings import Settings, get_settings

RATE_RPS = 50.0  # production requests per second during the simulated rollouts
BASE_ERROR_RATE = 0.0005
LATENCY_SIGMA = 0.35  # lognormal spread of per-request latency (ms), close to what the servers show


@dataclass(frozen=True)
class Look:
    paired: bool
    stable_n: int  # cumulative samples of this mode at this look
    canary_n: int


def look_schedule(s: Settings, rate: float, *, shadow: bool = True, split: bool = True) -> list[Look]:
    """The looks the controller makes with settings `s` at `rate` req/s (cumulative per mode)."""
    looks: list[Look] = []
    if shadow and s.canary_shadow_s > 0:
        for k in range(1, int(s.canary_shadow_s // s.canary_look_s) + 1):
            n = int(rate * k * s.canary_look_s)
            looks.append(Look(True, n, n))
    if split:
        stable_n = canary_n = 0.0
        for weight in s.canary_steps:
            for _ in range(int(s.canary_step_s // s.canary_look_s)):
                canary_n += rate * s.canary_look_s * weight / 100
                stable_n += rate * s.canary_look_s * (100 - weight) / 100
                looks.append(Look(False, int(stable_n), int(canary_n)))
    return looks


@dataclass
class Pool:
    """A stream of production rows scored by the champion and by a candidate."""

    champion: np.ndarray
    candidate: np.ndarray
    champion_threshold: float
    candidate_threshold: float


@dataclass(frozen=True)
class Fault:
    name: str
    score_shift_sd: float = 0.0  # added to the candidate's logits, in units of the score SD
    error_rate: float = BASE_ERROR_RATE
    latency_factor: float = 1.0


def simulate(
    pool: Pool,
    expectation: Expectation,
    config: JudgeConfig,
    looks: list[Look],
    rng: np.random.Generator,
    fault: Fault,
    decide: Callable[..., Judgement] = judge,
) -> tuple[bool, int]:
    """One rollout: (rolled back?, canary samples at the decision or at the end), judged by
    `decide` (the reference's `judge`; a grader passes a learner's to run the same rollouts)."""
    total = max(look.stable_n + look.canary_n for look in looks) + 1
    idx = rng.integers(0, pool.champion.size, size=2 * total)
    shift = fault.score_shift_sd * expectation.score_sd
    cand_logit = logit(pool.candidate[idx]) + shift
    cand_scores = 1 / (1 + np.exp(-cand_logit))
    champ_scores = pool.champion[idx]
    lat_s = rng.lognormal(0.0, LATENCY_SIGMA, size=2 * total)
    lat_c = rng.lognormal(0.0, LATENCY_SIGMA, size=2 * total) * fault.latency_factor
    err_s = rng.random(2 * total) < BASE_ERROR_RATE
    err_c = rng.random(2 * total) < fault.error_rate
    fraction = {True: 0.0, False: 0.0}
    for look in looks:
        if look.paired:  # the same requests through both
            s_sl = c_sl = slice(0, look.canary_n)
        else:  # disjoint requests: stable from the front, canary from the back half
            s_sl, c_sl = slice(0, look.stable_n), slice(total, total + look.canary_n)
        stable = Variant.of(
            champ_scores[s_sl],
            champ_scores[s_sl] >= pool.champion_threshold,
            lat_s[s_sl],
            errors=int(err_s[s_sl].sum()),
        )
        canary = Variant.of(
            cand_scores[c_sl],
            cand_scores[c_sl] >= pool.candidate_threshold,
            lat_c[c_sl],
            errors=int(err_c[c_sl].sum()),
        )
        paired = None
        if look.paired:
            paired = Paired(stable.scores, canary.scores, stable.decisions, canary.decisions)
        verdict = decide(
            stable, canary, expectation, config, previous_fraction=fraction[look.paired], paired=paired
        )
        fraction[look.paired] = verdict.fraction
        if verdict.verdict == "FAIL":
            return True, look.canary_n
    return False, looks[-1].canary_n


def clopper_pearson_upper(k: int, n: int, level: float = 0.95) -> float:
    return 1.0 if k == n else float(beta.ppf(1 - (1 - level) / 2, k + 1, n - k))


def rate_of(
    runs: int,
    seed: int,
    pool: Pool,
    expectation: Expectation,
    config: JudgeConfig,
    looks: list[Look],
    fault: Fault,
    decide: Callable[..., Judgement] = judge,
) -> dict[str, Any]:
    """`runs` simulated rollouts: how many were rolled back, and after how many canary samples."""
    rng = np.random.default_rng(seed)
    outcomes = [simulate(pool, expectation, config, looks, rng, fault, decide) for _ in range(runs)]
    hits = [n for rolled_back, n in outcomes if rolled_back]
    return {
        "runs": runs,
        "rolled_back": len(hits),
        "rate": len(hits) / runs,
        "upper95": clopper_pearson_upper(len(hits), runs),
        "median_canary_samples_to_rollback": float(np.median(hits)) if hits else None,
    }


def _fit(frame: Any) -> tuple[Any, float]:
    model = build_pipeline(Hyperparams()).fit(frame[SCHEMA.names], frame[SCHEMA.label])
    return model, budget_threshold(scores(model, frame[SCHEMA.names]), 0.05)


def run(runs: int = 300) -> dict[str, Any]:
    t0 = time.monotonic()
    s = get_settings()
    base_config = judge_config(s)
    looks = look_schedule(s, RATE_RPS)
    shadow_only = look_schedule(s, RATE_RPS, split=False)
    split_only = look_schedule(s, RATE_RPS, shadow=False)
    single = replace(base_config, alpha=s.canary_alpha)

    champion, thr = _fit(generate("baseline", 20_000, seed=1))
    traffic = features_only(generate("baseline", 50_000, seed=2))
    champ_scores = scores(champion, traffic)
    aa = Pool(champ_scores, champ_scores, thr, thr)
    aa_expect = expectation_from_scores(champ_scores[:5000], champ_scores[:5000], thr, thr)

    out: dict[str, Any] = {
        "settings": {
            "rate_rps": RATE_RPS,
            "shadow_s": s.canary_shadow_s,
            "steps": list(s.canary_steps),
            "step_s": s.canary_step_s,
            "look_s": s.canary_look_s,
            "looks": len(looks),
            "alpha": s.canary_alpha,
            "planned_samples": s.canary_planned_samples,
            "min_samples": s.canary_min_samples,
            "score_tolerance_sd": s.canary_score_tolerance_sd,
        }
    }
    none = Fault("none")
    naive = replace(base_config, sequential=False)
    naive_no_effect = replace(
        naive, score_tolerance_sd=0.0, decision_tolerance=0.0, error_tolerance=0.0, latency_tolerance=0.0
    )
    out["aa"] = {
        "sequential": rate_of(runs, 10, aa, aa_expect, base_config, looks, none),
        "naive_every_look": rate_of(runs, 10, aa, aa_expect, naive, looks, none),
        "naive_no_min_effect": rate_of(runs, 10, aa, aa_expect, naive_no_effect, looks, none),
    }

    # Power: regressions the canary exists to catch, in each mode. A single-mode rollout gets
    # the whole alpha (judge_config halves it between the shadow and split phases).
    power_runs = max(100, runs // 2)

    def modes(pool: Pool, expect: Expectation, fault: Fault, seed: int) -> dict[str, Any]:
        return {
            "shadow (paired)": rate_of(power_runs, seed, pool, expect, single, shadow_only, fault),
            "split (unpaired)": rate_of(power_runs, seed, pool, expect, single, split_only, fault),
            "full rollout": rate_of(power_runs, seed, pool, expect, base_config, looks, fault),
        }

    faults = [
        Fault("score shift 0.2 SD beyond expected", score_shift_sd=0.2),
        Fault("+1 point error rate", error_rate=BASE_ERROR_RATE + 0.01),
        Fault("+25% latency", latency_factor=1.25),
    ]
    out["power"] = {fault.name: modes(aa, aa_expect, fault, 20) for fault in faults}
    # Training/serving skew: trained on amounts in cents, expected on the export's view, served dollars.
    export = generate("baseline", 20_000, seed=3)
    skewed, skew_thr = _fit(export.assign(amount=export["amount"] * 100))
    offline = traffic.iloc[:5000]
    skew_expect = expectation_from_scores(
        champ_scores[:5000], scores(skewed, offline.assign(amount=offline["amount"] * 100)), thr, skew_thr
    )
    skew_pool = Pool(champ_scores, scores(skewed, traffic), thr, skew_thr)
    out["power"]["training/serving skew (cents)"] = modes(skew_pool, skew_expect, none, 30)

    # Good retrains: trained on drifted data, expectation on one drifted sample, judged on another.
    good: list[dict[str, Any]] = []
    for i, scenario in enumerate(("covariate_shift", "prior_shift", "concept_drift")):
        drifted = generate(scenario, 30_000, seed=40 + i)
        retrained, r_thr = _fit(drifted.iloc[:20_000])
        recent = features_only(drifted.iloc[20_000:25_000])
        live = features_only(generate(scenario, 50_000, seed=60 + i))
        expect = expectation_from_scores(scores(champion, recent), scores(retrained, recent), thr, r_thr)
        pool = Pool(scores(champion, live), scores(retrained, live), thr, r_thr)
        res = rate_of(max(100, runs // 3), 50 + i, pool, expect, base_config, looks, none)
        good.append(
            {"scenario": scenario, "expectation": expect.describe(), **res, "pass_rate": 1 - res["rate"]}
        )
    out["good_retrains"] = good
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


def goals(doc: dict[str, Any]) -> list[dict[str, Any]]:
    aa = doc["aa"]["sequential"]
    rows = [
        {
            "goal": "A/A false rollback rate <= 1%",
            "measured": f"{aa['rate']:.2%} (95% upper bound {aa['upper95']:.2%}, {aa['runs']} runs)",
            "met": aa["rate"] <= 0.01,
        }
    ]
    for name, modes in doc["power"].items():
        full = modes["full rollout"]
        rows.append(
            {
                "goal": f"detect {name} >= 95%",
                "measured": f"{full['rate']:.1%} ({full['runs']} runs)",
                "met": full["rate"] >= 0.95,
            }
        )
    for g in doc["good_retrains"]:
        rows.append(
            {
                "goal": f"good retrain on {g['scenario']} passes >= 95%",
                "measured": f"{g['pass_rate']:.1%} ({g['runs']} runs)",
                "met": g["pass_rate"] >= 0.95,
            }
        )
    return rows


def markdown(doc: dict[str, Any]) -> str:
    st = doc["settings"]
    lines = [
        "# Canary judge: simulated rollouts",
        "",
        f"Command: `.venv/bin/python -m mlops_lab.bench.canary` (part of `make bench`), {doc['seconds']} s.",
        f"Look schedule: shadow {st['shadow_s']:.0f} s, then steps {st['steps']} % of {st['step_s']:.0f} s, "
        f"a look every {st['look_s']:.0f} s ({st['looks']} looks) at {st['rate_rps']:.0f} req/s; "
        f"alpha {st['alpha']}, tolerance {st['score_tolerance_sd']} SD.",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        *[f"| {g['goal']} | {g['measured']} | {'yes' if g['met'] else '**no**'} |" for g in doc["goals"]],
        "",
        "## A/A: false rollbacks",
        "",
        "| judge | rolled back | rate | 95% upper bound |",
        "|---|---|---|---|",
    ]
    for name, r in doc["aa"].items():
        lines.append(f"| {name} | {r['rolled_back']}/{r['runs']} | {r['rate']:.2%} | {r['upper95']:.2%} |")
    lines += [
        "",
        "## Power: detection and canary samples to the rollback",
        "",
        "| regression | mode | detected | median canary samples |",
        "|---|---|---|---|",
    ]
    for name, modes in doc["power"].items():
        for mode, r in modes.items():
            med = r["median_canary_samples_to_rollback"]
            lines.append(f"| {name} | {mode} | {r['rate']:.1%} | {'-' if med is None else f'{med:.0f}'} |")
    lines += ["", "## Good retrains", "", "| scenario | expectation | passed |", "|---|---|---|"]
    for g in doc["good_retrains"]:
        lines.append(f"| {g['scenario']} | {g['expectation']} | {g['pass_rate']:.1%} of {g['runs']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    doc = run(args.runs)
    doc["goals"] = goals(doc)
    write_outputs("canary", doc, markdown(doc))


if __name__ == "__main__":
    main()
