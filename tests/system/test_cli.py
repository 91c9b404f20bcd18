"""The `mlops-lab` command line: exit codes and one-line errors, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlops_lab.settings import Settings

from ..conftest import make_settings


def cli(*args: str, settings: Settings, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {"MLOPS_HOME": str(settings.home), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    if settings.tracking_uri:
        env["MLOPS_TRACKING_URI"] = settings.tracking_uri
    env["MLOPS_MLFLOW_PORT"] = str(settings.mlflow_port)
    return subprocess.run(
        [sys.executable, "-m", "mlops_lab.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert fragment in result.stderr


def test_data_generate_writes_parquet_and_csv(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    for name in ("a.parquet", "b.csv"):
        r = cli(
            "data",
            "generate",
            "--scenario",
            "unit_bug",
            "--rows",
            "200",
            "--out",
            str(tmp_path / name),
            settings=s,
        )
        assert r.returncode == 0, r.stderr
        assert "wrote 200 rows of unit_bug" in r.stdout
    assert len(pd.read_csv(tmp_path / "b.csv")) == 200


def test_user_errors_are_one_line_with_exit_codes(tmp_path: Path, registry: Settings) -> None:
    s = make_settings(tmp_path)
    assert_one_line_error(
        cli("data", "generate", "--scenario", "nope", "--out", str(tmp_path / "x.parquet"), settings=s),
        2,
        "unknown scenario 'nope'",
    )
    assert_one_line_error(
        cli("train", "--data", str(tmp_path / "missing.parquet"), settings=s), 2, "no such file"
    )
    assert_one_line_error(cli("registry", "promote", "42", settings=registry), 1, "has no version 42")
    assert_one_line_error(
        cli("data", "generate", "--rows", "0", "--out", "x.csv", settings=s), 2, "Invalid value"
    )
    assert_one_line_error(
        cli("serve", "--variant", "blue", settings=s), 2, "variant must be stable or canary"
    )
    assert_one_line_error(cli("no-such-command", settings=s), 2, "No such command")


def test_registry_list_and_history_show_the_champion(registry: Settings) -> None:
    listing = cli("registry", "list", settings=registry)
    assert listing.returncode == 0 and "champion" in listing.stdout
    history = cli("registry", "history", settings=registry)
    assert history.returncode == 0 and "promote" in history.stdout and "fixture" in history.stdout


def test_batch_predict_cli_is_idempotent(registry: Settings, tmp_path: Path) -> None:
    inp, out = tmp_path / "in.csv", tmp_path / "out.parquet"
    assert cli("data", "generate", "--rows", "500", "--out", str(inp), settings=registry).returncode == 0
    first = cli("batch-predict", "--input", str(inp), "--output", str(out), settings=registry)
    assert first.returncode == 0 and "wrote:" in first.stdout, first.stderr
    again = cli("batch-predict", "--input", str(inp), "--output", str(out), settings=registry)
    assert again.returncode == 0 and "already up to date" in again.stdout


@pytest.mark.parametrize("command", ["status", "down"])
def test_runtime_commands_with_nothing_running(tmp_path: Path, command: str) -> None:
    r = cli(command, settings=make_settings(tmp_path))
    assert r.returncode == 0 and "nothing" in r.stdout
