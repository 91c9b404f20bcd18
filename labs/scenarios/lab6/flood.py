"""lab6/flood: one client floods the model server (a retry storm) while another keeps paying.

    make scenario S=lab6/flood [IMPL=exercises]

A misconfigured client retries in a tight loop from four threads. The rate limiter (lab 6's
`rate-limiter`: a token bucket per client) must answer the flood 429 with Retry-After, counted
in mlops_rate_limited_total, while a well-behaved client at 20 requests a second sees nothing
but 200s. The limit is set low here (50/s, burst 100) so that one laptop can exceed it.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import Counter

import httpx

from mlops_lab.data.generator import request_payloads
from mlops_lab.labs.scenarios import Context

RATE, BURST = 50, 100
FLOOD_S = 6.0
CALM_RPS = 20


def run(ctx: Context) -> None:
    ctx.start_registry()
    v1 = ctx.train_champion()
    base = ctx.start_server("stable", MLOPS_RATE_LIMIT_PER_S=str(RATE), MLOPS_RATE_LIMIT_BURST=str(BURST))
    ctx.info(f"stable server ready on {base}, serving v{v1}, {RATE} requests/s per client (burst {BURST})")

    bodies = request_payloads("baseline", 500, seed=3)
    flood: Counter[int] = Counter()
    calm: Counter[int] = Counter()
    retry_after: set[str] = set()
    stop = threading.Event()

    def flooder() -> None:
        with httpx.Client(base_url=base, timeout=5, headers={"x-client-id": "retry-storm"}) as client:
            for body in itertools.cycle(bodies):
                if stop.is_set():
                    return
                r = client.post("/v1/predict", json=body)
                flood[r.status_code] += 1
                if r.status_code == 429:
                    retry_after.add(r.headers.get("retry-after", "missing"))

    def checkout() -> None:  # a client at a steady 20 requests a second, well under its rate
        with httpx.Client(base_url=base, timeout=5, headers={"x-client-id": "checkout"}) as client:
            for body in itertools.cycle(bodies):
                if stop.wait(1 / CALM_RPS):
                    return
                calm[client.post("/v1/predict", json=body).status_code] += 1

    threads = [threading.Thread(target=flooder) for _ in range(4)] + [threading.Thread(target=checkout)]
    started = time.monotonic()
    for t in threads:
        t.start()
    ctx.inject(f"client retry-storm sends as fast as 4 threads can for {FLOOD_S:.0f} s")
    time.sleep(FLOOD_S)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started

    sent = sum(flood.values())
    ctx.symptom(f"retry-storm sent {sent:,} requests ({sent / elapsed:.0f}/s): statuses {dict(flood)}")
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    counted = re.search(r'mlops_rate_limited_total\{route="/v1/predict",variant="stable"\} (\S+)', metrics)
    shown = counted[1] if counted else "absent"
    ctx.signal(f"metrics: mlops_rate_limited_total{{route=/v1/predict}} {shown}")
    ctx.signal(f"429s carried Retry-After {sorted(retry_after)}")
    ctx.check(flood[429] > 0, f"the flood was answered 429 ({flood[429]:,} times)")
    allowed = BURST + RATE * elapsed
    ctx.check(
        flood[200] <= allowed * 1.1,
        f"the flood got at most its burst + rate through ({flood[200]:,} <= {allowed:.0f} + 10%)",
    )
    ctx.check(
        bool(retry_after) and all(v.isdigit() and int(v) >= 1 for v in retry_after),
        "every 429 said when to retry (Retry-After in whole seconds, at least 1)",
    )
    ctx.check(counted is not None and float(counted[1]) == flood[429], "every 429 was counted in the metric")
    ctx.info(f"checkout meanwhile: {sum(calm.values())} requests, statuses {dict(calm)}")
    ctx.check(set(calm) == {200}, "the other client was answered 200 throughout")
    ctx.check(sum(flood.values()) > 0 and flood.keys() <= {200, 429}, "nothing but 200 and 429 for the flood")

    wait = max(int(v) for v in retry_after) if retry_after else 1
    ctx.mitigate(f"the client backs off as Retry-After says ({wait} s), and its owner fixes the retry loop")
    time.sleep(wait)
    r = httpx.post(f"{base}/v1/predict", json=bodies[0], headers={"x-client-id": "retry-storm"}, timeout=5)
    ctx.check(r.status_code == 200, f"after backing off, retry-storm is answered again ({r.status_code})")
