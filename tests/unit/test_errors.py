"""Errors a user and a maintainer can both live with: one line for the user's, a traceback for a bug."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sqlalchemy import exc as sa_exc

from mlops_lab import cli
from mlops_lab.cli.common import settings
from mlops_lab.errors import InvalidValue, MissingFile, UsageError, UserError
from mlops_lab.lifecycle import registry as reg
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store


def run_main(monkeypatch: pytest.MonkeyPatch, raised: BaseException) -> int:
    def app() -> None:
        raise raised

    monkeypatch.setattr(cli, "app", app)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return int(exit_info.value.code or 0)


@pytest.mark.parametrize(
    ("raised", "code", "line"),
    [
        (UserError("gate failed; @champion stays at 1"), 1, "error: gate failed; @champion stays at 1"),
        (UsageError("MLOPS_STABLE_PORT: not a number"), 2, "error: MLOPS_STABLE_PORT: not a number"),
        (MissingFile("x.parquet: no such file"), 2, "error: x.parquet: no such file"),
        (MlflowException("RESOURCE_DOES_NOT_EXIST: nope\nmore"), 1, "error: MLflow: RESOURCE_DOES_NOT_EXIST"),
        (httpx.ConnectError("connection refused"), 1, "error: cannot connect: connection refused"),
        (ConnectionRefusedError("refused"), 1, "error: cannot connect: refused"),
        (
            sa_exc.OperationalError("SELECT 1", {}, Exception("unable to open database file")),
            1,
            "error: the prediction store: unable to open database file",
        ),
    ],
)
def test_what_the_user_can_act_on_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: Exception,
    code: int,
    line: str,
) -> None:
    assert run_main(monkeypatch, raised) == code
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [line.splitlines()[0]] or err.startswith(line), err
    assert "Traceback" not in err


@pytest.mark.parametrize("raised", [KeyError("amount"), ValueError("cannot reshape"), RuntimeError("boom")])
def test_a_bug_shows_its_traceback_and_asks_for_a_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], raised: Exception
) -> None:
    """A bare ValueError from deep inside (pandas, numpy) is a bug, not a user error."""
    assert run_main(monkeypatch, raised) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and type(raised).__name__ in err
    assert err.strip().splitlines()[-1] == cli.BUG_REPORT


def test_a_bad_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_STABLE_PORT", "eight thousand")
    with pytest.raises(UsageError, match="MLOPS_STABLE_PORT") as info:
        settings()
    assert info.value.exit_code == 2


def test_user_errors_stay_the_builtin_a_library_caller_expects() -> None:
    assert issubclass(InvalidValue, ValueError) and issubclass(MissingFile, FileNotFoundError)
    assert issubclass(reg.NoSuchVersion, reg.RegistryError)
    assert issubclass(reg.RegistryError, UserError)


def test_set_alias_tells_no_such_version_from_an_unreachable_registry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, registry: Settings
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(reg.NoSuchVersion, match="has no version 99"):
        reg.promote(
            MlflowClient(registry.tracking_uri, registry_uri=registry.tracking_uri),
            store,
            "fraud-detector",
            "99",
            actor="t",
            reason="r",
        )
    with socket.socket() as s:  # a port nobody listens on: the registry is down
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(reg.RegistryUnavailable, match="could not look up fraud-detector v1") as info:
        reg.promote(
            MlflowClient(dead, registry_uri=dead), store, "fraud-detector", "1", actor="t", reason="r"
        )
    assert "has no version" not in str(info.value)
    assert store.audit_log() == []  # nothing moved, nothing audited
