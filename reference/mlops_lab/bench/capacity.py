"""Capacity and cost from measured figures: replicas, memory per node, cost per million predictions.

    .venv/bin/python -m mlops_lab.bench.capacity [--rps 2000] [--p99-ms 50] [--cpu-hour 0.04] [--gpu-hour 1.2]
    .venv/bin/python -m mlops_lab.bench.capacity --from-docs       # the figures of docs/architecture.md
    .venv/bin/python -m mlops_lab.bench.capacity --capacity-rps 1800 --p99-at 0.5:20,0.8:45   # your own

It measures nothing: it reads what `make bench` wrote under $MLOPS_HOME/bench/ and does the
arithmetic of a capacity plan, printing every line with its formula and the numbers in it:

  serving.json   one uvicorn worker on one core: predict throughput at saturation (a replica's
                 capacity), open-loop p99 at 50% and 80% of it, RSS, batch cost per row, the
                 in-process cost of scoring one row (python -m mlops_lab.bench.serving)
  router.json    the p99 the canary router adds at concurrency 8 (python -m mlops_lab.bench.router)
  torch.json     optional, not part of make bench: batch and single-row cost of the torch flavour
                 on the CPU, and on CUDA when it ran on a GPU (python -m mlops_lab.bench.torch_device)

From them: the p99 budget left to a replica, the utilisation that keeps p99 inside it (the
target, never above the highest load that was measured to meet it: no extrapolation), replicas
for --rps with one spare node (N+1: any node can be lost), memory per node, and the cost per
million predictions online and batch, CPU and GPU. A GPU line without CUDA figures prints the
break-even figure a GPU would have to reach instead of a guess.

Every figure can be given by a flag (--help lists them), which also replaces a missing file;
--from-docs starts from the figures documented in docs/architecture.md and docs/gpu.md. A
required figure that is neither in a file nor in a flag: one line naming the part of make bench
to run, exit code 2 (reading the figures: capacity_figures.py). The walk-through, with the
project's figures: docs/concepts/capacity-and-cost.md.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from mlops_lab.bench.capacity_figures import CapacityError, Figures, documented, from_bench, missing
from mlops_lab.settings import get_settings


@dataclass(frozen=True)
class Ask:
    """The question: the load, the SLO, the prices, and the assumptions a learner may change."""

    rps: float = 2000.0
    p99_ms: float = 50.0
    cpu_hour: float = 0.04  # $ per core-hour (one replica = one uvicorn worker = one core)
    gpu_hour: float = 1.2  # $ per hour of a GPU instance
    utilisation: float = 0.6  # target busy share of a replica
    cores_per_node: int = 4
    # An assumption, not a measurement: a reload holds the new model beside the old one, and the
    # holder caches previous versions (model_cache_versions); the bench measured one version.
    mem_headroom: float = 1.25


@dataclass(frozen=True)
class Line:
    name: str
    value: str
    formula: str


@dataclass
class Plan:
    """The numbers (for tests and notebooks) and the lines that print them with their formulas."""

    budget_ms: float = math.nan
    utilisation: float = math.nan
    replica_rps: float = math.nan
    needed: int = 0
    nodes: int = 0
    per_node: int = 0
    replicas: int = 0
    memory_per_node_mib: float = math.nan
    surge_one_node_down: float = math.nan
    cost: dict[str, float | None] = field(default_factory=dict)  # $ per million predictions
    capacity: list[Line] = field(default_factory=list)
    costs: list[Line] = field(default_factory=list)


# ---------------------------------------------------------------- the arithmetic
def _n(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def money(x: float) -> str:
    """Dollars with three significant figures, never in e-notation ($0.0000522)."""
    if x <= 0 or not math.isfinite(x):
        return f"${x:g}"
    decimals = max(2, 2 - math.floor(math.log10(x)))
    return f"${x:,.{decimals}f}"


def price(x: float) -> str:
    """A price as it was given: $0.04, $1.20, $0.035."""
    return f"${x:,.2f}" if round(x, 2) == x else f"${x:g}"


def per_million(seconds_per_prediction: float, dollars_per_hour: float) -> float:
    """$ per 1,000,000 predictions when each one holds a unit priced per hour for that long."""
    return seconds_per_prediction * 1e6 * dollars_per_hour / 3600


def plan(f: Figures, ask: Ask) -> Plan:
    """The capacity plan and the costs; raises CapacityError when no measured load meets the SLO."""
    assert f.capacity_rps and f.router_p99_ms is not None and f.rss_mib is not None, "see missing()"
    p = Plan()
    # --8<-- [start:replicas]
    # The router sits in front of every replica: its added p99 comes off the SLO first.
    p.budget_ms = ask.p99_ms - f.router_p99_ms
    within = [fraction for fraction, p99 in f.p99_at_load if p99 <= p.budget_ms]
    if not within:
        lowest, its_p99 = min(f.p99_at_load)
        raise CapacityError(
            f"capacity: no measured load keeps p99 within {p.budget_ms:.1f} ms (SLO {ask.p99_ms:g} ms - "
            f"router {f.router_p99_ms:g} ms): at {lowest:.0%} of capacity p99 was {its_p99:g} ms",
            1,
        )
    # Never plan above the highest load that was measured to meet the budget: no extrapolation.
    p.utilisation = min(ask.utilisation, max(within))
    p.replica_rps = f.capacity_rps * p.utilisation
    p.needed = math.ceil(ask.rps / p.replica_rps)
    # N+1: one node more than the load needs, each node small enough that any one can be lost.
    p.nodes = math.ceil(p.needed / ask.cores_per_node) + 1
    p.per_node = math.ceil(p.needed / (p.nodes - 1))
    p.replicas = p.nodes * p.per_node
    p.memory_per_node_mib = p.per_node * f.rss_mib * ask.mem_headroom
    # What the fleet absorbs at the SLO with a node down, while new replicas start (cold starts).
    p.surge_one_node_down = (p.nodes - 1) * p.per_node * p.replica_rps / ask.rps - 1
    # --8<-- [end:replicas]
    p.capacity = _capacity_lines(f, ask, p, max(within))
    p.costs, p.cost = _costs(f, ask, p)
    return p


def _capacity_lines(f: Figures, ask: Ask, p: Plan, highest: float) -> list[Line]:
    assert f.capacity_rps and f.router_p99_ms is not None and f.rss_mib is not None
    return [
        Line(
            "p99 budget of a replica",
            f"{p.budget_ms:.2f} ms",
            f"SLO {ask.p99_ms:g} ms - router's added p99 {f.router_p99_ms:g} ms",
        ),
        Line(
            "utilisation",
            f"{p.utilisation:.0%}",
            f"min(target {ask.utilisation:.0%}, highest load measured with p99 <= budget: {highest:.0%})",
        ),
        Line("req/s per replica", _n(p.replica_rps), f"capacity {_n(f.capacity_rps)} x {p.utilisation:.0%}"),
        Line("replicas for the load", str(p.needed), f"ceil({_n(ask.rps)} / {_n(p.replica_rps)})"),
        Line("nodes (N+1)", str(p.nodes), f"ceil({p.needed} / {ask.cores_per_node} cores per node) + 1"),
        Line("replicas per node", str(p.per_node), f"ceil({p.needed} / ({p.nodes} - 1))"),
        Line("replicas deployed", str(p.replicas), f"{p.nodes} nodes x {p.per_node}"),
        Line(
            "memory per node",
            f"{_n(p.memory_per_node_mib)} MiB",
            f"{p.per_node} x RSS {_n(f.rss_mib)} MiB x headroom {ask.mem_headroom:g}",
        ),
        Line(
            "surge, one node down",
            f"{p.surge_one_node_down:+.0%}",
            f"({p.nodes} - 1) x {p.per_node} x {_n(p.replica_rps)} / {_n(ask.rps)} - 1",
        ),
    ]


def _costs(f: Figures, ask: Ask, p: Plan) -> tuple[list[Line], dict[str, float | None]]:
    assert f.capacity_rps and f.batch_http_row_us is not None and f.model_row_us is not None
    cap, u, cpu, gpu = f.capacity_rps, p.utilisation, ask.cpu_hour, ask.gpu_hour
    lines: list[Line] = []
    cost: dict[str, float | None] = {}

    def add(key: str, name: str, value: float | None, formula: str) -> None:
        cost[key] = value
        lines.append(Line(name, "n/a" if value is None else money(value), formula))

    # --8<-- [start:costs]
    # Online: the fleet runs whether requests come or not; a request holds a replica 1/rate s.
    add(
        "online_cpu_deployed",
        "online, CPU, the N+1 fleet",
        per_million(p.replicas / ask.rps, cpu),
        f"{p.replicas} replicas x {price(cpu)}/h / ({_n(ask.rps)} req/s x 3,600 s) x 1e6",
    )
    add(
        "online_cpu",
        f"online, CPU, a replica at {u:.0%}",
        per_million(1 / (cap * u), cpu),
        f"{price(cpu)}/h / ({_n(cap)} req/s x {u:.0%} x 3,600 s) x 1e6",
    )
    # What a request costs besides the model (HTTP, validation, the log), measured with sklearn.
    overhead_us = 1e6 / cap - f.model_row_us
    for key, device, single, unit in (
        ("online_torch_cpu", "CPU", f.torch_cpu_single_us, cpu),
        ("online_gpu", "GPU", f.cuda_single_us, gpu),
    ):
        name = f"online, {device}, torch (estimated)"
        if single is None:  # what the device would have to reach, instead of a guess
            match = f"{_n(cap * unit / cpu)} req/s ({_n(cap)} x {unit / cpu:.3g})"
            add(key, name, None, f"not measured; a replica must serve {match} at the SLO to match the CPU")
            continue
        rate = 1e6 / (overhead_us + single)
        add(
            key,
            name,
            per_million(1 / (rate * u), unit),
            f"{price(unit)}/h / ({_n(rate)} req/s x {u:.0%} x 3,600 s) x 1e6, where {_n(rate)} = "
            f"1e6 / ({overhead_us:.0f} us besides the model + {single:g} us a row)",
        )
    # Batch: a job keeps its core (or GPU) busy from start to end: no headroom, no spare node.
    for key, name, row, unit in (
        ("batch_http", "batch, CPU, HTTP endpoint", f.batch_http_row_us, cpu),
        ("batch_cpu", "batch, CPU, in process (sklearn)", f.batch_row_us, cpu),
        ("batch_torch_cpu", "batch, CPU, in process (torch)", f.torch_cpu_row_us, cpu),
        ("batch_gpu", "batch, GPU, in process (torch)", f.cuda_row_us, gpu),
    ):
        if row is not None:
            formula = f"{row:g} us a row x 1e6 x {price(unit)}/h / 3.6e9 us"
            add(key, name, per_million(row / 1e6, unit), formula)
        elif key == "batch_gpu" and f.torch_cpu_row_us is not None:
            even = f.torch_cpu_row_us * cpu / gpu
            ratio = f"{f.torch_cpu_row_us:g} us on the CPU / {gpu / cpu:.3g}"
            add(key, name, None, f"not measured; beats the CPU under {even:.3g} us a row ({ratio})")
        else:
            add(key, name, None, "not measured: needs torch.json")
    # --8<-- [end:costs]
    return lines, cost


# ---------------------------------------------------------------- printing
def flag_of(figure: str) -> str:
    return "--p99-at" if figure == "p99_at_load" else f"--{figure.replace('_', '-')}"


def render(f: Figures, ask: Ask, p: Plan) -> str:
    width = max(len(line.name) for line in [*p.capacity, *p.costs]) + 2
    out = [
        f"Capacity and cost: {_n(ask.rps)} predictions/s at p99 <= {ask.p99_ms:g} ms; "
        f"CPU {price(ask.cpu_hour)}/core-hour, GPU {price(ask.gpu_hour)}/hour",
        f"Figures: {f.origin}",
        "",
        "Inputs (each one is also a flag)",
    ]
    for name in Figures.__dataclass_fields__:
        if name in f.source:
            value = getattr(f, name)
            shown = ",".join(f"{a:g}:{b:g}" for a, b in value) if name == "p99_at_load" else f"{value:g}"
            out.append(f"  {flag_of(name) + ' ' + shown:<{width}}{f.source[name]}")
    out += [f"  note: {n}" for n in f.notes]
    for title, lines in (("Capacity", p.capacity), ("Cost per million predictions", p.costs)):
        out += ["", f"{title:<{width + 2}}{'value':<12}formula"]
        out += [f"  {line.name:<{width}}{line.value:<12}{line.formula}" for line in lines]
    return "\n".join(out) + "\n"


def _p99_list(text: str) -> tuple[tuple[float, float], ...]:
    try:
        pairs = [item.split(":") for item in text.split(",") if item.strip()]
        return tuple(sorted((float(a), float(b)) for a, b in pairs))
    except ValueError:
        message = f"expected FRACTION:P99_MS,... like 0.5:16,0.8:24, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


FLAGS = {  # figure -> help (the flag is the figure's name with dashes)
    "capacity_rps": "req/s one replica (one worker, one core) sustains at saturation",
    "router_p99_ms": "p99 the router adds, ms (0 without one)",
    "rss_mib": "memory of one server process, MiB",
    "batch_http_row_us": "one row of a 1,000-row batch request, us",
    "model_row_us": "the model work of one request in process, us",
    "batch_row_us": "batch scoring per row in process (sklearn), us",
    "torch_cpu_row_us": "batch scoring per row, torch flavour on the CPU, us",
    "torch_cpu_single_us": "single row p50, torch flavour on the CPU, us",
    "cuda_row_us": "batch scoring per row, torch flavour on CUDA, us",
    "cuda_single_us": "single row p50, torch flavour on CUDA, us",
}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m mlops_lab.bench.capacity", description=(__doc__ or "").splitlines()[0]
    )
    d = Ask()
    ap.add_argument("--rps", type=float, default=d.rps, help="predictions per second to serve")
    ap.add_argument("--p99-ms", type=float, default=d.p99_ms, help="the p99 latency SLO, ms")
    ap.add_argument("--cpu-hour", type=float, default=d.cpu_hour, help="$ per core-hour")
    ap.add_argument("--gpu-hour", type=float, default=d.gpu_hour, help="$ per GPU-hour")
    ap.add_argument("--utilisation", type=float, default=d.utilisation, help="target busy share")
    ap.add_argument("--cores-per-node", type=int, default=d.cores_per_node)
    ap.add_argument("--mem-headroom", type=float, default=d.mem_headroom, help="x RSS per replica")
    ap.add_argument("--bench-dir", type=Path, default=None, help="default: $MLOPS_HOME/bench")
    ap.add_argument("--from-docs", action="store_true", help="start from the documented figures")
    ap.add_argument("--p99-at", type=_p99_list, default=None, help="open-loop p99: 0.5:16,0.8:24")
    for name, text in FLAGS.items():
        ap.add_argument(f"--{name.replace('_', '-')}", type=float, default=None, help=text)
    return ap


def _check_ask(ask: Ask) -> None:
    problems = [
        "--rps must be > 0" if ask.rps <= 0 else "",
        "--utilisation must be in (0, 1]" if not 0 < ask.utilisation <= 1 else "",
        "--cores-per-node must be >= 1" if ask.cores_per_node < 1 else "",
        "--cpu-hour and --gpu-hour must be > 0" if min(ask.cpu_hour, ask.gpu_hour) <= 0 else "",
    ]
    if any(problems):
        raise CapacityError("capacity: " + "; ".join(p for p in problems if p), 2)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    ask = Ask(args.rps, args.p99_ms, args.cpu_hour, args.gpu_hour, args.utilisation,
              args.cores_per_node, args.mem_headroom)  # fmt: skip
    folder = args.bench_dir if args.bench_dir is not None else get_settings().home / "bench"
    try:
        _check_ask(ask)
        figures = documented() if args.from_docs else from_bench(folder)
        given = {n: getattr(args, n) for n in FLAGS if getattr(args, n) is not None}
        if args.p99_at is not None:
            given["p99_at_load"] = args.p99_at
        if given:
            source = {**figures.source, **{n: "given by flag" for n in given}}
            origin = f"{figures.origin}; {', '.join(flag_of(n) for n in given)} given by flag"
            figures = replace(figures, **given, origin=origin, source=source)
        if (problem := missing(figures, folder)) is not None:
            raise CapacityError(problem, 2)
        result = plan(figures, ask)
    except CapacityError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    print(render(figures, ask, result), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
