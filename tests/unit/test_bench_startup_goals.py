"""The serving benchmark's start-up and memory goals (pure functions of its figures).

.venv/bin/pytest -p no:cacheprovider tests/unit/test_bench_startup_goals.py -q
"""

from __future__ import annotations

from typing import Any

from mlops_lab.bench.report import RSS_GOAL_MIB, STARTUP_GOAL_S, goals_of, startup_goals


def _startup(ready: list[float], rss: list[float]) -> dict[str, Any]:
    def side(r: list[float], m: list[float]) -> dict[str, Any]:
        return {"ready_s": r, "rss_mib": m, "median_ready_s": sorted(r)[1], "median_rss_mib": sorted(m)[1]}

    return {
        "repeats": 3,
        "warm_up": "200 single rows",
        "server": side(ready, rss),
        "bare": side([0.5] * 3, [59.0] * 3),
    }


def _figures(startup: dict[str, Any] | None) -> dict[str, Any]:
    latency = {"throughput_rps": 1000.0, "p50_ms": 0.5, "p99_ms": 2.0}
    figures: dict[str, Any] = {
        "throughput": {"predict": latency, "noop": latency},
        "concurrency_1": {"predict": latency, "noop": latency},
        "in_process": {"goal_p50_ms": 0.01},
        "batch": {"rows": 1000, "per_row_ms": 0.005},
    }
    return figures | ({"startup": startup} if startup else {})


def test_start_up_and_rss_are_judged_on_their_medians_next_to_the_bare_app() -> None:
    goals = {g["name"]: g for g in startup_goals(_figures(_startup([1.2, 3.0, 1.4], [98.0, 97.0, 160.0])))}
    ready, rss = goals["server start-up, process start -> /readyz 200"], goals["server RSS after warm-up"]
    assert (ready["measured"], ready["met"], ready["target"]) == (1.4, True, f"<= {STARTUP_GOAL_S:g} s")
    assert (rss["measured"], rss["met"], rss["target"]) == (98.0, True, f"<= {RSS_GOAL_MIB:g} MiB")
    assert "bare uvicorn app 0.500 s" in ready["detail"] and "bare uvicorn app 59.0 MiB" in rss["detail"]
    slow = startup_goals(_figures(_startup([5.0, 10.1, 6.0], [300.0, 353.0, 365.0])))
    assert [g["met"] for g in slow] == [False, False]


def test_the_batch_goal_is_per_row_against_a_single_row_request() -> None:
    batch = [g for g in goals_of(_figures(None)) if "batch" in g["name"]]
    assert [g["name"] for g in batch] == ["per-row cost of a 1000-row batch"]
    assert (
        batch[0]["target"] == "<= 1/50 of a single-row request" and batch[0]["met"] is True
    )  # 5 us <= 10 us


def test_a_run_without_start_up_figures_has_no_start_up_goals() -> None:
    assert startup_goals(_figures(None)) == [] and len(goals_of(_figures(None))) == 5
