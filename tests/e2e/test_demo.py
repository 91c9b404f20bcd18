"""End to end: the demo story (short profile) with real processes; it is also `make demo`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_lab.settings import child_env

from ..conftest import make_settings


@pytest.mark.timeout(900)  # the whole story with real processes: ~3 min here, slower on a busy CI host
def test_demo_short_profile_plays_all_five_acts_and_writes_the_report(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    env = {**child_env(s), "PATH": os.environ["PATH"]}
    r = subprocess.run(
        [sys.executable, "-m", "mlops_lab.cli", "demo", "--profile", "short"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-3000:]
    reports = list((tmp_path / "reports").glob("demo-*/index.html"))
    assert len(reports) == 1 and f"report: {reports[0]}" in r.stdout.replace("\n", "")
    data = json.loads((reports[0].parent / "report.json").read_text())
    assert data["load"]["slo_met"] and data["load"]["requests"] > 100
    retrained, bad = data["retrain"]["version"], data["bad_candidate"]["version"]
    assert retrained != bad
    assert data["retrain"]["dag_run_id"] and data["retrain"]["trigger_reason"]
    assert "judge" in data["bad_candidate"]["reason"]
    assert data["traffic"]["canary"]["requests"] > 0
    assert any(w.get("trigger") for w in data["windows"])
    html = reports[0].read_text()
    assert html.count("<img") >= 4 and "Audit log" in html
    for act in ("Act 1", "Act 2", "Act 3", "Act 4", "Act 5"):
        assert act in r.stdout
    assert "stopped every process the demo started" in r.stdout
    assert not list((tmp_path / "demo" / "run").glob("*.json")), "the demo left processes registered"
