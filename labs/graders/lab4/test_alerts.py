"""Grader of lab 4 / alert-rules (exercises/lab4/alerts.py): alert rules and the tests that prove them.

Everything runs in promtool, Prometheus' own rule engine (`promtool check rules`, `promtool
test rules`), on YAML rendered from the dicts the functions return:

- the rule group loads, and both alerts page;
- hidden tests on your rules: a drop held past `for` on enough labels pages; too few labels,
  an undefined precision (NaN) and 0.9x the expected precision do not; the down alert pages on
  `up == 0` and on a target that is gone (no `up` at all), not while the monitor answers; the
  parameters are honoured. Each hidden case wraps your expression as count(YOUR EXPR) under its
  own alert name with your `for`: what is graded is when your rule fires, whatever labels it
  carries;
- your rule_tests() pass on your rules, and FAIL on each broken rule held here (your rule with
  one mistake added: no labelled-rows guard, firing on NaN, no `for`, never firing, blind to a
  target that is gone, firing while the monitor is up). Tests that pass a broken rule would let
  it reach production.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from mlops_lab.monitoring.alerts import (
    EXPECTED_PRECISION,
    LABELLED_ROWS,
    LAST_WINDOW,
    MONITOR_DOWN,
    PERFORMANCE_DROP,
    REALIZED_PRECISION,
)

PROMTOOL = shutil.which("promtool")
MONITOR = {"job": "monitor", "instance": "127.0.0.1:8003"}


# ---------------------------------------------------------------- promtool
def promtool(args: Sequence[str], cwd: Path) -> tuple[int, str]:
    if PROMTOOL is None:
        pytest.fail("promtool is not installed: make setup installs it (apt-get install prometheus)")
    proc = subprocess.run(
        [PROMTOOL, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # promtool writes FAILED details to stderr: keep them in order
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stdout


def dump(data: Any, what: str) -> str:
    try:
        return yaml.safe_dump(data, sort_keys=False)
    except yaml.YAMLError as exc:
        pytest.fail(f"expected {what} made of dicts, lists, str and numbers, got: {exc}", pytrace=False)


def rules_file(rules: Sequence[dict[str, Any]], name: str = "mlops-lab") -> dict[str, Any]:
    return {"groups": [{"name": name, "rules": list(rules)}]}


def suite(cases: Any, rules: str) -> dict[str, Any]:
    return {"rule_files": [rules], "evaluation_interval": "1m", "tests": cases}


def seconds(duration: str) -> int:
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * unit[u] for n, u in re.findall(r"(\d+)([smhd])", duration))


def tail(text: str) -> str:
    return text.strip()[-1200:]


def rule_of(impl: ModuleType, name: str) -> dict[str, Any]:
    """The rule named `name` in the learner's rule_group()."""
    rules = impl.rule_group().get("rules", [])
    found = [r for r in rules if isinstance(r, dict) and r.get("alert") == name]
    assert found, (
        f"expected an alert named {name} in rule_group()['rules'], got {[r.get('alert') for r in rules]}"
    )
    return dict(found[0])


def expr_of(rule: Any) -> str:
    assert isinstance(rule, dict) and isinstance(rule.get("expr"), str), (
        f"expected a rule dict with an 'expr' string, got {rule!r}"
    )
    return str(rule["expr"])


# ---------------------------------------------------------------- hidden scenarios
@dataclass(frozen=True)
class Scenario:
    name: str  # the alert name of the wrapped rule: says what happens
    what: str  # what the series show, for the message
    rule: dict[str, Any]  # the learner's rule under test
    series: Sequence[dict[str, str]]
    fires: Sequence[str] = ()
    quiet: Sequence[str] = ()


