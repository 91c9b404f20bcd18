"""The `mlops-lab` command line: one module per command group, assembled here.

    mlops-lab --help
    mlops-lab data generate --scenario baseline --rows 50000 --out var/data/train.parquet
    mlops-lab train --data var/data/train.parquet --promote
    mlops-lab up && mlops-lab status && mlops-lab down
    mlops-lab retrain --reason "drift on amount"
    mlops-lab demo

Errors: a `mlops_lab.errors.UserError` (bad file, unknown version, port in use, a retrain
already running), a usage error, MLflow's own refusals and a component that cannot be reached
print one line on stderr and exit 1 (the operation failed) or 2 (the command was used wrongly).
Anything else is a bug: its traceback is shown, with one line asking for a report.
"""

from __future__ import annotations

import logging
import sys
import warnings

import typer

from mlops_lab.cli import canary, data, lab, lifecycle, pipeline, serving, store, system
from mlops_lab.cli.common import err
from mlops_lab.errors import UserError

BUG_REPORT = "this is a bug in mlops-lab, not something you did: please report it with the traceback above"

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="mlops-lab: serve, track, canary, retrain."
)
app.add_typer(data.data_app, name="data")
app.command()(lifecycle.train)
app.add_typer(lifecycle.registry_app, name="registry")
app.command()(serving.serve)
app.command("batch-predict")(serving.batch_predict)
app.command()(serving.monitor)
app.command()(pipeline.retrain)
app.command()(canary.route)
app.add_typer(canary.canary_app, name="canary")
app.command()(system.up)
app.command()(system.down)
app.command()(system.status)
app.command()(system.load)
app.command()(system.demo)
app.add_typer(store.store_app, name="store")
app.add_typer(lab.lab_app, name="lab")


def _one_line(message: str) -> None:
    err.print(f"error: {message}", highlight=False, markup=False)


def main() -> None:
    """Entry point: one line for what the user can act on, a traceback for a bug."""
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        # Standalone mode: typer reports usage errors itself (one message, exit 2) and lets
        # every other exception reach the handlers below.
        app()
    except KeyboardInterrupt:
        err.print("aborted")
        sys.exit(130)
    except UserError as exc:
        _one_line(str(exc))
        sys.exit(exc.exit_code)
    except Exception as exc:
        if not _is_outside_failure(exc):
            err.print_exception(show_locals=False)
            err.print(BUG_REPORT, highlight=False, markup=False)
            sys.exit(3)
        _one_line(_outside_message(exc))
        sys.exit(1)


def _is_outside_failure(exc: BaseException) -> bool:
    """A component outside this process refused or could not be reached: MLflow, a server."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    name = type(exc).__module__.split(".")[0]
    if name == "sqlalchemy" and type(exc).__name__ == "OperationalError":
        return True  # the database is down, or its file cannot be opened (no MLOPS_HOME yet)
    return name in ("httpx", "httpcore", "requests", "urllib3") or type(exc).__name__ == "MlflowException"


def _outside_message(exc: BaseException) -> str:
    if type(exc).__name__ == "MlflowException":
        return f"MLflow: {str(exc).splitlines()[0]}"
    if type(exc).__name__ == "OperationalError":
        cause = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return f"the prediction store: {cause} (MLOPS_STORE_URL, or MLOPS_HOME: `mlops-lab up` creates it)"
    return f"cannot connect: {exc}"
