"""lab5/skew-online: a training/serving skew that every offline check passes, caught by the canary.

    make scenario S=lab5/skew-online [IMPL=exercises]

A candidate's whole offline world has `amount` in cents: a warehouse export changed its unit, so
its training data, its holdout and the production rows its canary expectation is measured on
all say cents. Serving still sends dollars. Offline, nothing can see it: the gate passes on the
candidate's own holdout, and the expectation (both models scoring the same recent rows, each as
its own pipeline presents them) looks like any good retrain. Online, the same model scores
dollars it was never trained on. What must hold:
  - the gate passes and the expectation is unremarkable (that is the trap);
  - the judge compares the canary's online behaviour with that expectation and FAILs it on the
    score check: the observed shift is far from the expected one;
  - the controller rolls it back: router to 0%, @champion unchanged, the version tagged
    canary=rolled_back (the judge's reason on the timeline: expected vs observed shift).
With IMPL=exercises the expectation, the judge, the rollout's tick and the router's split are
yours (exercises/lab5/expectation.py, judge.py, rollout.py, split.py).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

from mlops_lab.canary.judgement import Expectation
from mlops_lab.canary.stage import load_expectation
from mlops_lab.data.generator import features_only, generate
from mlops_lab.labs.scenarios import Context
from mlops_lab.lifecycle.release import gate_version
from mlops_lab.lifecycle.tracking import CHALLENGER, CHAMPION
from mlops_lab.load.traffic import Traffic

RATE_RPS = 100.0


def run(ctx: Context) -> None:
    ctx.fast_canary()
    s = ctx.settings
    router = ctx.start_canary_system()
    champion = ctx.alias(CHAMPION)

    export = generate("baseline", 8_000, seed=12)
    recent = features_only(generate("baseline", 2_000, seed=112))
    ctx.inject(
        "a candidate whose offline world has amount in cents: trained on an export that switched unit "
        f"(median amount {export['amount'].median() * 100:,.0f}), its expectation measured on the same rows "
        "in cents; serving sends dollars"
    )
    candidate = ctx.stage_candidate(
        export.assign(amount=export["amount"] * 100), recent, recent.assign(amount=recent["amount"] * 100)
    )
    verdict, _ = gate_version(s, candidate)
    checks = ", ".join(f"{c.name} {'ok' if c.passed else 'FAIL'}" for c in verdict.checks)
    ctx.signal(f"offline, the gate on v{candidate}'s own holdout (in cents): {verdict.summary()} ({checks})")
    ctx.check(verdict.passed, "every offline check of the gate passes: it cannot see the skew")
    expectation = load_expectation(s, candidate) or Expectation.identical()
    drift_sd = abs(expectation.score_shift) / expectation.score_sd
    ctx.check(
        drift_sd < 0.5 and expectation.agreement > 0.9,
        f"the expectation looks like a good retrain: shift {drift_sd:.2f} SD, agreement "
        f"{expectation.agreement:.1%} (nothing to see offline)",
    )

    traffic = Traffic(router, RATE_RPS, concurrency=8).start()
    controller = ctx.controller()
    with contextlib.closing(controller):
        try:
            r = ctx.roll(controller, timeout_s=60)
        finally:
            traffic.stop()

    failed = [look for look in r.looks if look["verdict"] == "FAIL"]
    look: dict[str, Any] = failed[-1] if failed else {"phase": "-", "weight": 0, "samples": 0, "reason": "-"}
    ctx.symptom(
        f"online the candidate scores dollars it never saw: the judge FAILs it at look {len(r.looks)} "
        f"({look['phase']}, {look['weight']}%, {look['samples']} canary samples)"
    )
    ctx.signal(f"expected vs observed: {look['reason']}")
    ctx.check(bool(failed) and "score" in look["reason"], "the judge FAILed the canary on the score check")
    ctx.check(
        r.phase == "rolled_back" and r.looks[-1]["verdict"] == "FAIL",
        f"the controller rolled it back on that verdict ({r.phase}: {r.reason[:80]})",
    )
    answered = Counter(a.variant for a in traffic.answers if a.status == 200)
    where = "; caught in shadow: no client ever got its answer" if look["phase"] == "shadow" else ""
    ctx.info(f"clients were answered by {dict(answered)}{where}")
    state = ctx.router_state()
    ctx.check(state["canary_weight"] == 0 and not state["shadow"], "the router sends everything to stable")
    ctx.check(ctx.alias(CHAMPION) == champion, f"@champion is still v{champion}")
    ctx.check(ctx.alias(CHALLENGER) is None, "@challenger is cleared")
    tag = ctx.client().get_model_version(s.model_name, candidate).tags.get("canary", "")
    ctx.check(tag.startswith("rolled_back"), f"v{candidate} is tagged canary={tag!r}")
    ctx.mitigate(
        "judge online behaviour against what evaluation expected, not against 'no change'; then fix the "
        "export's unit (or convert at the boundary) and retrain: the canary is the last line, not the fix"
    )