def run_scenarios(scenarios: Sequence[Scenario], tmp_path: Path) -> None:
    """Each scenario's series against the learner's rule, wrapped as count(expr) with its `for`
    under the scenario's name; fail with every expectation that does not hold."""
    rules = []
    for s in scenarios:
        wrapped = {"alert": s.name, "expr": f"count(\n{expr_of(s.rule)}\n)"}
        if s.rule.get("for"):
            wrapped["for"] = s.rule["for"]
        rules.append(wrapped)
    tests = [
        {
            "interval": "1m",
            "input_series": list(s.series),
            "alert_rule_test": [
                {"eval_time": t, "alertname": s.name, "exp_alerts": [{"exp_labels": {}}]} for t in s.fires
            ]
            + [{"eval_time": t, "alertname": s.name, "exp_alerts": []} for t in s.quiet],
        }
        for s in scenarios
    ]
    (tmp_path / "hidden.yml").write_text(dump(rules_file(rules), "rules"))
    (tmp_path / "hidden_test.yml").write_text(dump(suite(tests, "hidden.yml"), "tests"))
    code, out = promtool(["test", "rules", "hidden_test.yml"], tmp_path)
    if code == 0:
        return
    # promtool lists each failing check: its alert, its time, what was expected, what came.
    wrong: dict[tuple[str, bool], list[str]] = {}
    for name, at, exp, _got in re.findall(
        r"alertname: (\w+), time: (\S+?),\s*exp:\[(.*?)\],\s*got:\[(.*?)\]", out, re.DOTALL
    ):
        wrong.setdefault((name, exp.strip() != ""), []).append(at)
    by_name = {s.name: s for s in scenarios}
    problems = []
    for (name, should_fire), times in wrong.items():
        s = by_name[name]
        want, got = ("to fire", "it stayed quiet") if should_fire else ("to stay quiet", "it fired")
        problems.append(
            f"{s.what}: expected {s.rule.get('alert')} {want} at {' and '.join(times)}, got {got}"
        )
    pytest.fail("; ".join(problems) or f"promtool could not run your rule: {tail(out)}", pytrace=False)


def gauges(realized: str, expected: str, labelled: str) -> list[dict[str, str]]:
    """The drop alert's three gauges on one monitor, every minute for 30 minutes."""
    labels = 'job="monitor",instance="127.0.0.1:8003"'
    held = [v if "x" in v or " " in v else f"{v}+0x30" for v in (realized, expected, labelled)]
    return [
        {"series": f"{metric}{{{labels}}}", "values": values}
        for metric, values in zip((REALIZED_PRECISION, EXPECTED_PRECISION, LABELLED_ROWS), held, strict=True)
    ]


def up(values: str, job: str = "monitor", instance: str = "127.0.0.1:8003") -> dict[str, str]:
    return {"series": f'up{{job="{job}",instance="{instance}"}}', "values": values}


def last_window(values: str, job: str = "monitor") -> dict[str, str]:
    return {"series": f'{LAST_WINDOW}{{job="{job}",instance="127.0.0.1:8003"}}', "values": values}


def test_rules_load(impl: ModuleType, tmp_path: Path) -> None:
    """rule_group() loads in Prometheus (promtool check rules), and both alerts page

    rule_group() is {"name": ..., "rules": [rule, ...]}; each rule a dict with alert, expr, for,
    labels {"severity": "page"} and annotations {"summary": ..., "description": ...}.
    """
    group = impl.rule_group()
    assert isinstance(group, dict) and isinstance(group.get("rules"), list), (
        f"expected {{'name': ..., 'rules': [...]}}, got {group!r}"
    )
    (tmp_path / "rules.yml").write_text(dump({"groups": [group]}, "rule_group()"))
    code, out = promtool(["check", "rules", "rules.yml"], tmp_path)
    assert code == 0, f"expected promtool check rules to accept your rule group, got: {tail(out)}"
    for name in (PERFORMANCE_DROP, MONITOR_DOWN):
        rule = rule_of(impl, name)
        severity = rule.get("labels", {}).get("severity")
        assert severity == "page", f"expected {name} to have labels severity: page, got {severity!r}"
        notes = rule.get("annotations", {})
        assert notes.get("summary") and notes.get("description"), (
            f"expected {name} to have a summary and a description, got annotations {notes!r}"
        )


def test_drop_pages_when_held(impl: ModuleType, tmp_path: Path) -> None:
    """a drop to half the expected precision on 500 labels pages once it has held for `for`

    The drop starts at 0 and holds: quiet at 9 minutes, firing at 11 with for_="10m".
    """
    drop = impl.performance_drop_alert()
    run_scenarios(
        [
            Scenario(
                "HeldDrop",
                "precision 0.1 against 0.2 on 500 labels",
                drop,
                gauges("0.1", "0.2", "500"),
                ["11m", "20m"],
                ["9m"],
            )
        ],
        tmp_path,
    )


