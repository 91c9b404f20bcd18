"""The measured phases of the serving benchmark, against a server that is already up.

    python -m mlops_lab.bench.serving     # runs these; see serving.py for the setup

The machine may be shared (a test suite next door), so noop and predict are measured in
interleaved rounds: background load that comes and goes then hits both alike, and the
ratio between them stays meaningful even when the absolute numbers move.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from typing import Any, cast

import httpx

from mlops_lab.bench import loadgen
from mlops_lab.bench.server import GC_PATH, NOOP_GET_PATH, NOOP_PATH, ServerProcess
from mlops_lab.settings import Settings

DISTINCT_BODIES = 400  # cycled through: enough variety that no single row's path dominates
BATCH_ROWS = 1_000
THROUGHPUT_CONCURRENCY = 16
THROUGHPUT_WARMUP_S, THROUGHPUT_ROUNDS, THROUGHPUT_ROUND_S = 2.0, 4, 2.0  # 8 s measured per endpoint
C1_WARMUP, C1_ROUNDS, C1_ROUND_REQUESTS = 300, 4, 500  # 2,000 measured per endpoint
OPEN_FRACTIONS = (0.5, 0.8)
OPEN_WARMUP_S, OPEN_S = 1.0, 5.0
BATCH_WARMUP, BATCH_REQUESTS = 3, 20
IN_PROCESS_CALLS, IN_PROCESS_WARMUP = 20_000, 1_000
SETTLE_S = 0.3  # after a predict round, let the store writer flush before the next round starts


def bodies(n: int, seed: int) -> list[dict[str, Any]]:
    """Real transactions, features only, in schema order, as JSON-ready dicts (NaN -> null)."""
    from mlops_lab.data.generator import features_only, generate

    rows = cast(list[dict[str, Any]], features_only(generate("baseline", n, seed=seed)).to_dict("records"))
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


def _pct_us(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)

    def at(q: float) -> float:
        return round(ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1] / 1000, 3)

    return {"p50": at(50), "p99": at(99), "mean": round(sum(ordered) / len(ordered) / 1000, 3)}


def in_process(settings: Settings, encoded: list[bytes]) -> dict[str, Any]:
    """Time the predict handler's model work on single rows in this process, one call at a time."""
    from mlops_lab.serving.holder import load_version
    from mlops_lab.serving.schemas import PredictRequest

    model = load_version(settings, "champion")
    requests = [PredictRequest.model_validate_json(b) for b in encoded]
    features = [r.features() for r in requests]
    clock, n = time.perf_counter_ns, len(encoded)
    score: list[int] = []
    feat_score: list[int] = []
    validate: list[int] = []
    for i in range(IN_PROCESS_WARMUP + IN_PROCESS_CALLS):
        body, req, feats = encoded[i % n], requests[i % n], features[i % n]
        t0 = clock()
        model.score_one(feats)
        t1 = clock()
        model.score_one(req.features())
        t2 = clock()
        PredictRequest.model_validate_json(body)
        t3 = clock()
        if i >= IN_PROCESS_WARMUP:
            score.append(t1 - t0)
            feat_score.append(t2 - t1)
            validate.append(t3 - t2)
    fs = _pct_us(feat_score)
    return {
        "scorer": model.scorer_kind,
        "model_version": model.version,
        "calls": IN_PROCESS_CALLS,
        "score_one_us": _pct_us(score),
        "features_score_us": fs,
        "validate_json_us": _pct_us(validate),
        "goal_p50_ms": fs["p50"] / 1000,
        "goal_note": "The goal's in-process term is `features()` + `score_one` (the predict "
        "handler's model work); validation is left out because the noop route pays it too.",
    }


@dataclass
class _Cpu:
    """Server CPU spent during one endpoint's rounds, and the requests it answered."""

    total_s: float = 0.0
    loop_s: float = 0.0
    requests: int = 0

    def per_request_us(self) -> dict[str, float]:
        n = max(1, self.requests)
        return {
            "total": round(self.total_s / n * 1e6, 1),
            "event_loop_thread": round(self.loop_s / n * 1e6, 1),
            "other_threads": round((self.total_s - self.loop_s) / n * 1e6, 1),
        }


def _check(server: ServerProcess, path: str, payload: Any) -> None:
    """One request through httpx first, so a broken route fails loudly with its body."""
    r = httpx.post(f"{server.base_url}{path}", json=payload, timeout=30)
    if r.status_code != 200:
        raise RuntimeError(f"POST {path} -> {r.status_code}: {r.text[:300]}")


def _gc(server: ServerProcess) -> dict[str, Any]:
    """The server's collector pauses since the previous call (see bench.server.GcPauses)."""
    out: dict[str, Any] = httpx.get(f"{server.base_url}{GC_PATH}", timeout=10).json()
    return out


