"""lab5/shadow-side-effects: in shadow mode the canary's answers never reach anyone, even when it dies.

    make scenario S=lab5/shadow-side-effects [IMPL=exercises]

While the controller holds a candidate in shadow, the router sends every request to stable and a
copy to the canary. The copy must have no side effect anyone can see:
  - every caller is answered by stable (x-mlops-variant: stable, the champion's version in the
    body), never by the canary;
  - the store keeps each served request once, under its own id, from stable; the canary's copy
    is stored under `<id>:shadow`, so nothing that counts served predictions (the judge's
    stable rows, a review of the log) counts it as served; the judge pairs the two by id;
  - a canary that fails in shadow changes nothing for the caller: its copies fail (counted as
    canary errors), passive health opens, the controller rolls back, and every caller still gets
    stable's 200.
With IMPL=exercises the router's split (shadow routes), the rollout's tick, the judge and the
expectation are yours (exercises/lab5/split.py, rollout.py, judge.py, expectation.py).
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from mlops_lab.canary.controller import Controller
from mlops_lab.canary.evidence import judge_frame
from mlops_lab.canary.judgement import Judgement, Paired, Variant
from mlops_lab.canary.weights import SHADOW_SUFFIX
from mlops_lab.data.generator import features_only, generate, request_payloads
from mlops_lab.labs.scenarios import Context
from mlops_lab.lifecycle.tracking import CHALLENGER, CHAMPION
from mlops_lab.store.db import Store

CLIENTS = 4
PACE_S = 0.04  # each client's pause between requests: about 100 requests a second in all
SEND_S = 4.0  # how long the clients send in each part
ROLLBACK_TICKS = 2  # the first tick after the canary failed rolls back (the reference: tick 1)


@dataclass(frozen=True)
class Answer:
    request_id: str
    status: int
    header: str  # x-mlops-variant
    variant: str  # the body's variant and model version: who actually answered
    version: str


def send(router: str, seconds: float, seed: int) -> list[Answer]:
    """CLIENTS callers for `seconds`, each request with its own id; every answer recorded."""
    answers: list[Answer] = []
    bodies = request_payloads("baseline", 400, seed=seed)
    stop = time.monotonic() + seconds

    def caller(n: int) -> None:
        with httpx.Client(base_url=router, timeout=10) as client:
            for body in itertools.cycle(bodies[n::CLIENTS]):
                if time.monotonic() > stop:
                    return
                rid = uuid.uuid4().hex
                r = client.post("/v1/predict", json={**body, "request_id": rid})
                got = r.json() if r.status_code == 200 else {}
                header = r.headers.get("x-mlops-variant", "")
                answers.append(
                    Answer(rid, r.status_code, header, str(got.get("variant")), str(got.get("model_version")))
                )
                time.sleep(PACE_S)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def stored(store: Store, since: datetime, ids: set[str]) -> tuple[set[str], Counter[tuple[str, str]]] | None:
    """The store's rows for these requests: the served ids, and (kind:variant, version) counts;
    None until every request and its shadow copy are in (the servers log in the background)."""
    rows = store.scores_frame(since)
    mine = rows[rows["request_id"].str.removesuffix(SHADOW_SUFFIX).isin(ids)]
    shadow = mine["request_id"].str.endswith(SHADOW_SUFFIX)
    if (~shadow).sum() < len(ids) or shadow.sum() < len(ids):
        return None
    kind = shadow.map({True: "shadow", False: "served"}) + ":" + mine["variant"]
    return set(mine.loc[~shadow, "request_id"]), Counter(
        zip(kind, mine["model_version"].astype(str), strict=True)
    )


def run(ctx: Context) -> None:
    ctx.fast_canary(canary_shadow_s=60.0)  # the shadow phase outlasts the scenario
    s = ctx.settings
    router = ctx.start_canary_system()
    champion = ctx.alias(CHAMPION)
    candidate = ctx.stage_candidate(
        generate("baseline", 8_000, seed=16), features_only(generate("baseline", 2_000, seed=116))
    )
    since = datetime.now(UTC)
    controller = ctx.controller()
    store = Store(s.resolved_store_url)
    try:
        ctx.until(lambda: (r := controller.tick()) is not None and r.phase == "shadow", "the shadow phase")
        ctx.inject(f"v{candidate} in shadow: every request to stable, a copy to the canary")
        answers = send_while_ticking(ctx, controller, router, SEND_S, seed=6)
        who = Counter((a.header, a.variant, a.version) for a in answers)
        ctx.symptom(f"{len(answers)} requests answered by (header, variant, version): {dict(who)}")
        ctx.check(bool(answers) and all(a.status == 200 for a in answers), "every request got a 200")
        ctx.check(
            all(a.header == a.variant == "stable" and a.version == champion for a in answers),
            f"every caller was answered by stable's v{champion}: never by the canary",
        )
        ids = {a.request_id for a in answers}
        served, kinds = ctx.until(lambda: stored(store, since, ids), "every answer and its copy in the store")
        ctx.signal(f"the store, for these requests, (kind:variant, version): {dict(kinds)}")
        ctx.check(served == ids, "each served request is stored once, under its own id")
        ctx.check(
            set(kinds) == {("served:stable", champion), ("shadow:canary", candidate)},
            f"served rows all from stable's v{champion}; every ':shadow' row from the canary's v{candidate}",
        )
        ctx.signal(f"the router's counts: {ctx.router_state()['counts']}")
        judged = judged_as(ctx, controller, store, since, ids)
        ctx.signal(
            f"what the judge reads of these {len(ids)} requests: {judged['stable']} stable answers, "
            f"{judged['canary']} canary copies, {judged['paired']} pairs"
        )
        ctx.check(
            judged == {"stable": len(ids), "canary": len(ids), "paired": len(ids)},
            "the copies are never counted as served: one stable answer a request, each paired with its copy",
        )
        killed_canary(ctx, controller, router, champion)
    finally:
        controller.close()
        store.dispose()
    ctx.mitigate(
        "shadow is safe on real traffic: answers from stable only, copies stored apart and never served, "
        "a failing canary counted and contained; the candidate is judged, not trusted"
    )


def judged_as(
    ctx: Context, controller: Controller, store: Store, since: datetime, ids: set[str]
) -> dict[str, int]:
    """How many stable answers, canary copies and pairs the judge gets from these requests' rows:
    the controller's own evidence code, with the judge (the learner's where solved) behind it."""
    rollout = controller.state.rollout
    assert rollout is not None, "the controller has a rollout in shadow"
    rows = store.scores_frame(since)
    rows = rows[rows["request_id"].str.removesuffix(SHADOW_SUFFIX).isin(ids)]
    seen: dict[str, int] = {}

    def decide(stable: Variant, canary: Variant, *args: Any, paired: Paired | None, **kw: Any) -> Judgement:
        seen.update(stable=stable.n, canary=canary.n, paired=0 if paired is None else paired.n)
        return ctx.module("canary-judge").judge(stable, canary, *args, paired=paired, **kw)

    judge_frame(rows, rollout, {}, controller.config, shadow=True, decide=decide)
    return seen


def send_while_ticking(
    ctx: Context, controller: Controller, router: str, seconds: float, seed: int
) -> list[Answer]:
    """The callers send while the controller ticks (and looks) beside them."""
    done = threading.Event()

    def tick() -> None:
        while not done.wait(0.3):
            controller.tick()

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        return send(router, seconds, seed)
    finally:
        done.set()
        ticker.join()


def killed_canary(ctx: Context, controller: Controller, router: str, champion: str | None) -> None:
    """The canary dies in shadow: the callers must not notice; the controller must roll back."""
    before = ctx.router_state()["counts"]["canary"]
    pgid = int((ctx.supervisor.read_state("canary") or {})["pgid"])
    os.killpg(pgid, signal.SIGKILL)
    ctx.inject("SIGKILL to the canary server, still in shadow, callers sending")
    answers = send(router, SEND_S / 2, seed=7)
    who = Counter((a.status, a.header, a.version) for a in answers)
    ctx.symptom(f"after the kill, {len(answers)} requests answered (status, variant, version): {dict(who)}")
    ctx.check(
        bool(answers) and all(a.status == 200 and a.header == "stable" for a in answers),
        "the callers saw nothing: every one answered 200 by stable",
    )
    state = ctx.router_state()
    failed = state["counts"]["canary"]["errors"] - before["errors"]
    ctx.signal(
        f"the router: {failed} failed copies counted as canary errors; healthy {state['canary_healthy']}"
    )
    ctx.check(
        failed > 0 and not state["canary_healthy"], "the failed copies are counted; passive health opened"
    )
    phases: list[str] = []
    r = ctx.roll(controller, timeout_s=30, during=lambda x: phases.append(x.phase))
    ctx.signal(f"controller: {r.describe()}")
    ticks = next((i + 1 for i, phase in enumerate(phases) if phase != "shadow"), len(phases))
    ctx.check(
        r.phase == "rolled_back" and ticks <= ROLLBACK_TICKS,
        f"the controller rolled the candidate back on its tick {ticks} after the kill: on the canary's "
        f"health (at most {ROLLBACK_TICKS})",
    )
    state = ctx.router_state()
    ctx.check(not state["shadow"] and state["canary_weight"] == 0, "shadow is off: nothing is mirrored now")
    ctx.check(ctx.alias(CHAMPION) == champion, f"@champion is still v{champion}")
    ctx.check(ctx.alias(CHALLENGER) is None, "@challenger is cleared")