def test_drop_needs_labels(impl: ModuleType, tmp_path: Path) -> None:
    """the drop alert ignores a precision on too few labels, and counts from when there are enough

    Keep the comparison only where mlops_realized_labelled_rows >= min_labelled (`and`).
    """
    drop = impl.performance_drop_alert()
    run_scenarios(
        [
            Scenario(
                "FewLabels",
                "precision 0.1 against 0.2 on 150 labels",
                drop,
                gauges("0.1", "0.2", "150"),
                quiet=["11m", "25m"],
            ),
            # 25 labels a minute: 200 at 8m, so the drop has held for 10 minutes at 18m.
            Scenario(
                "LabelsArriving",
                "precision 0.1 against 0.2, labels arriving 25 a minute (200 at 8m)",
                drop,
                gauges("0.1", "0.2", "0+25x30"),
                ["19m"],
                ["12m", "17m"],
            ),
        ],
        tmp_path,
    )


def test_drop_quiet_on_nan(impl: ModuleType, tmp_path: Path) -> None:
    """the drop alert never fires on an undefined precision (NaN)

    Nothing flagged among the labelled rows makes realized precision NaN; no offline precision
    logged makes the expected one NaN. Every comparison with NaN is false: `realized < ratio *
    expected` stays quiet by itself, a negation (`unless realized >= ...`) does not.
    """
    drop = impl.performance_drop_alert()
    run_scenarios(
        [
            Scenario(
                "NaNRealized",
                "realized precision NaN on 500 labels",
                drop,
                gauges("NaN", "0.2", "500"),
                quiet=["11m", "25m"],
            ),
            Scenario(
                "NaNExpected",
                "expected precision NaN, realized 0.1, 500 labels",
                drop,
                gauges("0.1", "NaN", "500"),
                quiet=["11m", "25m"],
            ),
        ],
        tmp_path,
    )


def test_drop_quiet_within_band(impl: ModuleType, tmp_path: Path) -> None:
    """0.9x the expected precision does not page (ratio 0.8)

    realized < ratio * expected: the ratio multiplies the expected precision.
    """
    drop = impl.performance_drop_alert()
    run_scenarios(
        [
            Scenario(
                "WithinBand",
                "precision 0.18 against 0.2 on 500 labels",
                drop,
                gauges("0.18", "0.2", "500"),
                quiet=["11m", "25m"],
            )
        ],
        tmp_path,
    )


def test_drop_parameters(impl: ModuleType, tmp_path: Path) -> None:
    """performance_drop_alert(ratio, min_labelled, for_) honours all three

    Put the parameters in the expression and the "for": the grader asks for ratio=0.5,
    min_labelled=1000, for_="3m".
    """
    drop = impl.performance_drop_alert(ratio=0.5, min_labelled=1000, for_="3m")
    what = "performance_drop_alert(ratio=0.5, min_labelled=1000, for_='3m'), "
    run_scenarios(
        [
            Scenario(
                "LowRatio",
                what + "0.2 against 0.5 (0.4x) on 2000 labels",
                drop,
                gauges("0.2", "0.5", "2000"),
                ["4m"],
                ["2m"],
            ),
            Scenario(
                "AboveRatio",
                what + "0.3 against 0.5 (0.6x) on 2000 labels",
                drop,
                gauges("0.3", "0.5", "2000"),
                quiet=["10m"],
            ),
            Scenario(
                "UnderMinimum",
                what + "0.2 against 0.5 on 900 labels",
                drop,
                gauges("0.2", "0.5", "900"),
                quiet=["10m"],
            ),
        ],
        tmp_path,
    )


def test_down_pages_when_scrapes_fail(impl: ModuleType, tmp_path: Path) -> None:
    """the down alert pages when the monitor stops answering scrapes (up == 0), after `for`

    A target that is listed but does not answer has up == 0 (and its metrics go stale).
    """
    down = impl.monitor_down_alert()
    series = [up("1 1 0+0x20"), last_window("0 60 stale"), up("1+0x22", job="router")]
    run_scenarios(
        [Scenario("ScrapesFail", "the monitor's up is 0 from 2m", down, series, ["8m", "15m"], ["6m"])],
        tmp_path,
    )


