"""Goals and the Markdown summary of the serving benchmark (pure functions of its figures).

    python -c "import mlops_lab.bench.report as r; help(r.goals_of)"

`python -m mlops_lab.bench.serving` measures; this module only judges and renders, so the
verdicts can be recomputed from a saved serving.json:

    python -c "import json, mlops_lab.bench.report as r; \\
print(r.render_markdown(json.load(open('var/bench/serving.json'))))"
"""

from __future__ import annotations

import json
import math
from typing import Any

from mlops_lab.settings import get_settings

COMMAND = "make bench"


def goal(name: str, target: str, measured: float, unit: str, met: bool, detail: str) -> dict[str, Any]:
    """One goal as every benchmark writes it (var/bench/*.json): not met when nothing was measured."""
    return {
        "name": name,
        "target": target,
        "measured": round(measured, 4) if math.isfinite(measured) else None,
        "unit": unit,
        "met": bool(met) if math.isfinite(measured) else False,
        "detail": detail,
    }


def goals_of(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal with its target, the measured value and whether it was met."""
    tp, c1, inproc, batch = (
        figures["throughput"],
        figures["concurrency_1"],
        figures["in_process"],
        figures["batch"],
    )
    ratio = tp["predict"]["throughput_rps"] / tp["noop"]["throughput_rps"]
    p50, p99 = c1["predict"]["p50_ms"], c1["predict"]["p99_ms"]
    budget = 1.3 * (c1["noop"]["p50_ms"] + inproc["goal_p50_ms"])
    per_row, single = batch["per_row_ms"], c1["predict"]["p50_ms"]
    serving = [
        goal(
            "throughput predict / noop",
            ">= 0.6",
            ratio,
            "ratio",
            ratio >= 0.6,
            f"{tp['predict']['throughput_rps']:.0f} / {tp['noop']['throughput_rps']:.0f} rps",
        ),
        goal("p50 predict, concurrency 1", "<= 1.5 ms", p50, "ms", p50 <= 1.5, "loopback"),
        goal("p99 predict, concurrency 1", "<= 5 ms", p99, "ms", p99 <= 5.0, "loopback"),
        goal(
            "p50 predict vs noop + in-process",
            "<= 1.3 x (p50 noop + in-process p50)",
            p50,
            "ms",
            p50 <= budget,
            f"budget {budget:.4f} ms = 1.3 x ({c1['noop']['p50_ms']:.4f} + {inproc['goal_p50_ms']:.4f})",
        ),
        goal(
            f"per-row cost of a {batch.get('rows', 1000)}-row batch",
            "<= 1/50 of a single-row request",
            per_row,
            "ms",
            per_row <= single / 50,
            f"limit {single / 50:.4f} ms = {single:.4f} ms (single-row request p50) / 50",
        ),
    ]
    return [*serving, *startup_goals(figures)]


STARTUP_GOAL_S = 2.0
RSS_GOAL_MIB = 150.0


def startup_goals(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The model server's start-up (process start -> /readyz 200) and RSS after warm-up, medians,
    each next to the bare uvicorn app's; none when the run did not measure them."""
    st = figures.get("startup")
    if not st:
        return []
    server, bare, n = st["server"], st["bare"], st["repeats"]
    ready, rss = server["median_ready_s"], server["median_rss_mib"]
    return [
        goal(
            "server start-up, process start -> /readyz 200",
            f"<= {STARTUP_GOAL_S:g} s",
            ready,
            "s",
            ready <= STARTUP_GOAL_S,
            f"median of {n}: {server['ready_s']}; bare uvicorn app {bare['median_ready_s']:.3f} s"
            + (
                f"; the model's load {server['median_model_load_s']:.3f} s"
                if "median_model_load_s" in server
                else ""
            ),
        ),
        goal(
            "server RSS after warm-up",
            f"<= {RSS_GOAL_MIB:g} MiB",
            rss,
            "MiB",
            rss <= RSS_GOAL_MIB,
            f"median of {n}: {server['rss_mib']}; bare uvicorn app {bare['median_rss_mib']:.1f} MiB",
        ),
    ]


def _fmt(x: Any) -> str:
    if isinstance(x, int | float) and not isinstance(x, bool):
        x = float(x)
        return "n/a" if not math.isfinite(x) else f"{x:,.4g}" if abs(x) < 1000 else f"{x:,.0f}"
    return "n/a" if x is None else str(x)


def _latency_rows(label: str, s: dict[str, Any]) -> str:
    cells = [s["throughput_rps"], s["p50_ms"], s["p90_ms"], s["p99_ms"], s["max_ms"]]
    return (
        f"| {label} | {s['requests_ok']} | {s['requests_failed']} | "
        + " | ".join(_fmt(c) for c in cells)
        + " |"
    )


def render_markdown(doc: dict[str, Any]) -> str:
    env, fig = doc["environment"], doc["figures"]
    met = sum(g["met"] for g in doc["goals"])
    out = [
        "# Serving benchmark",
        "",
        f"Command: `{doc['command']}` ({doc['generated_at']}, {doc['runtime_s']:.0f} s). "
        f"{met}/{len(doc['goals'])} goals met.",
        "",
        f"Machine: {env['cpu_model']}, {env['cores_available']} core(s); server {env['server_pinning']}, "
        f"load generator {env['loadgen_pinning']}; Python {env['python']}, "
        + ", ".join(f"{k} {v}" for k, v in env["packages"].items())
        + f". Load average before/after: {env['loadavg_before']} / {env['loadavg_after']}.",
        "",
        "## Goals",
        "",
        "| goal | target | measured | met | detail |",
        "|---|---|---|---|---|",
    ]
    for g in doc["goals"]:
        mark = "yes" if g["met"] else "**no**"
        out.append(
            f"| {g['name']} | {g['target']} | {_fmt(g['measured'])} {g['unit']} | {mark} | {g['detail']} |"
        )
    head = "| run | ok | failed | rps | p50 ms | p90 ms | p99 ms | max ms |"
    out += ["", "## Figures", "", head, "|---|---|---|---|---|---|---|---|"]
    tp, c1 = fig["throughput"], fig["concurrency_1"]
    conc = tp["concurrency"]
    out.append(_latency_rows(f"closed c={conc}, noop", tp["noop"]))
    out.append(_latency_rows(f"closed c={conc}, predict", tp["predict"]))
    for name, s in c1.items():
        out.append(_latency_rows(f"c=1, {name}", s))
    for o in fig["open_loop"]:
        out.append(_latency_rows(f"open {o['fraction']:.0%} ({o['rate_rps']:.0f} rps), predict", o))
    out.append(_latency_rows(f"batch of {fig['batch']['rows']} rows, c=1", fig["batch"]))
    ip, b = fig["in_process"], fig["batch"]
    out += [
        "",
        f"- In-process (bench process, pinned like the load generator), p50 / p99 in microseconds: "
        f"`score_one` {_fmt(ip['score_one_us']['p50'])} / {_fmt(ip['score_one_us']['p99'])}; "
        f"`features()` + `score_one` {_fmt(ip['features_score_us']['p50'])} / "
        f"{_fmt(ip['features_score_us']['p99'])}; `PredictRequest.model_validate_json` "
        f"{_fmt(ip['validate_json_us']['p50'])} / {_fmt(ip['validate_json_us']['p99'])}. "
        f"{ip['goal_note']}",
        f"- Batch: p50 {_fmt(b['p50_ms'])} ms for {b['rows']} rows = {_fmt(b['per_row_ms'] * 1000)} us "
        f"per row, vs {_fmt(c1['predict']['p50_ms'] * 1000)} us for a single-row request "
        f"({_fmt(c1['predict']['p50_ms'] / b['per_row_ms'])}x).",
        f"- Bench server RSS after the throughput runs: {_fmt(fig['server_rss_mib'])} MiB "
        f"(at the end: {_fmt(fig['server_rss_end_mib'])} MiB).",
        f"- Throughput ratio predict/noop: {_fmt(tp['ratio'])}, from {tp['rounds']} interleaved rounds per "
        f"endpoint (rps per round: noop {tp['noop']['rounds_rps']}, predict {tp['predict']['rounds_rps']}).",
    ]
    st = fig.get("startup")
    if st:
        out.append(
            f"- Start-up ({st['repeats']} starts each, alternating; warm-up: {st['warm_up']}): model server "
            f"`mlops-lab serve` ready in {_fmt(st['server']['median_ready_s'])} s, "
            f"{_fmt(st['server']['median_rss_mib'])} MiB after warm-up; bare uvicorn app "
            f"{_fmt(st['bare']['median_ready_s'])} s, {_fmt(st['bare']['median_rss_mib'])} MiB."
        )
    for name in ("noop", "predict"):
        c = tp[name]["server_cpu_us_per_request"]
        out.append(
            f"- Server CPU per {name} request at saturation: {_fmt(c['total'])} us "
            f"(event-loop thread {_fmt(c['event_loop_thread'])}, other threads {_fmt(c['other_threads'])})."
        )
    out.append(
        "- Server garbage-collector pauses per phase (generations 0/1/2: collections; max ms; total ms):"
    )
    for phase, g in fig["server_gc_pauses"].items():
        counts, peak, total = (
            " / ".join(_fmt(x) for x in g[k]) for k in ("collections", "max_ms", "total_ms")
        )
        out.append(f"  - {phase}: {counts}; max {peak}; total {total}")
    out += [f"- Note: {n}" for n in doc["notes"]]
    return "\n".join(out) + "\n"


def write_outputs(name: str, doc: dict[str, Any], markdown: str) -> None:
    """Write $MLOPS_HOME/bench/<name>.json and <name>.md and print the Markdown."""
    folder = get_settings().home / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(doc, indent=1, default=_json_default))
    (folder / f"{name}.md").write_text(markdown)
    print(markdown)


def _json_default(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else str(value)
