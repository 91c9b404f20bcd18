"""Prometheus config and alert rules: valid, unit-tested with promtool, and about real metrics."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from mlops_lab.serving.metrics import ServerMetrics

OBS = Path(__file__).resolve().parents[1] / "reference" / "observability"
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


def test_every_alert_has_a_test_that_makes_it_fire() -> None:
    fired = set()
    for path in (OBS / "tests").glob("*_test.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    assert set(alerts()) - fired == set(), "alerts without a firing test"


def test_rules_only_use_metrics_the_servers_export() -> None:
    exported = set(
        re.findall(r"^# TYPE (\w+) (\w+)", generate_latest(ServerMetrics("stable").registry).decode(), re.M)
    )
    names = set()
    for name, kind in exported:
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        if kind == "counter":
            names.add(f"{name}_total" if not name.endswith("_total") else name)
    used = set()
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                used |= set(re.findall(r"\b(mlops_[a-z_]+)\b", rule["expr"]))
    assert used and used <= names, f"unknown metrics in rules: {sorted(used - names)}"
