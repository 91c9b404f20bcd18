"""Grader of lab 4 / dashboard-queries (exercises/lab4/panels.py): the PromQL of the first panels.

Each query is evaluated by promtool (`promtool test rules`, promql_expr_test: Prometheus' own
query engine) on series written here: a router with two replicas in front of two variants, a
canary that never failed and one that only fails, a variant without traffic, router restarts
(counter resets), monitors whose precision is undefined (NaN). The expected numbers are worked
out by hand next to each case.

What is compared is `round(sum by (<label>) (YOUR QUERY), step) > -Inf`: one number per variant
(or monitor instance), rounded (float rounding of a correct query must not fail it), and NaN
left out, so that "no number" may be a missing series or a NaN (Grafana draws both as a gap).
Rates are over windows whose ends are samples (Prometheus 2's [t - 1h, t] holds 61 of them), so
that rate() needs no extrapolation and the numbers are exact.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

PROMTOOL = shutil.which("promtool")
ROUTER = "mlops_router_requests_total"
R1, R2 = "127.0.0.1:8000", "127.0.0.1:9000"  # two router replicas
BURN_STEP, SHARE_STEP = 0.001, 0.0001  # rounding before comparing


# ---------------------------------------------------------------- series
def counter(*segments: tuple[int, float], reset_at: int | None = None) -> str:
    """A counter sampled every minute from 0: each (minutes, per_minute) segment adds per_minute
    a minute. reset_at: the process restarts at that minute (the counter starts again from 0)."""
    values, total = [0.0], 0.0
    for minutes, per_minute in segments:
        for _ in range(minutes):
            total += per_minute
            values.append(total)
    if reset_at is not None:
        values = values[: reset_at + 1] + [v - values[reset_at] for v in values[reset_at + 1 :]]
    return " ".join(f"{v:.0f}" if v == int(v) else repr(v) for v in values)


def gauge(*segments: tuple[int, str]) -> str:
    """A gauge sampled every minute from 0: (samples, value) segments, e.g. ((90, "0"), (15, "1"))."""
    return " ".join(value for count, value in segments for _ in range(count))


def requests(variant: str, outcome: str, values: str, instance: str = R1) -> dict[str, str]:
    labels = f'job="router",instance="{instance}",variant="{variant}",outcome="{outcome}"'
    return {"series": f"{ROUTER}{{{labels}}}", "values": values}


def monitor(metric: str, instance: str, values: str) -> dict[str, str]:
    return {"series": f'{metric}{{job="monitor",instance="{instance}"}}', "values": values}


# ---------------------------------------------------------------- running promtool
@dataclass(frozen=True)
class Expect:
    at: str  # eval time
    want: dict[str, float | None]  # label value -> its number; None: no number (absent or NaN)
    case: str  # what the series show, for the message


@dataclass(frozen=True)
class Case:
    series: Sequence[dict[str, str]]
    expects: Sequence[Expect]


def seconds(duration: str) -> int:
    """Prometheus' duration text ("1h30m", "2h30s", "90m") in seconds."""
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * unit[u] for n, u in re.findall(r"(\d+)([smhd])", duration))


def show(numbers: dict[str, float | None]) -> str:
    parts = [f"{k} {v:g}" if v is not None else f"no number for {k}" for k, v in numbers.items()]
    return ", ".join(parts) or "no number at all"


def shown(got: str) -> str:
    """promtool's 'got' list ({variant="stable"} 1E+01, ...) as 'stable 10, ...'."""
    found = re.findall(r'\{[^}]*?="([^"]*)"[^}]*\} (\S+?)(?:,|$)', got.strip())
    return ", ".join(f"{label} {float(value):g}" for label, value in found) or "no number at all"


