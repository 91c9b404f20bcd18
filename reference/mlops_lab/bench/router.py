"""Router overhead: latency added by the canary router vs calling the model server directly.

    .venv/bin/python -m mlops_lab.bench.router     # part of `make bench`

Writes $MLOPS_HOME/bench/router.json and router.md: each figure, the goals and whether they
were met. One stable model server process and one router process, both real uvicorn workers;
the asyncio keep-alive load generator of the serving benchmark. The router is measured three ways:

  no rollout        weight 0: every request to stable, nothing parsed (the common case; the top
                    level "concurrency 1" / "concurrency 8" figures, which capacity.py reads);
  rollout, header   a rollout step: each request names its card in X-Card-Id, routed on that
                    without parsing the body (as the system's own traffic does);
  rollout, body     the same step without the header: the body's card_id is parsed.

During the step the router's canary is the same model server process as its stable (the
canary_port is the stable port), so every mode is compared against one server, as direct is.
Rounds alternate direct and the three modes in the same run, so machine noise hits them all
(this host is shared); the load average before and after is kept with the figures. Not pinned:
three processes on two cores, as in `mlops-lab up`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from mlops_lab.bench import loadgen
from mlops_lab.bench.report import goal, write_outputs
from mlops_lab.bench.serving import _bench_settings
from mlops_lab.canary.weights import CARD_ID_HEADER
from mlops_lab.data.generator import generate, request_payloads
from mlops_lab.data.schema import ENTITY
from mlops_lab.lifecycle.release import train_and_release
from mlops_lab.runtime.supervisor import Supervisor, router_spec, server_spec
from mlops_lab.settings import Settings

ROUNDS = 6
SEQUENTIAL_REQUESTS = 1_000  # per round, concurrency 1
CONCURRENT_S = 3.0  # per round, concurrency 8
CONCURRENCY = 8
STEP_WEIGHT = 25  # the rollout step the two rollout modes run at (percent of cards to the canary)
# (label, canary weight, X-Card-Id header sent)
MODES = (
    ("no rollout", 0, False),
    ("rollout, header", STEP_WEIGHT, True),
    ("rollout, body", STEP_WEIGHT, False),
)
# The goals: what the router may add at concurrency 1, and keep of direct throughput at 8.
GOAL_ADDED_P50_MS, GOAL_ADDED_P99_MS, GOAL_THROUGHPUT_RATIO = 0.3, 1.5, 0.9


def run() -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="mlops-bench-router-"))
    s = _bench_settings(home)
    s = s.model_copy(update={"canary_port": s.stable_port})  # the step's canary: the same server
    sup = Supervisor(s)
    try:
        rel = train_and_release(
            s, generate("baseline", 20_000, seed=1), promote=True, actor="bench", reason="bench"
        )
        assert rel.promoted, rel.verdict.summary()
        sup.start_all([server_spec(s, "stable"), router_spec(s)])
        load_before = os.getloadavg()
        payloads = request_payloads("baseline", 500, seed=7)  # with card_id, as clients send them
        encoded = [json.dumps(b, separators=(",", ":")).encode() for b in payloads]
        cards = [{CARD_ID_HEADER: str(b[ENTITY])} for b in payloads]
        targets = {"direct": (s.stable_port, 0, False)} | {
            label: (s.router_port, w, h) for label, w, h in MODES
        }
        reqs = {
            name: [
                loadgen.encode_request(s.host, port, "POST", "/v1/predict", b, card if header else None)
                for b, card in zip(encoded, cards, strict=True)
            ]
            for name, (port, _, header) in targets.items()
        }
        _wait_ready(s.host, [s.stable_port, s.router_port])
        seq: dict[str, list[loadgen.Result]] = {n: [] for n in targets}
        conc: dict[str, list[loadgen.Result]] = {n: [] for n in targets}
        pids = {n: int((sup.read_state(n) or {})["pid"]) for n in ("stable", "router")}
        cpu = {n: {"stable": 0.0, "router": 0.0, "load_generator": 0.0, "requests": 0} for n in targets}
        for name, (port, weight, _) in targets.items():  # warm-up, discarded
            _set_weight(s, name, weight)
            loadgen.run(loadgen.closed_loop(s.host, port, reqs[name], concurrency=1, max_requests=300))
        for _ in range(ROUNDS):
            for name, (port, weight, _) in targets.items():
                _set_weight(s, name, weight)
                before = {n: _cpu_s(pid) for n, pid in pids.items()} | {"load_generator": time.process_time()}
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
                for n, pid in pids.items():
                    cpu[name][n] += _cpu_s(pid) - before[n]
                cpu[name]["load_generator"] += time.process_time() - before["load_generator"]
                cpu[name]["requests"] += seq[name][-1].ok + conc[name][-1].ok
        _set_weight(s, "reset", 0)
        out: dict[str, Any] = {"rounds": ROUNDS, "step_weight": STEP_WEIGHT, "modes": {}}
        per_request = {n: _per_request_us(c) for n, c in cpu.items()}
        out["direct_cpu_us_per_request"] = per_request["direct"]
        for label, _, _ in MODES:
            out["modes"][label] = {
                "concurrency 1": _row(seq["direct"], seq[label]),
                f"concurrency {CONCURRENCY}": _row(conc["direct"], conc[label]),
                "cpu_us_per_request": per_request[label],
            }
        # The no-rollout figures at the top level too: what capacity.py and the traces read.
        out |= out["modes"]["no rollout"]
        out["goals"] = goals_of(out)
        out["load_average"] = {"before": load_before[0], "after": os.getloadavg()[0]}
        return out
    finally:
        sup.stop_all()
        shutil.rmtree(home, ignore_errors=True)


def _row(direct: list[loadgen.Result], router: list[loadgen.Result]) -> dict[str, Any]:
    """One load's figures: each side's summary of every round merged, and what the router adds."""
    d, r = loadgen.merge(direct), loadgen.merge(router)
    row: dict[str, Any] = {"direct": d.summary(), "router": r.summary()}
    for q in (50, 99):
        row[f"added_p{q}_ms"] = r.percentile_ms(q) - d.percentile_ms(q)
    row["throughput_ratio"] = r.throughput_rps / d.throughput_rps if d.throughput_rps else math.nan
    return row


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; NaN where /proc cannot tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _per_request_us(c: dict[str, float]) -> dict[str, float]:
    """CPU per answered request of the model server, the router and the load generator, in us."""
    n = c["requests"] or math.nan
    names = {"model_server": "stable", "router": "router", "load_generator": "load_generator"}
    return {key: round(c[name] / n * 1e6, 1) for key, name in names.items()}


def _set_weight(s: Settings, name: str, weight: int) -> None:
    """The router's weights for the next mode (direct leaves the router as it is)."""
    if name == "direct":
        return
    auth = {"authorization": f"Bearer {s.admin_token.get_secret_value()}"}
    body = {"canary_weight": weight, "actor": "bench", "reason": f"router benchmark: {name}"}
    url = f"http://{s.host}:{s.router_port}/admin/weights"
    httpx.post(url, json=body, headers=auth, timeout=10).raise_for_status()


