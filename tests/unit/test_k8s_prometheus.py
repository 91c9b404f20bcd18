"""Prometheus in the cluster: its rules are the tested ones, and its rendered config passes promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ..support.k8s import K8S, ROOT, find, overlay


def test_prometheus_rules_copy_is_current() -> None:
    source = ROOT / "reference" / "observability" / "rules"
    copy_ = K8S / "base" / "prometheus" / "rules"
    assert sorted(p.name for p in copy_.glob("*.yml")) == sorted(p.name for p in source.glob("*.yml"))
    for p in source.glob("*.yml"):
        assert (copy_ / p.name).read_bytes() == p.read_bytes(), f"{p.name}: run scripts/cluster.sh sync-rules"
    rules = find(overlay("dev"), "ConfigMap", "prometheus-rules")["data"]
    assert sorted(rules) == sorted(p.name for p in source.glob("*.yml")), (
        "list new files in base/kustomization.yaml"
    )


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (make setup installs it)"
)
def test_cluster_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for name, text in find(overlay("dev"), "ConfigMap", "prometheus-rules")["data"].items():
        (rules / name).write_text(text)
    config = find(overlay("dev"), "ConfigMap", "prometheus-config")["data"]["prometheus.yml"]
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/rules", str(rules)))
    r = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 rules files found" in r.stdout + r.stderr or "SUCCESS" in r.stdout + r.stderr
