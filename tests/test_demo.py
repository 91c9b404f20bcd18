"""End to end: the demo story (short profile) with real processes; it is also `make demo`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import make_settings


def test_demo_short_profile_plays_out_and_writes_the_report(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    env = {
        f"MLOPS_{k.upper()}": str(v)
        for k, v in s.model_dump().items()
        if v is not None and k != "admin_token"
    }
    env.update({"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    r = subprocess.run(
        [sys.executable, "-m", "mlops_lab.cli", "demo", "--profile", "short"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    reports = list((tmp_path / "reports").glob("demo-*/index.html"))
    assert len(reports) == 1 and f"report: {reports[0]}" in r.stdout.replace("\n", "")
    data = json.loads((reports[0].parent / "report.json").read_text())
    assert data["load"]["slo_met"] and data["load"]["requests"] > 100
    assert data["realized"]["labelled predictions"] > 0
    html = reports[0].read_text()
    assert html.count("<img") == 2 and "Evaluation gate" in html and "Audit log" in html
    assert "stopped every process the demo started" in r.stdout
    assert not list((tmp_path / "demo" / "run").glob("*.json")), "the demo left processes registered"
