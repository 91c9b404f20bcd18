"""`mlops-lab serve`, `mlops-lab batch-predict`, `mlops-lab monitor`: the processes that score and watch.

mlops-lab serve --variant stable          # one model server in the foreground
mlops-lab batch-predict --input in.parquet --output out.parquet
mlops-lab monitor                         # the drift monitor in the foreground
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, cast

import typer

from mlops_lab.cli.common import Impl, Learner, console, parts, serve_forever, settings
from mlops_lab.errors import UserError
from mlops_lab.settings import Variant


def serve(
    variant: Annotated[
        str, typer.Option(help="stable serves @champion, canary serves @challenger")
    ] = "stable",
    port: Annotated[int | None, typer.Option(help="default: the variant's port setting")] = None,
    impl: Impl = "reference",
    learner: Learner = None,
) -> None:
    """Run one model server (one uvicorn worker) in the foreground."""
    from mlops_lab.serving.app import create_app

    if variant not in ("stable", "canary"):
        raise typer.BadParameter("variant must be stable or canary")
    which = cast(Variant, variant)
    s = settings()
    part = parts(impl, learner)
    try:
        request_model = part("mlops_lab.serving.schemas").request_model()
    except NotImplementedError as exc:  # a skeleton: say so in one line, not with a traceback
        raise UserError(f"the request-schema exercise is not written yet ({exc}): make lab-1") from exc
    # create_app wires the holder's on_load/on_failure to the server's metrics, whoever wrote it.
    app_ = create_app(
        s,
        which,
        holder_class=part("mlops_lab.serving.holder").ModelHolder,
        handlers=part("mlops_lab.serving.handlers"),
        request_model=request_model,
    )
    serve_forever(app_, s.host, port or s.port_of(which))


def batch_predict(
    input: Annotated[Path, typer.Option(help=".parquet or .csv with the schema's columns")],
    output: Annotated[Path, typer.Option(help=".parquet or .csv")],
    model: Annotated[
        str, typer.Option(help="models:/name@alias or models:/name/version")
    ] = "models:/fraud-detector@champion",
    chunk_rows: Annotated[int, typer.Option(min=1)] = 50_000,
) -> None:
    """Score a file in chunks; atomic output; re-running with the same input and model is a no-op."""
    from mlops_lab.serving.batch import batch_predict as run

    res = run(settings(), model, input, output, chunk_rows=chunk_rows, show_progress=sys.stderr.isatty())
    what = "already up to date" if res.skipped else "wrote"
    console.print(
        f"{what}: {res.output} ({res.rows:,} rows, {res.flagged:,} flagged, model v{res.model_version})"
    )


def monitor(
    port: Annotated[int | None, typer.Option(help="default: the monitor_port setting")] = None,
) -> None:
    """Run the drift monitor (one uvicorn worker) in the foreground: windows, gauges, retraining."""
    from mlops_lab.monitoring.service import create_monitor_app

    s = settings()
    serve_forever(create_monitor_app(s), s.host, port or s.monitor_port)
