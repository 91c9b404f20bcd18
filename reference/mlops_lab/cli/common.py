"""What every command module shares: the consoles, the settings, and the uvicorn runner.

python -c "from mlops_lab.cli.common import settings; print(settings())"
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.console import Console

from mlops_lab.errors import UsageError
from mlops_lab.settings import Settings, get_settings

console = Console()
err = Console(stderr=True, soft_wrap=True)  # one line per error, however narrow the terminal


def settings() -> Settings:
    """The settings from the environment (MLOPS_*), with MLflow's environment set up for them.

    A bad MLOPS_* value is the user's to fix: one line naming the variable, exit code 2.
    """
    from pydantic import ValidationError

    from mlops_lab.lifecycle.aliases import configure_mlflow_env

    configure_mlflow_env()
    try:
        return get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "MLOPS_" + "_".join(str(part) for part in first["loc"]).upper()
        raise UsageError(f"{name}: {first['msg']} (got {first.get('input')!r})") from None


# Whose code a command runs: `--impl exercises` plays the learner's exercise files.
Impl = Annotated[str, typer.Option(help="reference, or exercises: your exercise files (exercises/labN/)")]
Learner = Annotated[
    str | None,
    typer.Option(help="with --impl: only these exercises (ids, comma-separated) are yours; default all"),
]


def parts(impl: str, learner: str | None) -> Callable[[str], ModuleType]:
    """`--impl`/`--learner` as the function that names the module playing each reference module."""
    from mlops_lab.labs.impl import part_of
    from mlops_lab.labs.manifest import LabError

    try:
        return part_of(impl, None if learner is None else learner.split(","))
    except LabError as exc:
        raise typer.BadParameter(f"--learner: {exc}") from None


def serve_forever(app_: Any, host: str, port: int) -> None:
    """One uvicorn worker in the foreground (scale by processes), lifespan on, 30 s to drain."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry poll otherwise
    uvicorn.run(
        app_,
        host=host,
        port=port,
        workers=1,
        access_log=False,
        log_level="info",
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
