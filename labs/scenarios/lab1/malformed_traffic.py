"""lab1/malformed-traffic: malformed and hostile requests never reach the model.

    make scenario S=lab1/malformed-traffic [IMPL=exercises]

NaN, out-of-range values, unknown fields, wrong types, broken JSON and oversized bodies: every
one must be a 4xx with a reason (413/422), never a 5xx; nothing is logged as a prediction; the
server stays ready and keeps answering good requests.
"""

from __future__ import annotations

import json

import httpx

from mlops_lab.data.generator import request_payloads
from mlops_lab.labs.scenarios import Context
from mlops_lab.store.db import Store


def run(ctx: Context) -> None:
    ctx.start_registry()
    ctx.train_champion()
    base = ctx.start_server("stable")
    good = request_payloads("baseline", 1, seed=1)[0]
    renamed = {**{k: v for k, v in good.items() if k != "amount"}, "amt": 5}
    bad: list[tuple[str, bytes]] = [
        ("NaN amount", json.dumps({**good, "amount": float("nan")}).encode()),
        ("infinite distance", json.dumps({**good, "distance_from_home_km": float("inf")}).encode()),
        ("negative amount", json.dumps({**good, "amount": -10}).encode()),
        ("hour 25", json.dumps({**good, "hour": 25}).encode()),
        ("unknown channel", json.dumps({**good, "channel": "fax"}).encode()),
        ("renamed column", json.dumps(renamed).encode()),
        ("amount as text", json.dumps({**good, "amount": "12 dollars"}).encode()),
        ("broken JSON", b'{"amount": 12,'),
        ("empty body", b""),
        ("a list, not an object", b"[1, 2, 3]"),
        ("9 MB body", b'{"pad": "' + b"x" * 9_000_000 + b'"}'),
    ]
    ctx.inject(f"{len(bad)} kinds of malformed request, 20 of each")
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=base, timeout=30, headers={"content-type": "application/json"}) as client:
        for label, body in bad:
            codes = {client.post("/v1/predict", content=body).status_code for _ in range(20)}
            for code in codes:
                statuses[code] = statuses.get(code, 0) + 1
            ctx.info(f"{label:<22} -> {sorted(codes)}")
            ctx.check(all(400 <= c < 500 for c in codes), f"{label}: a 4xx, never a 5xx")
        detail = client.post("/v1/predict", json={**good, "amount": -10}).json().get("detail")
        ctx.signal(f"a 422 says where and why: {json.dumps(detail)[:140]}")
        ok = client.post("/v1/predict", json=good)
    ctx.symptom(f"answers by status over all malformed requests: {statuses}")
    ctx.check(ok.status_code == 200, "a good request right after is answered")
    ctx.check(ctx.ready(base), "the server stays ready")
    ctx.supervisor.stop("stable")  # drains the prediction log
    store = Store(ctx.settings.resolved_store_url)
    try:
        logged = store.count_predictions()
    finally:
        store.dispose()
    ctx.check(logged == 1, f"only the good request is in the prediction log ({logged} rows)")
    ctx.mitigate("validation at the edge: schema from one source, 422 with field errors, body size limit")
