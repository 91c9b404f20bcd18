"""What a capacity plan starts from: the figures `make bench` measured, or the documented ones.

    python -c "from mlops_lab.bench.capacity_figures import documented; print(documented())"

`python -m mlops_lab.bench.capacity` plans from these. Each figure comes with where it came
from: a key of a file under $MLOPS_HOME/bench/ (serving.json, router.json, and torch.json when
`python -m mlops_lab.bench.torch_device` ran), or the sentence of docs/architecture.md or
docs/gpu.md that quotes it (`--from-docs`). A required figure that nobody gave is one line that
names the part of `make bench` to run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The part of the benchmarks that writes each file, named in the message when one is missing.
PARTS = {
    "serving.json": (".venv/bin/python -m mlops_lab.bench.serving", "the serving part of `make bench`"),
    "router.json": (".venv/bin/python -m mlops_lab.bench.router", "the router part of `make bench`"),
    "torch.json": (
        "make setup-gpu && .venv/bin/python -m mlops_lab.bench.torch_device",
        "not part of `make bench`; on a GPU machine it adds the CUDA figures",
    ),
}


def run_part(file: str) -> str:
    command, what = PARTS[file]
    return f"`{command}` ({what})"


REQUIRED = {  # figure -> the file that has it
    "capacity_rps": "serving.json",
    "p99_at_load": "serving.json",
    "rss_mib": "serving.json",
    "batch_http_row_us": "serving.json",
    "model_row_us": "serving.json",
    "router_p99_ms": "router.json",
}
DOCS = "docs/architecture.md (Performance, measured: make bench of 2026-11-26, shared 2-core Xeon VM)"
DOCS_GPU = "docs/gpu.md (four runs on 2026-11-26; the slow end of each range)"


@dataclass(frozen=True)
class Figures:
    """What was measured; None where nothing says. `source` says where each figure came from."""

    capacity_rps: float | None = None  # one worker on one core, closed loop at saturation
    p99_at_load: tuple[tuple[float, float], ...] = ()  # (fraction of capacity, p99 ms), open loop
    router_p99_ms: float | None = None  # p99 added by the router at concurrency 8
    rss_mib: float | None = None  # one server process
    batch_http_row_us: float | None = None  # one row of a 1,000-row POST /v1/predict/batch
    model_row_us: float | None = None  # the handler's model work for one row, in process (sklearn)
    batch_row_us: float | None = None  # batch scoring in process, sklearn pipeline
    torch_cpu_row_us: float | None = None  # batch scoring in process, torch flavour, CPU
    torch_cpu_single_us: float | None = None  # compiled single-row scorer, torch, CPU, p50
    cuda_row_us: float | None = None  # batch scoring, torch flavour on CUDA
    cuda_single_us: float | None = None  # single row on CUDA, p50
    origin: str = ""  # where the figures come from, in one line
    source: dict[str, str] = field(default_factory=dict)  # figure -> where in that origin
    notes: tuple[str, ...] = ()


class CapacityError(Exception):
    """A plan that cannot be made from these figures; the message says why, in one line."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ---------------------------------------------------------------- the figures
def documented() -> Figures:
    """The figures the docs quote (DOCS, DOCS_GPU), each with the sentence it comes from."""
    return Figures(
        capacity_rps=2306.0,
        p99_at_load=((0.5, 16.0), (0.8, 24.0)),
        router_p99_ms=7.14,
        rss_mib=361.0,
        batch_http_row_us=76.0,
        model_row_us=5.0,
        batch_row_us=4.7,
        torch_cpu_row_us=6.2,
        torch_cpu_single_us=67.0,
        origin=f"documented (--from-docs): {DOCS}; {DOCS_GPU}",
        source={
            "capacity_rps": "architecture.md: throughput predict 2,306 req/s (closed loop, 16 connections)",
            "p99_at_load": "architecture.md: open loop at 50% / 80% of capacity, p99 16 / 24 ms",
            "router_p99_ms": "architecture.md, Router overhead: added p99 at concurrency 8",
            "rss_mib": "architecture.md: server RSS after warm-up",
            "batch_http_row_us": "architecture.md: batch per-row cost at 1,000 rows",
            "model_row_us": "architecture.md: in-process score_one (p50)",
            "batch_row_us": "gpu.md: sklearn, batch scoring per row 1.5-4.7 us",
            "torch_cpu_row_us": "gpu.md: torch on the CPU, batch scoring per row 2.2-6.2 us",
            "torch_cpu_single_us": "gpu.md: torch on the CPU, single-row p50 48-67 us",
        },
        notes=("no CUDA figure is documented (docs/gpu.md): the GPU lines give a break-even instead",),
    )


