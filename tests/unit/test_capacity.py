"""Capacity and cost (mlops_lab.bench.capacity, capacity_figures) on a synthetic bench directory.

The files are shaped like those `make bench` writes (only the keys the module reads), with round
figures so every expected value below can be checked by hand. The last test runs each command
shown in docs/concepts/capacity-and-cost.md and compares its output with the page.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

import pytest

from mlops_lab.bench import capacity, capacity_figures
from mlops_lab.bench.capacity import Ask

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "concepts" / "capacity-and-cost.md"
COMMAND = "$ .venv/bin/python -m mlops_lab.bench.capacity"


def serving_doc(capacity_rps: float = 2000.0) -> dict[str, Any]:
    return {
        "generated_at": "2026-12-01T10:00:00+00:00",
        "figures": {
            "throughput": {"predict": {"throughput_rps": capacity_rps}},
            "open_loop": [
                {"fraction": 0.5, "rate_rps": capacity_rps / 2, "p99_ms": 10.0},
                {"fraction": 0.8, "rate_rps": capacity_rps * 0.8, "p99_ms": 30.0},
            ],
            "server_rss_mib": 300.0,
            "server_rss_end_mib": 320.0,
            "batch": {"per_row_ms": 0.05},
            "in_process": {"features_score_us": {"p50": 10.0}},
        },
    }


def torch_doc(cuda: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "sklearn": {"batch_per_row_us": 3.6},
        "torch_cpu": {"batch_per_row_us": 7.2, "single_row_us": {"p50": 40.0}},
    }
    if cuda:
        figures["torch_cuda"] = {"batch_per_row_us": 0.18, "single_row_us": {"p50": 90.0}}
    return {"figures": figures}


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "serving.json").write_text(json.dumps(serving_doc()))
    (folder / "router.json").write_text(json.dumps({"concurrency 8": {"added_p99_ms": 5.0}}))
    return folder


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = capacity.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_figures_are_read_from_the_bench_files(bench: Path) -> None:
    f = capacity_figures.from_bench(bench)
    assert f.capacity_rps == 2000.0
    assert f.p99_at_load == ((0.5, 10.0), (0.8, 30.0))
    assert f.router_p99_ms == 5.0
    assert f.rss_mib == 320.0, "the larger of the RSS after warm-up and at the end"
    assert f.batch_http_row_us == pytest.approx(50.0)
    assert f.model_row_us == 10.0
    assert f.batch_row_us is None and f.cuda_row_us is None, "no torch.json"
    assert any("torch.json" in note for note in f.notes)


def test_replicas_memory_and_costs_by_hand(bench: Path) -> None:
    f = capacity_figures.from_bench(bench)
    p = capacity.plan(f, Ask(rps=5000, p99_ms=50, cpu_hour=0.036, gpu_hour=1.8, cores_per_node=2))
    assert p.budget_ms == 45.0  # 50 - 5 of the router
    assert p.utilisation == 0.6  # the target: 80% load met the budget too (30 ms <= 45)
    assert p.replica_rps == pytest.approx(1200.0)
    assert p.needed == 5  # ceil(5000 / 1200)
    assert p.nodes == 4  # ceil(5 / 2) + 1
    assert p.per_node == 2  # ceil(5 / 3): any one node can go
    assert p.replicas == 8
    assert p.memory_per_node_mib == pytest.approx(2 * 320 * 1.25)
    assert p.surge_one_node_down == pytest.approx(3 * 2 * 1200 / 5000 - 1)
    # $ per million: seconds of the priced unit per prediction x 1e6 x $/h / 3600
    assert p.cost["online_cpu_deployed"] == pytest.approx(8 / 5000 * 1e6 * 0.036 / 3600)  # 0.016
    assert p.cost["online_cpu"] == pytest.approx(1 / 1200 * 1e6 * 0.036 / 3600)
    assert p.cost["batch_http"] == pytest.approx(50e-6 * 1e6 * 0.036 / 3600)  # 0.0005
    assert p.cost["online_gpu"] is None and p.cost["batch_gpu"] is None
    assert p.cost["online_torch_cpu"] is None, "no torch figure, no estimate"


def test_utilisation_never_above_the_highest_load_measured_within_the_budget(bench: Path) -> None:
    f = capacity_figures.from_bench(bench)
    assert capacity.plan(f, Ask(p99_ms=30, utilisation=0.9)).utilisation == 0.5  # 80% had p99 30 > 25
    assert capacity.plan(f, Ask(p99_ms=50, utilisation=0.9)).utilisation == 0.8  # no extrapolation
    assert capacity.plan(f, Ask(p99_ms=50, utilisation=0.4)).utilisation == 0.4


def test_no_load_within_the_budget_is_one_line_and_exit_1(
    bench: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--bench-dir", str(bench), "--p99-ms", "12")
    assert (code, out) == (1, "")
    assert err == (
        "capacity: no measured load keeps p99 within 7.0 ms (SLO 12 ms - router 5 ms): "
        "at 50% of capacity p99 was 10 ms\n"
    )


def test_gpu_and_torch_lines_with_cuda_figures(bench: Path) -> None:
    (bench / "torch.json").write_text(json.dumps(torch_doc(cuda=True)))
    f = capacity_figures.from_bench(bench)
    p = capacity.plan(f, Ask(cpu_hour=0.036, gpu_hour=1.8))
    assert p.cost["batch_cpu"] == pytest.approx(3.6 * 0.036 / 3600)  # 3.6 us a row: $0.000036 / M
    assert p.cost["batch_gpu"] == pytest.approx(0.18 * 1.8 / 3600)  # 50 x the price, 40 x faster
    assert p.cost["batch_gpu"] > p.cost["batch_torch_cpu"] == pytest.approx(7.2 * 0.036 / 3600)
    # Online, one row per request: 1e6/2000 = 500 us a request, 10 of them the model's.
    overhead = 500 - 10
    gpu_rate = 1e6 / (overhead + 90)
    assert p.cost["online_gpu"] == pytest.approx(1 / (gpu_rate * 0.6) * 1e6 * 1.8 / 3600)
    assert p.cost["online_gpu"] / p.cost["online_cpu"] > 50, "a GPU fed one row at a time"


def test_without_cuda_the_gpu_lines_give_a_break_even(bench: Path) -> None:
    (bench / "torch.json").write_text(json.dumps(torch_doc(cuda=False)))
    p = capacity.plan(capacity_figures.from_bench(bench), Ask(cpu_hour=0.036, gpu_hour=1.8))
    by_name = {line.name: line for line in p.costs}
    gpu_batch = by_name["batch, GPU, in process (torch)"]
    assert gpu_batch.value == "n/a"
    assert "0.144 us a row" in gpu_batch.formula  # 7.2 us on the CPU / 50
    assert "100,000 req/s" in by_name["online, GPU, torch (estimated)"].formula  # 2,000 x 50


@pytest.mark.parametrize(
    ("remove", "command"),
    [
        ("serving.json", "python -m mlops_lab.bench.serving"),
        ("router.json", "python -m mlops_lab.bench.router"),
    ],
)
def test_a_missing_bench_file_names_the_part_to_run(
    bench: Path, capsys: pytest.CaptureFixture[str], remove: str, command: str
) -> None:
    (bench / remove).unlink()
    code, out, err = run(capsys, "--bench-dir", str(bench))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1, err
    assert err.startswith(f"capacity: {bench / remove} not found: run `.venv/bin/{command}`")
    assert "make bench" in err


def test_flags_replace_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--capacity-rps", "1000", "--p99-at", "0.8:20,0.5:8", "--router-p99-ms", "0"]
    flags += ["--rss-mib", "200", "--batch-http-row-us", "40", "--model-row-us", "5"]
    code, out, err = run(capsys, "--bench-dir", str(tmp_path), *flags, "--rps", "1000")
    assert (code, err) == (0, "")
    assert "--p99-at 0.5:8,0.8:20" in out  # sorted by load
    assert "ceil(1,000 / 600)" in out  # 1,000 req/s x the 60% target
    assert "given by flag" in out


def test_the_documented_figures_are_the_ones_the_docs_quote() -> None:
    f = capacity_figures.documented()
    arch = (ROOT / "docs" / "architecture.md").read_text()
    gpu = (ROOT / "docs" / "gpu.md").read_text()
    for quoted in ("2,306 / 3,273 req/s", "p99 16 / 24 ms", "361 MiB", "0.69 / 8.47 ms", "1.30 / 7.14 ms"):
        assert quoted in arch, f"docs/architecture.md no longer says {quoted!r}: update documented()"
    for quoted in ("1.5-4.7 us", "2.2-6.2 us", "48-67 us"):
        assert quoted in gpu, f"docs/gpu.md no longer says {quoted!r}: update documented()"
    assert (f.capacity_rps, f.router_p99_ms, f.rss_mib, f.batch_http_row_us) == (2306, 7.14, 361, 76)
    assert math.isclose(f.torch_cpu_row_us or 0, 6.2) and f.cuda_row_us is None


def documented_runs() -> list[tuple[list[str], str]]:
    """Each ```text block of the page that starts with the command: its arguments and the output."""
    runs = []
    for block in PAGE.read_text().split("```text\n")[1:]:
        body = block.split("```", 1)[0]
        first, _, output = body.partition("\n")
        if first.startswith(COMMAND):
            runs.append((shlex.split(first.removeprefix(COMMAND)), output))
    return runs


def test_the_page_shows_what_each_command_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the page's relative paths are from the checkout
    runs = documented_runs()
    assert len(runs) >= 3, "the page shows the command's output (from-docs, own figures, a missing file)"
    for argv, expected in runs:
        _, out, err = run(capsys, *argv)
        assert out + err == expected, f"docs/concepts/capacity-and-cost.md: re-run {COMMAND} {' '.join(argv)}"
