"""Router overhead: latency added by the canary router vs calling the model server directly.

    .venv/bin/python -m mlops_lab.bench.router     # part of `make bench`

Writes $MLOPS_HOME/bench/router.json and router.md. One stable model server process and one
router process (weight 0: every request goes through the router to stable, the common case),
both real uvicorn workers; the asyncio keep-alive load generator of the serving benchmark.
Rounds alternate direct / through the router in the same run, so machine noise hits both
(this host is shared). Not pinned: three processes on two cores, as in `mlops-lab up`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlops_lab.bench import loadgen
from mlops_lab.bench.report import write_outputs
from mlops_lab.bench.runs import bodies
from mlops_lab.bench.serving import _bench_settings
from mlops_lab.data.generator import generate
from mlops_lab.lifecycle.release import train_and_release
from mlops_lab.runtime.supervisor import Supervisor, router_spec, server_spec

ROUNDS = 6
SEQUENTIAL_REQUESTS = 1_000  # per round, concurrency 1
CONCURRENT_S = 3.0  # per round, concurrency 8
CONCURRENCY = 8


def run() -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="mlops-bench-router-"))
    s = _bench_settings(home)
    sup = Supervisor(s)
    try:
        rel = train_and_release(
            s, generate("baseline", 20_000, seed=1), promote=True, actor="bench", reason="bench"
        )
        assert rel.promoted, rel.verdict.summary()
        sup.start_all([server_spec(s, "stable"), router_spec(s)])
        encoded = [json.dumps(b, separators=(",", ":")).encode() for b in bodies(500, seed=7)]
        targets = {"direct": s.stable_port, "router": s.router_port}
        reqs = {
            name: [loadgen.encode_request(s.host, port, "POST", "/v1/predict", b) for b in encoded]
            for name, port in targets.items()
        }
        _wait_ready(s.host, targets)
        seq: dict[str, list[loadgen.Result]] = {n: [] for n in targets}
        conc: dict[str, list[loadgen.Result]] = {n: [] for n in targets}
        for name, port in targets.items():  # warm-up, discarded
            loadgen.run(loadgen.closed_loop(s.host, port, reqs[name], concurrency=1, max_requests=300))
        for _ in range(ROUNDS):
            for name, port in targets.items():
                seq[name].append(
                    loadgen.run(
                        loadgen.closed_loop(
                            s.host, port, reqs[name], concurrency=1, max_requests=SEQUENTIAL_REQUESTS
                        )
                    )
                )
                conc[name].append(
                    loadgen.run(
                        loadgen.closed_loop(
                            s.host, port, reqs[name], concurrency=CONCURRENCY, duration_s=CONCURRENT_S
                        )
                    )
                )
        out: dict[str, Any] = {"rounds": ROUNDS}
        for label, results in (("concurrency 1", seq), (f"concurrency {CONCURRENCY}", conc)):
            merged = {n: loadgen.merge(r) for n, r in results.items()}
            row: dict[str, Any] = {n: m.summary() for n, m in merged.items()}
            for q in (50, 99):
                row[f"added_p{q}_ms"] = merged["router"].percentile_ms(q) - merged["direct"].percentile_ms(q)
            row["throughput_ratio"] = merged["router"].throughput_rps / merged["direct"].throughput_rps
            out[label] = row
        return out
    finally:
        sup.stop_all()
        shutil.rmtree(home, ignore_errors=True)


def _wait_ready(host: str, targets: dict[str, int]) -> None:
    import time

    import httpx

    deadline = time.monotonic() + 120
    for port in targets.values():
        while httpx.get(f"http://{host}:{port}/readyz", timeout=5).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {port} not ready")
            time.sleep(0.5)


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# Router overhead",
        "",
        "Command: `.venv/bin/python -m mlops_lab.bench.router` (part of `make bench`). Same run, "
        f"{doc['rounds']} interleaved rounds per mode; client-side latency of POST /v1/predict.",
        "",
        "| load | direct p50 / p99 (ms) | router p50 / p99 (ms) | added p50 / p99 (ms) | throughput ratio |",
        "|---|---|---|---|---|",
    ]
    for label in [k for k in doc if k.startswith("concurrency")]:
        r = doc[label]
        d, ro = r["direct"], r["router"]
        lines.append(
            f"| {label} | {d['p50_ms']:.2f} / {d['p99_ms']:.2f} | {ro['p50_ms']:.2f} / {ro['p99_ms']:.2f} | "
            f"{r['added_p50_ms']:.2f} / {r['added_p99_ms']:.2f} | {r['throughput_ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    doc = run()
    write_outputs("router", doc, markdown(doc))


if __name__ == "__main__":
    main()