def run_all(settings: Settings, server: ServerProcess, notes: list[str]) -> dict[str, Any]:
    host, port = settings.host, int(server.base_url.rsplit(":", 1)[1])
    rows = bodies(DISTINCT_BODIES, seed=7)
    encoded = [json.dumps(r, separators=(",", ":")).encode() for r in rows]
    reqs = {
        "predict": [loadgen.encode_request(host, port, "POST", "/v1/predict", b) for b in encoded],
        "noop": [loadgen.encode_request(host, port, "POST", NOOP_PATH, b) for b in encoded],
        "noop-get (no body)": [loadgen.encode_request(host, port, "GET", NOOP_GET_PATH)],
    }
    batch_body = json.dumps({"rows": bodies(BATCH_ROWS, seed=8)}, separators=(",", ":")).encode()
    batch = [loadgen.encode_request(host, port, "POST", "/v1/predict/batch", batch_body)]
    _check(server, "/v1/predict", rows[0])
    _check(server, NOOP_PATH, rows[0])

    def closed(name: str, seconds: float) -> loadgen.Result:
        return loadgen.run(
            loadgen.closed_loop(
                host, port, reqs[name], concurrency=THROUGHPUT_CONCURRENCY, duration_s=seconds
            )
        )

    def sequential(r: list[bytes], n: int, warm: int = 0) -> loadgen.Result:
        return loadgen.run(
            loadgen.closed_loop(host, port, r, concurrency=1, max_requests=n, warmup_requests=warm)
        )

    print("throughput (closed loop, interleaved rounds) ...", file=sys.stderr)
    for name in ("noop", "predict"):
        closed(name, THROUGHPUT_WARMUP_S)  # warm-up, discarded
    gc_pauses = {"warm-up (discarded)": _gc(server)}
    tp_rounds: dict[str, list[loadgen.Result]] = {"noop": [], "predict": []}
    cpu = {"noop": _Cpu(), "predict": _Cpu()}
    for _ in range(THROUGHPUT_ROUNDS):
        for name in ("noop", "predict"):
            before = server.cpu_s()
            res = closed(name, THROUGHPUT_ROUND_S)
            time.sleep(SETTLE_S if name == "predict" else 0.0)  # the writer's flush belongs to predict
            after = server.cpu_s()
            tp_rounds[name].append(res)
            c = cpu[name]
            c.total_s, c.loop_s = c.total_s + after[0] - before[0], c.loop_s + after[1] - before[1]
            c.requests += res.ok + res.failed
    tp = {k: loadgen.merge(v).summary() for k, v in tp_rounds.items()}
    for name, rounds in tp_rounds.items():
        tp[name]["rounds_rps"] = [round(r.throughput_rps, 1) for r in rounds]
        tp[name]["server_cpu_us_per_request"] = cpu[name].per_request_us()
    rss = server.rss_mib()
    gc_pauses["throughput"] = _gc(server)

    print("concurrency 1 (interleaved rounds) ...", file=sys.stderr)
    c1_rounds: dict[str, list[loadgen.Result]] = {name: [] for name in reqs}
    for r in reqs.values():
        sequential(r, C1_WARMUP)  # warm-up, discarded
    for _ in range(C1_ROUNDS):
        for name, r in reqs.items():
            c1_rounds[name].append(sequential(r, C1_ROUND_REQUESTS))
    c1 = {name: loadgen.merge(v).summary() for name, v in c1_rounds.items()}
    gc_pauses["concurrency 1"] = _gc(server)

    print("open loop ...", file=sys.stderr)
    open_runs = []
    for fraction in OPEN_FRACTIONS:
        rate = fraction * tp["predict"]["throughput_rps"]
        res = loadgen.run(
            loadgen.open_loop(host, port, reqs["predict"], rate_rps=rate, duration_s=OPEN_S,
                              warmup_s=OPEN_WARMUP_S)
        )  # fmt: skip
        open_runs.append({"fraction": fraction, "rate_rps": round(rate, 1), **res.summary()})
        gc_pauses[f"open loop {fraction:.0%}"] = _gc(server)

    print("batch ...", file=sys.stderr)
    b = sequential(batch, BATCH_REQUESTS, BATCH_WARMUP).summary()
    p50 = b["p50_ms"]
    b.update(rows=BATCH_ROWS, body_bytes=len(batch_body), per_row_ms=p50 / BATCH_ROWS if p50 else None)
    gc_pauses["batch"] = _gc(server)

    print("in-process scoring ...", file=sys.stderr)
    inproc = in_process(settings, encoded)

    runs = [("throughput " + k, v) for k, v in tp.items()] + [("c=1 " + k, v) for k, v in c1.items()]
    runs += [(f"open loop {o['fraction']:.0%}", o) for o in open_runs] + [("batch", b)]
    for name, s in runs:
        if s["requests_failed"]:
            notes.append(f"{name}: {s['requests_failed']} failed requests, statuses {s['statuses']}")
    if any(s["requests_ok"] == 0 for s in (tp["noop"], tp["predict"], c1["noop"], c1["predict"], b)):
        raise RuntimeError("a run had no successful request; nothing to report")
    return {
        "throughput": {
            "concurrency": THROUGHPUT_CONCURRENCY,
            "warmup_s": THROUGHPUT_WARMUP_S,
            "rounds": THROUGHPUT_ROUNDS,
            **tp,
            "ratio": round(tp["predict"]["throughput_rps"] / tp["noop"]["throughput_rps"], 4),
        },
        "concurrency_1": c1,
        "in_process": inproc,
        "open_loop": open_runs,
        "batch": b,
        "server_rss_mib": round(rss, 1),
        "server_rss_end_mib": round(server.rss_mib(), 1),
        "server_gc_pauses": gc_pauses,
    }
