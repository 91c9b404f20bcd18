"""The labs: the self-check (reference passes, skeleton fails, everything listed), the runner's
user-facing behaviour, and the docs generated from labs/labs.toml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_lab.labs.manifest import get_scenario, load_manifest
from mlops_lab.labs.verify import read_lock, skeleton_text

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "mlops_lab.cli"]


def cli(*args: str, home: Path, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLOPS_HOME": str(home)}
    return subprocess.run(
        [*CLI, *args], cwd=ROOT, env=env, capture_output=True, text=True, input=input_text, timeout=900
    )


@pytest.mark.timeout(900)
def test_verify(tmp_path: Path) -> None:
    """Every grader passes on the reference and fails on the pristine skeleton; nothing unlisted."""
    r = cli("lab", "verify", home=tmp_path)
    print(r.stdout[-3000:])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "labs verified" in r.stdout
    for lab in (1, 2):
        assert f"lab {lab}: reference" in r.stdout and "every exercise failing: True" in r.stdout


def test_docs_generated_from_the_manifest_are_current() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mlops_lab.labs.docs", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout


def test_unknown_and_unwritten_labs_are_one_line_errors(tmp_path: Path) -> None:
    for lab, words in (("7", "no lab 7; labs are 1, 2, 3, 4, 5"), ("3", "is not written yet")):
        r = cli("lab", "check", lab, home=tmp_path)
        assert r.returncode == 1 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_hint_needs_a_graded_lab(tmp_path: Path) -> None:
    r = cli("lab", "hint", "1", home=tmp_path)
    assert r.returncode == 1 and "run make lab-1 first" in r.stderr


def test_hints_get_more_specific(tmp_path: Path) -> None:
    progress = tmp_path / "labs" / "progress.json"
    progress.parent.mkdir(parents=True)
    progress.write_text('{"2": {"first_failing": "evaluation-gate"}}')
    first = cli("lab", "hint", "2", home=tmp_path).stdout
    second = cli("lab", "hint", "2", home=tmp_path).stdout
    assert "hint 1/3" in first and "hint 2/3" not in first
    assert "hint 1/3" in second and "hint 2/3" in second


def test_reset_restores_the_skeleton_and_asks_first(tmp_path: Path) -> None:
    target = ROOT / "exercises" / "lab2" / "gate.py"
    pristine = skeleton_text(ROOT, read_lock(ROOT)["exercises/lab2/gate.py"])
    original = target.read_text()
    try:
        target.write_text("# my work in progress\n")
        declined = cli("lab", "reset", "2", home=tmp_path, input_text="n\n")
        assert declined.returncode == 1 and "nothing reset" in declined.stderr
        assert target.read_text() == "# my work in progress\n"
        accepted = cli("lab", "reset", "2", "--yes", home=tmp_path)
        assert accepted.returncode == 0, accepted.stderr
        assert target.read_text() == pristine
    finally:
        target.write_text(original)


def test_every_scenario_in_the_manifest_loads() -> None:
    labs = load_manifest(ROOT)
    keys = [s.key for lab in labs for s in lab.scenarios]
    assert len(keys) == 9
    for key in keys:
        scenario = get_scenario(labs, key)
        source = (ROOT / scenario.module_file).read_text()
        assert "def run(ctx: Context)" in source and f"make scenario S={key}" in source


def test_make_targets_come_from_the_manifest() -> None:
    out = subprocess.run(["make", "-n", "lab-2", "IMPL=reference"], cwd=ROOT, capture_output=True, text=True)
    assert "mlops-lab lab check 2 --impl reference" in out.stdout
    out = subprocess.run(
        ["make", "-n", "scenario", "S=lab1/slow-model"], cwd=ROOT, capture_output=True, text=True
    )
    assert "mlops-lab lab scenario lab1/slow-model" in out.stdout
