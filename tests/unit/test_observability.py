"""Prometheus config and alert rules: valid, unit-tested with promtool, and about real metrics."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from mlops_lab.monitoring import alerts as rules_code
from mlops_lab.monitoring.metrics import MonitorMetrics
from mlops_lab.monitoring.panels import PANELS
from mlops_lab.serving.metrics import ServerMetrics

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "reference" / "observability"
DASHBOARD = OBS / "grafana" / "mlops-lab.json"
METRIC = re.compile(r"\b(mlops[:_][a-z0-9_:]+)\b")
PROMTOOL = shutil.which("promtool")

# promtool comes from Debian's prometheus package, which `make setup` and CI install. Only a
# machine without it (a laptop without apt) skips, and CI refuses to.
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("CI"),
    reason="promtool not installed (apt-get install prometheus)",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL, "promtool is required in CI: install Debian's prometheus package"
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, cwd=OBS, check=False, timeout=120
    )


def rule_files() -> list[Path]:
    return sorted((OBS / "rules").glob("*.yml"))


def alerts() -> dict[str, str]:
    out = {}
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out[rule["alert"]] = rule["expr"]
    return out


@needs_promtool
def test_config_and_rules_are_valid() -> None:
    r = promtool("check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr


@needs_promtool
@pytest.mark.parametrize("test_file", sorted((OBS / "tests").glob("*_test.yml")), ids=lambda p: p.name)
def test_rule_unit_tests_pass(test_file: Path) -> None:
    r = promtool("test", "rules", str(test_file.relative_to(OBS)))
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_rules_file_is_loaded_and_tested() -> None:
    """prometheus.yml loads every rules file, and every rules file has a promtool test file."""
    config = yaml.safe_load((OBS / "prometheus.yml").read_text())
    loaded = {p for pattern in config["rule_files"] for p in OBS.glob(pattern)}
    tested = set()
    for path in (OBS / "tests").glob("*_test.yml"):
        tested |= {(path.parent / f).resolve() for f in yaml.safe_load(path.read_text())["rule_files"]}
    for path in rule_files():
        assert path in loaded, f"{path.name} is not in prometheus.yml rule_files"
        assert path.resolve() in tested, f"{path.name} has no promtool test file"


def alert_checks() -> Iterator[tuple[str, bool]]:
    """(alertname, expected to fire) for every alert_rule_test check of every test file."""
    for path in (OBS / "tests").glob("*_test.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                yield check["alertname"], bool(check.get("exp_alerts"))


def test_every_alert_has_a_test_that_makes_it_fire() -> None:
    fired = {name for name, fires in alert_checks() if fires}
    assert set(alerts()) - fired == set(), "alerts without a firing test"


def test_every_alert_has_a_test_that_keeps_it_quiet() -> None:
    quiet = {name for name, fires in alert_checks() if not fires}
    assert set(alerts()) - quiet == set(), "alerts without a test where they must not fire"


def test_tests_only_name_alerts_that_exist() -> None:
    assert {name for name, _ in alert_checks()} <= set(alerts()), "a test names an alert no rule defines"


def test_every_alert_explains_itself() -> None:
    """Every alert has a severity, a summary and a runbook-style description or runbook."""
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                notes = rule.get("annotations", {})
                assert rule.get("labels", {}).get("severity") in ("page", "ticket"), rule["alert"]
                assert notes.get("summary"), rule["alert"]
                if path.name != "serving.yml":  # the serving alerts predate descriptions (runbook where set)
                    assert len(notes.get("description", "")) > 100, rule["alert"]
                    assert "Look at" in notes["description"] and "Do:" in notes["description"], rule["alert"]


def _exposed(registry: Any) -> set[str]:
    """The sample names a registry exposes (counter _total, histogram _bucket/_count/_sum)."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\w+) (\w+)", generate_latest(registry).decode(), re.M):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        if kind == "counter":
            names.add(f"{name}_total" if not name.endswith("_total") else name)
    return names