def _wait_ready(host: str, ports: list[int]) -> None:
    deadline = time.monotonic() + 120
    for port in ports:
        while httpx.get(f"http://{host}:{port}/readyz", timeout=5).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {port} not ready")
            time.sleep(0.5)


def goals_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each mode against the three goals: added p50 and p99 at concurrency 1, throughput ratio at 8."""
    goals = []
    for label, mode in doc["modes"].items():
        c1, c8 = mode["concurrency 1"], mode[f"concurrency {CONCURRENCY}"]
        p50, p99, ratio = c1["added_p50_ms"], c1["added_p99_ms"], c8["throughput_ratio"]
        direct = f"direct p50 {c1['direct']['p50_ms']:.2f} ms, p99 {c1['direct']['p99_ms']:.2f} ms"
        rps = f"{c8['router']['throughput_rps']:.0f} / {c8['direct']['throughput_rps']:.0f} rps"
        goals += [
            goal(
                f"{label}: added p50, concurrency 1",
                f"<= +{GOAL_ADDED_P50_MS} ms",
                p50,
                "ms",
                p50 <= GOAL_ADDED_P50_MS,
                direct,
            ),
            goal(
                f"{label}: added p99, concurrency 1",
                f"<= +{GOAL_ADDED_P99_MS} ms",
                p99,
                "ms",
                p99 <= GOAL_ADDED_P99_MS,
                direct,
            ),
            goal(
                f"{label}: throughput through / direct, concurrency {CONCURRENCY}",
                f">= {GOAL_THROUGHPUT_RATIO}",
                ratio,
                "ratio",
                ratio >= GOAL_THROUGHPUT_RATIO,
                rps,
            ),
        ]
    return goals


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# Router overhead",
        "",
        "Command: `.venv/bin/python -m mlops_lab.bench.router` (part of `make bench`). Same run, "
        f"{doc['rounds']} interleaved rounds per mode; client-side latency of POST /v1/predict. "
        f"Rollout modes: a {doc['step_weight']}% step, with the card in X-Card-Id (no parse) or only "
        "in the body (parsed). Load average (1 min) before / after: "
        f"{doc['load_average']['before']:.1f} / {doc['load_average']['after']:.1f} on "
        f"{os.cpu_count()} cores.",
        "",
        "| mode | load | direct p50 / p99 (ms) | router p50 / p99 (ms) | added p50 / p99 (ms) "
        "| throughput ratio |",
        "|---|---|---|---|---|---|",
    ]
    for mode, rows in doc["modes"].items():
        for label, r in rows.items():
            if not label.startswith("concurrency"):
                continue
            d, ro = r["direct"], r["router"]
            lines.append(
                f"| {mode} | {label} | {d['p50_ms']:.2f} / {d['p99_ms']:.2f} | "
                f"{ro['p50_ms']:.2f} / {ro['p99_ms']:.2f} | "
                f"{r['added_p50_ms']:+.2f} / {r['added_p99_ms']:+.2f} | {r['throughput_ratio']:.2f} |"
            )
    d = doc["direct_cpu_us_per_request"]
    lines += [
        "",
        "CPU per answered request (both loads; /proc of each process), us: direct, model server "
        f"{d['model_server']:.0f}, load generator {d['load_generator']:.0f}; "
        + "; ".join(
            f"{mode}: model server {c['model_server']:.0f}, router {c['router']:.0f}, "
            f"load generator {c['load_generator']:.0f}"
            for mode, c in ((m, r["cpu_us_per_request"]) for m, r in doc["modes"].items())
        )
        + ". With the processes CPU-bound on shared cores, the throughput ratio is about "
        "(server + load generator) / (server + load generator + router).",
    ]
    lines += ["", "| goal | target | measured | met | detail |", "|---|---|---|---|---|"]
    for g in doc["goals"]:
        measured = "n/a" if g["measured"] is None else f"{g['measured']:.2f} {g['unit']}"
        met = "met" if g["met"] else "NOT met"
        lines.append(f"| {g['name']} | {g['target']} | {measured} | {met} | {g['detail']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    doc = run()
    write_outputs("router", doc, markdown(doc))


if __name__ == "__main__":
    main()