def evaluate(query: Any, by: str, step: float, cases: Sequence[Case], tmp_path: Path) -> None:
    """Evaluate `query` on every case with promtool; fail with what differs, case by case."""
    assert isinstance(query, str) and query.strip(), f"expected a PromQL query (a str), got {query!r}"
    if PROMTOOL is None:
        pytest.fail("promtool is not installed: make setup installs it (apt-get install prometheus)")
    wrapped = f"round(sum by ({by}) (\n{query}\n), {step}) > -Inf"
    tests = [
        {
            "interval": "1m",
            "input_series": list(c.series),
            "promql_expr_test": [
                {
                    "expr": wrapped,
                    "eval_time": e.at,
                    "exp_samples": [
                        {"labels": f'{{{by}="{k}"}}', "value": v} for k, v in e.want.items() if v is not None
                    ],
                }
                for e in c.expects
            ],
        }
        for c in cases
    ]
    (tmp_path / "panels_test.yml").write_text(yaml.safe_dump({"evaluation_interval": "1m", "tests": tests}))
    proc = subprocess.run(
        [PROMTOOL, "test", "rules", "panels_test.yml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode == 0:
        return
    by_time = {seconds(e.at): e for c in cases for e in c.expects}
    problems = []
    for at, error, got in re.findall(
        r'expr: "(?:[^"\\]|\\.)*", time: (\S+?),\s*(?:err: (.*)|exp: .*\n\s*got: (.*))', proc.stdout
    ):
        e = by_time.get(seconds(at))
        if error:
            problems.append(f"expected a query Prometheus can run, got an error: {error.strip()}")
            break
        if e is not None:
            problems.append(f"at {e.at}, {e.case}: expected {show(e.want)}, got {shown(got)}")
    pytest.fail("; ".join(problems) or f"promtool failed: {proc.stdout.strip()[-1500:]}", pytrace=False)


# ---------------------------------------------------------------- burn rate
def test_burn_rate_per_variant(impl: ModuleType, tmp_path: Path) -> None:
    """the burn rate is each variant's error ratio over 1h divided by the 0.1% error budget

    Sum the rates of all the router's request series of a variant first (every outcome, over
    every router replica), then divide the sum of its error rates by it, then by 1 - objective.
    """
    # Window [30m, 90m]. stable: replica 1 answers 596 ok + 4 errors a minute; replica 2 294 ok,
    # 100 fallbacks (stable answering for a failed canary) and 12 errors a minute from 30m to
    # 60m only (6 a minute over the window): 10 errors in 1000 requests a minute, 1%, 10x the
    # budget. canary: replica 1 45 ok + 5 errors, replica 2 50 ok and no error series at all:
    # 5 in 100, 5%, 50x.
    series = [
        requests("stable", "ok", counter((100, 596))),
        requests("stable", "error", counter((100, 4))),
        requests("stable", "ok", counter((100, 294)), R2),
        requests("stable", "fallback", counter((100, 100)), R2),
        requests("stable", "error", counter((30, 0), (30, 12), (40, 0)), R2),
        requests("canary", "ok", counter((100, 45))),
        requests("canary", "error", counter((100, 5))),
        requests("canary", "ok", counter((100, 50)), R2),
    ]
    expect = Expect("90m", {"stable": 10, "canary": 50}, "two variants behind two router replicas")
    evaluate(impl.burn_rate(), "variant", BURN_STEP, [Case(series, [expect])], tmp_path)


def test_burn_rate_without_error_series(impl: ModuleType, tmp_path: Path) -> None:
    """a variant that never failed burns 0, and one whose every request fails burns 1000x

    The router creates a series the first time it counts it: a variant that never failed has no
    error series at all, and a ratio with a missing side is no number. `or` gives it a 0 from a
    series that does exist. A canary that only fails has no ok series either.
    """
    # stable: 950 ok and 50 fallbacks a minute, no error series: 0. canary: 50 errors a minute
    # and nothing else: 100% errors, 1 / 0.001 = 1000.
    series = [
        requests("stable", "ok", counter((100, 950))),
        requests("stable", "fallback", counter((100, 50))),
        requests("canary", "error", counter((100, 50))),
    ]
    expect = Expect("90m", {"stable": 0, "canary": 1000}, "stable never failed, every canary request fails")
    evaluate(impl.burn_rate(), "variant", BURN_STEP, [Case(series, [expect])], tmp_path)


def test_burn_rate_idle_variant(impl: ModuleType, tmp_path: Path) -> None:
    """a variant without traffic in the window has no burn rate (nothing or NaN, never 0)

    0 errors out of 0 requests is 0/0, NaN: Grafana draws a gap. Replacing it with 0 would say
    "healthy" about a variant nobody called.
    """
    # Window [90m, 150m]. stable: 995 ok + 5 errors a minute: 0.5%, 5x. canary: traffic until 60m
    # (100 ok, 1 error a minute), then weight 0: its counters stand still over the window.
    series = [
        requests("stable", "ok", counter((160, 995))),
        requests("stable", "error", counter((160, 5))),
        requests("canary", "ok", counter((60, 100), (100, 0))),
        requests("canary", "error", counter((60, 1), (100, 0))),
    ]
    expect = Expect("150m", {"stable": 5, "canary": None}, "the canary got no traffic in the last hour")
    evaluate(impl.burn_rate(), "variant", BURN_STEP, [Case(series, [expect])], tmp_path)


def test_burn_rate_counter_reset(impl: ModuleType, tmp_path: Path) -> None:
    """the burn rate survives a router restart (its counters start again from 0)

    rate() and increase() of each series handle a counter reset; anything that subtracts raw
    counter values (delta(), a sum of counters before the rate) sees a restart as a huge drop.
    """
    # stable: replica 1 (600 ok + 6 errors a minute) restarts at 60m, replica 2 (390 ok + 4
    # errors) does not: 10 in 1000, 10x. canary on replica 1: 190 ok + 10 errors, restarting at
    # 45m: 10 in 200, 50x.
    series = [
        requests("stable", "ok", counter((100, 600), reset_at=60)),
        requests("stable", "error", counter((100, 6), reset_at=60)),
        requests("stable", "ok", counter((100, 390)), R2),
        requests("stable", "error", counter((100, 4)), R2),
        requests("canary", "ok", counter((100, 190), reset_at=45)),
        requests("canary", "error", counter((100, 10), reset_at=45)),
    ]
    expect = Expect("90m", {"stable": 10, "canary": 50}, "router replica 1 restarted at 45m and 60m")
    evaluate(impl.burn_rate(), "variant", BURN_STEP, [Case(series, [expect])], tmp_path)


def test_burn_rate_parameters(impl: ModuleType, tmp_path: Path) -> None:
    """burn_rate(window, objective) uses both: over 5m against a 99% objective (budget 1%)

    The window goes inside every rate(...[window]); the budget is 1 - objective (0.01 here).
    """
    # Window [85m, 90m]. stable: 990 ok + 10 errors a minute: 1% of a 1% budget, 1x. canary: 100
    # ok a minute until 85m, then 80 ok + 20 errors: 20% in the last 5 minutes, 20x.
    series = [
        requests("stable", "ok", counter((100, 990))),
        requests("stable", "error", counter((100, 10))),
        requests("canary", "ok", counter((85, 100), (15, 80))),
        requests("canary", "error", counter((85, 0), (15, 20))),
    ]
    expect = Expect("90m", {"stable": 1, "canary": 20}, "burn_rate(window='5m', objective=0.99)")
    query = impl.burn_rate(window="5m", objective=0.99)
    evaluate(query, "variant", BURN_STEP, [Case(series, [expect])], tmp_path)


# ---------------------------------------------------------------- drift over time
def drift_series() -> list[dict[str, str]]:
    # Monitor m1 drifts where it matters from 90m to 104m (15 samples) and never otherwise, while
    # unimportant columns drift all along (half the columns, 2% of the importance). m2 never
    # drifts.
    return [
        monitor("mlops_drift_detected", "m1", gauge((90, "0"), (15, "1"), (21, "0"))),
        monitor("mlops_drift_share_drifted", "m1", gauge((126, "0.5"))),
        monitor("mlops_drift_importance_share", "m1", gauge((90, "0.02"), (15, "0.3"), (21, "0.02"))),
        monitor("mlops_drift_consecutive_windows", "m1", gauge((90, "0"), (15, "3"), (21, "0"))),
        monitor("mlops_drift_detected", "m2", gauge((126, "0"))),
        monitor("mlops_drift_share_drifted", "m2", gauge((126, "0.1"))),
    ]


def test_drift_share(impl: ModuleType, tmp_path: Path) -> None:
    """drift over time: the share of the last hour each monitor saw drift where it matters

    The mean of a 0/1 gauge over a window is the share of that window it was 1 (PromQL has an
    `*_over_time` function for it), per monitor. Of mlops_drift_detected: not the share of
    columns that drifted (unimportant columns drift all the time), not the instant value (it
    flickers with each window), not "any drift in the hour".
    """
    # Evaluated half a minute after a sample, so that the last hour holds exactly 60 samples.
    # At 120m30s: samples 61..120, m1 drifted in 15 of them: 0.25. At 100m30s: samples 41..100,
    # m1 drifted in 11 (90..100): 11/60 = 0.1833.
    expects = [
        Expect("120m30s", {"m1": 0.25, "m2": 0}, "m1 drifted where it matters from 90m to 104m"),
        Expect("100m30s", {"m1": 0.1833, "m2": 0}, "m1 drifting where it matters since 90m"),
    ]
    evaluate(impl.drift_share(), "instance", SHARE_STEP, [Case(drift_series(), expects)], tmp_path)


def test_drift_share_window(impl: ModuleType, tmp_path: Path) -> None:
    """drift_share(window) averages over that window

    The window goes inside the range selector: [30m] for drift_share("30m").
    """
    # At 120m30s the last 30 minutes hold samples 91..120: m1 drifted in 14 (91..104): 0.4667.
    expect = Expect("120m30s", {"m1": 0.4667, "m2": 0}, "drift_share('30m'), m1 drifted from 90m to 104m")
    evaluate(impl.drift_share("30m"), "instance", SHARE_STEP, [Case(drift_series(), [expect])], tmp_path)


# ---------------------------------------------------------------- realized vs expected precision
def precision_series(*monitors: tuple[str, str, str, str]) -> list[dict[str, str]]:
    """(instance, realized, expected, labelled) held for 20 minutes; the label-free estimate is
    0.19 everywhere (it is not the realized precision)."""
    out = []
    for instance, realized, expected, labelled in monitors:
        out += [
            monitor("mlops_realized_precision", instance, f"{realized}+0x20"),
            monitor("mlops_expected_precision", instance, f"{expected}+0x20"),
            monitor("mlops_realized_labelled_rows", instance, f"{labelled}+0x20"),
            monitor("mlops_estimated_precision", instance, "0.19+0x20"),
        ]
    return out


def test_precision_ratio(impl: ModuleType, tmp_path: Path) -> None:
    """realized / expected precision per monitor: 0 stays visible, NaN gives no number

    Divide mlops_realized_precision by mlops_expected_precision (not the label-free estimate).
    A precision of 0 (every flagged row was legitimate) is the worst case: keep it. An
    undefined one (NaN) may stay NaN or go, but must not become a number.
    """
    series = precision_series(
        ("as-promised", "0.2", "0.2", "500"),  # 1
        ("dropped", "0.15", "0.2", "500"),  # 0.75
        ("all-wrong", "0", "0.2", "500"),  # 0: every flagged row was legitimate
        ("better", "0.25", "0.2", "200"),  # 1.25, on exactly the 200 labelled rows needed
        ("nothing-flagged", "NaN", "0.2", "500"),  # realized precision undefined: no number
        ("no-offline-precision", "0.15", "NaN", "500"),  # expected precision unknown: no number
    )
    want: dict[str, float | None] = {
        "as-promised": 1,
        "dropped": 0.75,
        "all-wrong": 0,
        "better": 1.25,
        "nothing-flagged": None,
        "no-offline-precision": None,
    }
    expect = Expect("10m", want, "six monitors, 200 or more labelled rows each")
    evaluate(impl.precision_ratio(), "instance", SHARE_STEP, [Case(series, [expect])], tmp_path)


def test_precision_ratio_needs_labels(impl: ModuleType, tmp_path: Path) -> None:
    """no ratio under min_labelled labelled rows (200 by default), and min_labelled is honoured

    Keep the ratio only where mlops_realized_labelled_rows >= min_labelled: `and` with that
    comparison keeps the left side's values where the right side has a sample.
    """
    series = precision_series(
        ("few-labels", "0.1", "0.2", "150"),
        ("some-labels", "0.15", "0.2", "500"),
        ("many-labels", "0.1", "0.2", "1000"),
    )
    default = Expect(
        "10m", {"few-labels": None, "some-labels": 0.75, "many-labels": 0.5}, "150, 500, 1000 labels"
    )
    evaluate(impl.precision_ratio(), "instance", SHARE_STEP, [Case(series, [default])], tmp_path)
    strict = Expect(
        "12m",
        {"few-labels": None, "some-labels": None, "many-labels": 0.5},
        "precision_ratio(min_labelled=1000)",
    )
    evaluate(
        impl.precision_ratio(min_labelled=1000), "instance", SHARE_STEP, [Case(series, [strict])], tmp_path
    )