@functools.cache
def source_metrics() -> frozenset[str]:
    """Every mlops_* name in the reference sources (router and controller metrics included)."""
    found: set[str] = set()
    for path in (ROOT / "reference" / "mlops_lab").rglob("*.py"):
        found |= set(re.findall(r"\b(mlops_[a-z0-9_]+)\b", path.read_text()))
    return frozenset(found | _exposed(ServerMetrics("stable").registry) | _exposed(MonitorMetrics().registry))


def recording_rules() -> set[str]:
    return {
        rule["record"]
        for path in rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def unknown_metrics(exprs: list[str]) -> set[str]:
    known = source_metrics() | recording_rules()
    used = {m for expr in exprs for m in METRIC.findall(expr)}
    assert used, "no mlops metric found at all"
    suffix = re.compile(r"_(bucket|count|sum|total)$")
    return {m for m in used if m not in known and suffix.sub("", m) not in known}


def test_rules_only_use_metrics_the_code_exports() -> None:
    exprs = [
        rule["expr"]
        for path in rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]
    assert unknown_metrics(exprs) == set(), "metrics in rules that no component exports"


MONITOR_PREFIXES = ("mlops_drift", "mlops_monitor", "mlops_re", "mlops_score", "mlops_data", "mlops_exp")


def test_the_monitor_exports_what_the_ml_rules_use() -> None:
    """The drift monitor's names, checked against its real exposition, not just a grep."""
    exposed = _exposed(MonitorMetrics().registry)
    text = "".join((OBS / "rules" / name).read_text() for name in ("ml.yml", "ml-signals.yml"))
    used = {m for m in METRIC.findall(text) if m.startswith(MONITOR_PREFIXES)}
    assert used and used <= exposed, sorted(used - exposed)


def test_generated_rules_are_current() -> None:
    """rules/ml-signals.yml and its tests are what mlops_lab.monitoring.alerts renders, and the
    YAML reads back as the same rules (the dumper changes layout, never content)."""
    fix = "run: python -m mlops_lab.monitoring.alerts (then scripts/cluster.sh sync-rules)"
    assert rules_code.RULES_FILE.read_text() == rules_code.render_rules(rules_code.rule_group()), fix
    assert rules_code.TESTS_FILE.read_text() == rules_code.render_tests(rules_code.rule_tests()), fix
    assert yaml.safe_load(rules_code.RULES_FILE.read_text()) == {"groups": [rules_code.rule_group()]}
    assert yaml.safe_load(rules_code.TESTS_FILE.read_text())["tests"] == rules_code.rule_tests()


@needs_promtool
def test_generated_rule_tests_catch_a_rule_without_absent() -> None:
    """The generated tests are not a formality: a down alert blind to a vanished target fails them."""
    group = rules_code.rule_group()
    for rule in group["rules"]:
        if rule["alert"] == rules_code.MONITOR_DOWN:
            rule["expr"] = f'up{{job="{rules_code.MONITOR_JOB}"}} == 0'
    passed, output = rules_code.promtool_test(group, rules_code.rule_tests())
    assert not passed, output
    assert rules_code.promtool_test(rules_code.rule_group(), rules_code.rule_tests())[0]


def dashboard_panels() -> list[dict[str, Any]]:
    panels = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # panels inside collapsed rows
    return panels


def test_dashboard_is_valid_grafana_json() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["schemaVersion"] >= 36 and dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    panels = dashboard_panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] == "${datasource}", panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]


def test_dashboard_only_uses_metrics_the_code_exports() -> None:
    exprs = [t["expr"] for p in dashboard_panels() for t in p.get("targets", [])]
    assert unknown_metrics(exprs) == set(), "dashboard queries metrics that no component exports"


def test_dashboard_runs_the_panel_queries() -> None:
    """The on-call panels run exactly the queries of mlops_lab.monitoring.panels (which the lab
    grades with promtool and the scenarios send to Prometheus)."""
    by_title = {p["title"]: p for p in dashboard_panels()}
    for title, expr in PANELS.items():
        assert title in by_title, f"no dashboard panel titled {title!r}"
        exprs = [t["expr"] for t in by_title[title]["targets"]]
        assert expr in exprs, f"{title!r} does not run panels' query: {exprs}"