def test_down_pages_when_target_gone(impl: ModuleType, tmp_path: Path) -> None:
    """the down alert pages when the monitor's target is gone: no `up` series at all

    A deleted pod or a wrong scrape config leaves no target, so no up series: up == 0 matches
    nothing. absent(up{job="monitor"}) is 1 exactly then. Other jobs' up says nothing about it.
    """
    down = impl.monitor_down_alert()
    others = [
        up("1+0x22", job="router", instance="127.0.0.1:8000"),
        up("1+0x22", job="model-servers", instance="127.0.0.1:8001"),
    ]
    run_scenarios(
        [
            Scenario(
                "NeverDiscovered",
                "no monitor target at all, other jobs up",
                down,
                others,
                ["6m", "15m"],
                ["4m"],
            ),
            Scenario(
                "TargetVanished",
                "the monitor's target disappears at 2m, other jobs up",
                down,
                [up("1 1 stale"), last_window("0 60 stale"), *others],
                ["8m", "15m"],
            ),
        ],
        tmp_path,
    )


def test_down_quiet_when_up(impl: ModuleType, tmp_path: Path) -> None:
    """the down alert stays quiet while the monitor answers, whatever other jobs do

    Select the monitor's job only: up{job="monitor"}, in every part of the expression.
    """
    down = impl.monitor_down_alert()
    series = [up("1+0x22"), last_window("0+60x22"), up("0+0x22", job="router", instance="127.0.0.1:8000")]
    run_scenarios(
        [Scenario("MonitorUp", "the monitor answers, the router is down", down, series, quiet=["8m", "20m"])],
        tmp_path,
    )


def test_down_job_parameter(impl: ModuleType, tmp_path: Path) -> None:
    """monitor_down_alert(job, for_) watches that job, with that `for`

    The grader asks for job="drift-monitor", for_="2m": every selector in the expression uses `job`.
    """
    down = impl.monitor_down_alert(job="drift-monitor", for_="2m")
    what = "monitor_down_alert(job='drift-monitor', for_='2m'), "
    monitor_up = [up("1+0x22"), last_window("0+60x22")]
    run_scenarios(
        [
            Scenario(
                "OtherJobDown",
                what + "its up is 0, job monitor up",
                down,
                [up("0+0x22", job="drift-monitor"), *monitor_up],
                ["3m"],
                ["1m"],
            ),
            Scenario(
                "OtherJobGone", what + "no drift-monitor target, job monitor up", down, monitor_up, ["3m"]
            ),
            Scenario(
                "OtherJobUp",
                what + "it answers, job monitor is down",
                down,
                [
                    up("1+0x22", job="drift-monitor"),
                    last_window("0+60x22", job="drift-monitor"),
                    up("0+0x22"),
                ],
                quiet=["5m", "10m"],
            ),
        ],
        tmp_path,
    )


# ---------------------------------------------------------------- the learner's own tests
Break = Callable[[dict[str, Any]], dict[str, Any]]


def replaced(rule: dict[str, Any], expr: str) -> dict[str, Any]:
    return {**rule, "expr": expr}


# Each broken rule is the learner's own rule with one mistake added: its labels and annotations
# stay theirs, so only its behaviour can make their tests fail. Defaults: ratio 0.8, 200 labels.
BROKEN_DROP: list[tuple[str, Break]] = [
    (
        "a drop rule without the labelled-rows guard (it pages on 150 labels)",
        lambda r: replaced(r, f"(\n{expr_of(r)}\n) or ({REALIZED_PRECISION} < 0.8 * {EXPECTED_PRECISION})"),
    ),
    (
        "a drop rule that fires when precision is NaN (written as `unless realized >= 0.8 * expected`)",
        lambda r: replaced(
            r,
            f"(\n{expr_of(r)}\n) or ({LABELLED_ROWS} >= 200"
            f" unless {REALIZED_PRECISION} >= 0.8 * {EXPECTED_PRECISION})",
        ),
    ),
    (
        "a drop rule without `for` (it pages on the first evaluation)",
        lambda r: {k: v for k, v in r.items() if k != "for"},
    ),
    (
        "a drop rule that never fires (a misspelt metric name)",
        lambda r: replaced(r, f"(\n{expr_of(r)}\n) unless on() vector(1)"),
    ),
]
BROKEN_DOWN: list[tuple[str, Break]] = [
    (
        "a down alert with only up == 0 and no absent() (blind when the target is gone)",
        lambda r: replaced(r, f'(\n{expr_of(r)}\n) and on() count(up{{job="monitor"}})'),
    ),
    (
        "a down alert that also fires while the monitor is up",
        lambda r: replaced(r, f'(\n{expr_of(r)}\n) or up{{job="monitor"}} == 1'),
    ),
]