def _dig(doc: dict[str, Any], path: str, file: Path) -> Any:
    value: Any = doc
    for key in path.split("/"):
        try:
            value = value[int(key)] if isinstance(value, list) else value[key]
        except (KeyError, IndexError, ValueError, TypeError):
            where = path.replace("/", ".")
            raise CapacityError(f"{file}: no {where}; re-run {run_part(file.name)}", 2) from None
    return value


def _read(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / name
    if not path.is_file():
        return None
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CapacityError(f"{path}: cannot read it ({exc}); re-run {run_part(name)}", 2) from None
    return doc


def from_bench(folder: Path) -> Figures:
    """The figures in the files `make bench` (and bench.torch_device) wrote under `folder`."""
    got: dict[str, Any] = {}
    source: dict[str, str] = {}
    notes: list[str] = []

    def take(name: str, file: str, doc: dict[str, Any], path: str, scale: float = 1.0) -> None:
        value = _dig(doc, path, folder / file)
        if value is not None:
            got[name] = float(value) * scale
            source[name] = f"{file}: {path.replace('/', '.')}"

    serving = _read(folder, "serving.json")
    if serving is not None:
        take("capacity_rps", "serving.json", serving, "figures/throughput/predict/throughput_rps")
        runs = _dig(serving, "figures/open_loop", folder / "serving.json")
        got["p99_at_load"] = tuple(
            (float(r["fraction"]), float(r["p99_ms"])) for r in runs if r.get("p99_ms") is not None
        )
        source["p99_at_load"] = "serving.json: figures.open_loop[].fraction, p99_ms"
        # The larger of the RSS after warm-up and at the end: the prediction log's queue grows it.
        rss = [
            _dig(serving, f"figures/{k}", folder / "serving.json")
            for k in ("server_rss_mib", "server_rss_end_mib")
        ]
        got["rss_mib"] = max(float(x) for x in rss if x is not None)
        source["rss_mib"] = "serving.json: max(figures.server_rss_mib, figures.server_rss_end_mib)"
        take("batch_http_row_us", "serving.json", serving, "figures/batch/per_row_ms", 1000.0)
        take("model_row_us", "serving.json", serving, "figures/in_process/features_score_us/p50")
    router = _read(folder, "router.json")
    torch = _read(folder, "torch.json")
    docs = {"serving.json": serving, "router.json": router, "torch.json": torch}
    if router is not None:
        take("router_p99_ms", "router.json", router, "concurrency 8/added_p99_ms")
    if torch is None:
        notes.append(f"no torch.json: the torch and GPU lines need {run_part('torch.json')}")
    else:
        take("batch_row_us", "torch.json", torch, "figures/sklearn/batch_per_row_us")
        take("torch_cpu_row_us", "torch.json", torch, "figures/torch_cpu/batch_per_row_us")
        take("torch_cpu_single_us", "torch.json", torch, "figures/torch_cpu/single_row_us/p50")
        if "torch_cuda" in torch.get("figures", {}):
            take("cuda_row_us", "torch.json", torch, "figures/torch_cuda/batch_per_row_us")
            take("cuda_single_us", "torch.json", torch, "figures/torch_cuda/single_row_us/p50")
        else:
            notes.append("torch.json has no CUDA figures (it ran without a GPU): GPU lines give a break-even")
    found = [f"{name} {doc.get('generated_at', '')}".strip() for name, doc in docs.items() if doc]
    origin = f"measured, {folder}: " + (", ".join(found) or "no file there")
    return Figures(**got, origin=origin, source=source, notes=tuple(notes))


def missing(figures: Figures, folder: Path) -> str | None:
    """One line for the first required figure nobody gave: which part of make bench writes it."""
    for name, file in REQUIRED.items():
        if getattr(figures, name) in (None, ()):
            state = "has no usable figures" if (folder / file).is_file() else "not found"
            return (
                f"capacity: {folder / file} {state}: run {run_part(file)}, "
                "or pass --from-docs or the figures as flags (--help)"
            )
    return None
