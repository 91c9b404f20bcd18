"""lab1/slow-model: a model 40 ms slower per prediction breaks the p99 SLO under load.

    make scenario S=lab1/slow-model [IMPL=exercises]

A load test with real HTTP (locust) before and after the slowdown; the SLO check (p99 <= 50 ms,
errors <= 0.1%) must pass before and fail after. Nothing crashes and every request succeeds:
only the latency SLO tells you. With IMPL=exercises the SLO check is yours (lab 1 slo-check).
"""

from __future__ import annotations

from mlops_lab.labs.scenarios import Context

SLOWDOWN_MS = 40


def run(ctx: Context) -> None:
    load = ctx.module("slo-check")
    ctx.start_registry()
    ctx.train_champion()
    base = ctx.start_server("stable")

    # Paced clients (4 x 25 req/s), as real traffic is: the healthy server is far from saturated.
    kw = {"users": 4, "duration": "6s", "rate_per_user": 25.0}
    before = load.run_load(ctx.settings, base, ctx.settings.home / "load-before", **kw)
    ctx.info(f"baseline: {before.requests} requests, p50 {before.p50_ms:.0f} ms, p99 {before.p99_ms:.0f} ms")
    ctx.check(before.slo_met, f"the SLO holds before the fault (p99 {before.p99_ms:.0f} ms)")

    ctx.supervisor.stop("stable")
    base = ctx.start_server("stable", MLOPS_INJECT_LATENCY_MS=str(SLOWDOWN_MS))
    ctx.inject(f"a new build of the model takes {SLOWDOWN_MS} ms longer per prediction")
    after = load.run_load(ctx.settings, base, ctx.settings.home / "load-after", **kw)
    ctx.symptom(f"{after.requests} requests, {after.failures} failed: it still 'works'")
    ctx.signal(f"p99 {after.p99_ms:.0f} ms against an SLO of {after.slo_p99_ms:.0f} ms")
    ctx.check(after.failures == 0, "no request failed: error-rate alerts stay quiet")
    ctx.check(not after.slo_met, "the SLO check fails the load test")
    ctx.check(after.rps < before.rps, f"throughput fell from {before.rps:.0f} to {after.rps:.0f} req/s")
    ctx.mitigate("block the release on the SLO check in CI; in production roll back to the last fast version")
