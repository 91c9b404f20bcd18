"""lab5/too-little-traffic: a candidate staged at night: too little traffic to judge it, no promotion.

    make scenario S=lab5/too-little-traffic [IMPL=exercises]

A good retrain is staged as @challenger while the router sees a trickle (3 requests a second,
where the judge needs at least `canary_min_samples` canary samples to say anything). The judge
must say INCONCLUSIVE look after look, never PASS on too little data; the controller must never
move past the shadow phase, and once the phase has lasted its time plus `canary_max_wait_s`
without a PASS it rolls back (not enough canary traffic): @champion unchanged, @challenger
cleared. With IMPL=exercises the judge, the rollout's tick, the expectation and the router's
split are yours (exercises/lab5/judge.py, rollout.py, expectation.py, split.py).
"""

from __future__ import annotations

import contextlib
import time

from mlops_lab.canary.state import Rollout
from mlops_lab.data.generator import features_only, generate
from mlops_lab.labs.scenarios import Context
from mlops_lab.lifecycle.tracking import CHALLENGER, CHAMPION
from mlops_lab.load.traffic import Traffic
from mlops_lab.store.db import Store

RATE_RPS = 3.0


def run(ctx: Context) -> None:
    ctx.fast_canary()
    s = ctx.settings
    router = ctx.start_canary_system()
    champion = ctx.alias(CHAMPION)
    candidate = ctx.stage_candidate(
        generate("baseline", 8_000, seed=11), features_only(generate("baseline", 2_000, seed=111))
    )

    traffic = Traffic(router, RATE_RPS, concurrency=2).start()
    needed = s.canary_min_samples
    ctx.inject(
        f"the router sees a trickle: {RATE_RPS:.0f} requests a second while v{candidate} is rolled out "
        f"(the judge needs {needed} canary samples; shadow lasts {s.canary_shadow_s:.0f} s, "
        f"then {s.canary_max_wait_s:.0f} s more without a PASS before giving up)"
    )
    seen: dict[str, float] = {}
    weights: set[int] = set()

    def during(r: Rollout) -> None:
        seen.setdefault(r.phase, time.monotonic())
        weights.add(r.weight)

    controller = ctx.controller()
    with contextlib.closing(controller):
        try:
            r = ctx.roll(controller, timeout_s=60, during=during)
        finally:
            traffic.stop()
        metrics = controller.metrics.registry

    verdicts = [look["verdict"] for look in r.looks]
    samples = [int(look["samples"]) for look in r.looks]
    ctx.symptom(
        f"{len(verdicts)} looks, verdicts {sorted(set(verdicts))}; canary samples per look "
        f"{samples[:3]} ... {samples[-3:]} (never {needed})"
    )
    ctx.check(
        bool(verdicts) and set(verdicts) == {"INCONCLUSIVE"},
        f"the judge said INCONCLUSIVE at every one of {len(verdicts)} looks: too little data is no verdict",
    )
    ctx.check(max(samples, default=0) < needed, f"no look had {needed} canary samples (max {max(samples)})")
    inconclusive = metrics.get_sample_value("mlops_canary_verdicts_total", {"verdict": "INCONCLUSIVE"})
    ctx.signal(
        f"mlops_canary_verdicts_total{{verdict=INCONCLUSIVE}} {inconclusive:g}; rollout: {r.describe()}"
    )
    ctx.check(
        r.phase == "rolled_back",
        f"the controller rolled back without a verdict, champion kept (got {r.phase}: {r.reason})",
    )
    ctx.check(
        weights <= {0}, f"no real traffic ever went to the candidate: the router stayed at 0% (saw {weights})"
    )
    waited = seen.get("rolled_back", seen.get("rolling_back", 0.0)) - seen.get("shadow", 0.0)
    allowed = s.canary_shadow_s + s.canary_max_wait_s
    ctx.check(
        "shadow" in seen and waited >= 0.9 * allowed,
        f"it gave up only after the shadow's {s.canary_shadow_s:.0f} s + max_wait "
        f"{s.canary_max_wait_s:.0f} s ({waited:.1f} s)",
    )
    promotions = metrics.get_sample_value("mlops_canary_promotions_total")
    ctx.check(promotions == 0, f"mlops_canary_promotions_total stays 0 (got {promotions:g})")
    ctx.check(ctx.alias(CHAMPION) == champion, f"@champion is still v{champion}")
    ctx.check(ctx.alias(CHALLENGER) is None, "@challenger is cleared")
    tag = ctx.client().get_model_version(s.model_name, candidate).tags.get("canary", "")
    store = Store(s.resolved_store_url)
    try:
        audit = [e["action"] for e in store.audit_log() if e["action"].startswith("canary.")]
    finally:
        store.dispose()
    ctx.signal(f"v{candidate} tagged canary={tag!r}; audit: {' -> '.join(audit)}")
    ctx.check(tag.startswith("rolled_back"), "the candidate's version says why: canary=rolled_back")
    ctx.mitigate(
        "never promote on no data: the champion keeps serving; stage the candidate again when traffic "
        "allows (or lengthen the phase), rather than lowering min_samples until anything passes"
    )