# One promtool run per implementation grades the learner's tests on their rules and on every
# broken rule (a file each); the three checks below read its report.
_reports: dict[str, dict[str, tuple[bool, str]]] = {}


def own_tests_report(impl: ModuleType, tmp_path: Path) -> dict[str, tuple[bool, str]]:
    """The learner's rule_tests() on their rule_group() ("own") and on each broken group (by its
    description): key -> (passed, promtool's report). Computed once per implementation."""
    key = str(getattr(impl, "__file__", impl.__name__))
    if key in _reports:
        return _reports[key]
    cases = impl.rule_tests()
    assert isinstance(cases, list) and cases, (
        f"expected rule_tests() to return a list of test cases, got {cases!r}"
    )
    group = impl.rule_group()
    files = {"own": list(group["rules"])}
    for name, breaks in ((PERFORMANCE_DROP, BROKEN_DROP), (MONITOR_DOWN, BROKEN_DOWN)):
        for what, brk in breaks:
            files[what] = [
                brk(dict(r)) if isinstance(r, dict) and r.get("alert") == name else r for r in group["rules"]
            ]
    stems = {}
    for i, (what, rules) in enumerate(files.items()):
        stem = "own" if what == "own" else f"broken{i}"
        stems[stem] = what
        (tmp_path / f"{stem}.yml").write_text(
            dump(rules_file(rules, group.get("name", "mlops-lab")), "rules")
        )
        (tmp_path / f"{stem}_test.yml").write_text(dump(suite(cases, f"{stem}.yml"), "rule_tests()"))
    _, out = promtool(["test", "rules", *(f"{stem}_test.yml" for stem in stems)], tmp_path)
    parts = re.split(r"^Unit Testing:\s+(\S+)\s*$", out, flags=re.MULTILINE)
    found = {parts[i].removesuffix("_test.yml"): parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    _reports[key] = {
        what: ("SUCCESS" in found.get(stem, "") and "FAILED" not in found.get(stem, ""), found.get(stem, out))
        for stem, what in stems.items()
    }
    return _reports[key]


def test_own_tests_pass(impl: ModuleType, tmp_path: Path) -> None:
    """your rule_tests() pass on your rule_group()

    rule_tests() returns a list of case(...)s; promtool runs them against your rules with an
    evaluation every minute. promtool_test(rule_group(), rule_tests()) shows what it says.
    """
    passed, report = own_tests_report(impl, tmp_path)["own"]
    assert passed, f"expected your rule_tests() to pass on your rules, got promtool: {tail(report)}"


def assert_catches(impl: ModuleType, breaks: Sequence[tuple[str, Break]], tmp_path: Path) -> None:
    report = own_tests_report(impl, tmp_path)
    assert report["own"][0], (
        f"expected your rule_tests() to pass on your own rules first, got promtool: {tail(report['own'][1])}"
    )
    through = [what for what, _ in breaks if report[what][0]]
    assert not through, (
        "expected your rule_tests() to fail on each broken rule, got: your tests would let this broken rule "
        "through: " + "; and this one: ".join(through)
    )


def test_own_tests_catch_broken_drop_rules(impl: ModuleType, tmp_path: Path) -> None:
    """your tests fail on a broken drop rule: no labels guard, firing on NaN, no `for`, never firing

    Each broken rule is your rule with one mistake added. A test must expect quiet on too few
    labels, quiet on NaN with enough labels, quiet before `for` has passed, and a real page.
    """
    assert_catches(impl, BROKEN_DROP, tmp_path)


def test_own_tests_catch_broken_down_rules(impl: ModuleType, tmp_path: Path) -> None:
    """your tests fail on a broken down alert: blind to a gone target, or firing while up

    A test must expect the alert when `up` disappears altogether (values "1 1 stale"), and
    expect quiet while the monitor answers.
    """
    assert_catches(impl, BROKEN_DOWN, tmp_path)
