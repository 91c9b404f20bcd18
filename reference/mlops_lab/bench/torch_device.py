"""The torch flavour on CPU vs CUDA, against the sklearn model (not part of `make bench`).

    make setup-gpu
    .venv/bin/python -m mlops_lab.bench.torch_device [--rows 50000] [--repeats 3] [--threads 1]

Writes $MLOPS_HOME/bench/torch.json and torch.md. On a machine without CUDA it prints
"no CUDA device: CPU only" and measures the CPU half; on a GPU machine it adds the CUDA column
and the CPU/CUDA ratios. Every figure is a median over `--repeats` after one warm-up, in one
process, so the ratios compare like with like. CPU work uses `--threads` threads (torch and
BLAS), one by default like the servers (OMP_NUM_THREADS=1), which also keeps a shared machine's
noise out of the figures:

  fit             training on 75% of `--rows` baseline rows (the split `mlops-lab train` uses)
  batch score     `predict_proba` of the whole pipeline on `--score-rows` rows (the batch CLI path)
  forward only    the model step alone on the already transformed rows (where a GPU can help)
  single row      the compiled single-row scorer, p50 / p99 in microseconds (the server's path)
  PR-AUC          on the 25% holdout, to show the flavours are comparable models
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from mlops_lab.bench.report import write_outputs
from mlops_lab.data.generator import generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle import torch_model

COMMAND = ".venv/bin/python -m mlops_lab.bench.torch_device"


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: lazy initialisation, CUDA context and kernels, allocator
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _single_row_us(pipeline: Any, rows: list[dict[str, Any]], n: int = 2_000) -> dict[str, float]:
    scorer = fraud_model.compile_scorer(pipeline)
    assert scorer is not None, "every flavour has a compiled single-row scorer"
    for r in rows[:50]:
        scorer(r)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        scorer(rows[i % len(rows)])
        times.append((time.perf_counter() - t0) * 1e6)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}


def measure(name: str, make: Callable[[], Any], data: dict[str, Any], repeats: int) -> dict[str, Any]:
    x_fit, y_fit, x_hold, y_hold, x_score = (
        data[k] for k in ("x_fit", "y_fit", "x_hold", "y_hold", "x_score")
    )
    fitted: list[Any] = []

    def fit() -> None:
        fitted[:] = [make().fit(x_fit, y_fit)]

    fit_s = _median_s(fit, repeats)
    pipe = fitted[0]
    prep, clf = pipe.named_steps["prep"], pipe.named_steps["clf"]
    transformed = prep.transform(x_score)
    out: dict[str, Any] = {
        "device": str(getattr(clf, "inference_device", "cpu")),  # the torch flavour scores where it trained
        "fit_s": fit_s,
        "batch_score_s": _median_s(lambda: fraud_model.scores(pipe, x_score), repeats),
        # predict_proba copies the scores back to the host, which waits for the device.
        "forward_only_s": _median_s(lambda: clf.predict_proba(transformed), repeats),
        "single_row_us": _single_row_us(pipe, x_hold.head(500).to_dict("records")),
        "pr_auc": fraud_model.metrics(y_hold.to_numpy(), fraud_model.scores(pipe, x_hold), 0.5)["pr_auc"],
    }
    out["batch_per_row_us"] = out["batch_score_s"] / len(x_score) * 1e6
    print(f"  {name}: fit {fit_s:.3f} s, batch {out['batch_score_s']:.3f} s, pr_auc {out['pr_auc']:.3f}")
    return out


def run(rows: int, score_rows: int, repeats: int, threads: int = 1) -> dict[str, Any]:
    torch = torch_model.require_torch()
    torch.set_num_threads(threads)
    started = time.monotonic()
    has_cuda = bool(torch.cuda.is_available())
    notes: list[str] = []
    if not has_cuda:
        print("no CUDA device: CPU only")
        notes.append("no CUDA device on this machine: CPU only, the CUDA figures were not measured")
    df = generate("baseline", rows, seed=42)
    x_fit, x_hold, y_fit, y_hold = train_test_split(
        df[SCHEMA.names], df[SCHEMA.label], test_size=0.25, random_state=42, stratify=df[SCHEMA.label]
    )
    data = {
        "x_fit": x_fit,
        "y_fit": y_fit,
        "x_hold": x_hold,
        "y_hold": y_hold,
        "x_score": generate("baseline", score_rows, seed=7)[SCHEMA.names],
    }
    params = torch_model.TorchHyperparams()
    flavours: dict[str, Callable[[], Any]] = {
        "sklearn": lambda: fraud_model.build_pipeline(fraud_model.Hyperparams()),
        "torch_cpu": lambda: torch_model.build_pipeline(params, device="cpu"),
    }
    if has_cuda:
        flavours["torch_cuda"] = lambda: torch_model.build_pipeline(params, device="cuda")
    figures = {}
    for name, make in flavours.items():
        figures[name] = measure(name, make, data, repeats)
    ratios = _ratios(figures)
    environment = {
        "cpu_model": _cpu_model(),
        "cores_available": len(os.sched_getaffinity(0)),
        "torch_threads": int(torch.get_num_threads()),
        "gpu": torch.cuda.get_device_name(0) if has_cuda else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    return {
        "command": COMMAND,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "setup": {"rows": rows, "fit_rows": len(x_fit), "score_rows": score_rows, "repeats": repeats},
        "hyperparams": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(params).items()},
        "environment": environment,
        "figures": figures,
        "ratios": ratios,
        "notes": notes,
        "runtime_s": round(time.monotonic() - started, 1),
    }


def _ratios(f: dict[str, dict[str, Any]]) -> dict[str, float]:
    def r(a: str, b: str, key: str, sub: str | None = None) -> float:
        x, y = f[a][key], f[b][key]
        return float((x[sub] / y[sub]) if sub else (x / y))

    out = {
        "fit torch_cpu / sklearn": r("torch_cpu", "sklearn", "fit_s"),
        "batch per row torch_cpu / sklearn": r("torch_cpu", "sklearn", "batch_score_s"),
        "single row p50 torch_cpu / sklearn": r("torch_cpu", "sklearn", "single_row_us", "p50"),
        "pr_auc torch_cpu / sklearn": r("torch_cpu", "sklearn", "pr_auc"),
    }
    if "torch_cuda" in f:
        out |= {
            "fit torch_cpu / torch_cuda": r("torch_cpu", "torch_cuda", "fit_s"),
            "batch torch_cpu / torch_cuda": r("torch_cpu", "torch_cuda", "batch_score_s"),
            "forward only torch_cpu / torch_cuda": r("torch_cpu", "torch_cuda", "forward_only_s"),
            "single row p50 torch_cpu / torch_cuda": r("torch_cpu", "torch_cuda", "single_row_us", "p50"),
        }
    return {k: round(v, 3) for k, v in out.items()}


def markdown(doc: dict[str, Any]) -> str:
    env, st, fig = doc["environment"], doc["setup"], doc["figures"]
    cols = list(fig)
    lines = [
        "# Torch flavour: CPU vs CUDA, against the sklearn model",
        "",
        f"Command: `{doc['command']}` ({doc['generated_at']}, {doc['runtime_s']:.0f} s). "
        f"{st['fit_rows']:,} training rows, {st['score_rows']:,} scored rows, median of {st['repeats']} "
        f"after a warm-up. Machine: {env['cpu_model']}, {env['cores_available']} core(s), torch "
        f"{env['torch']} with {env['torch_threads']} thread(s), GPU: {env['gpu'] or 'none'}.",
        "",
        "| figure | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    rows = [
        ("fit (s)", lambda m: f"{m['fit_s']:.3f}"),
        ("batch score (s)", lambda m: f"{m['batch_score_s']:.3f}"),
        ("batch per row (us)", lambda m: f"{m['batch_per_row_us']:.2f}"),
        ("forward only (s)", lambda m: f"{m['forward_only_s']:.4f}"),
        (
            "single row p50 / p99 (us)",
            lambda m: f"{m['single_row_us']['p50']:.1f} / {m['single_row_us']['p99']:.1f}",
        ),
        ("holdout PR-AUC", lambda m: f"{m['pr_auc']:.3f}"),
    ]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(fig[c]) for c in cols) + " |")
    lines += ["", "| ratio | value |", "|---|---|"]
    lines += [f"| {k} | {v:g} |" for k, v in doc["ratios"].items()]
    lines += [f"- Note: {n}" for n in doc["notes"]]
    return "\n".join(lines) + "\n"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--score-rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and BLAS")
    args = parser.parse_args()
    with threadpool_limits(args.threads):  # numpy/scipy/sklearn BLAS and OpenMP pools
        doc = run(args.rows, args.score_rows, args.repeats, args.threads)
    write_outputs("torch", doc, markdown(doc))


if __name__ == "__main__":
    main()
