"""`mlops-lab serve`, `mlops-lab batch-predict`, `mlops-lab monitor`: the processes that score and watch.

mlops-lab serve --variant stable          # one model server in the foreground
mlops-lab batch-predict --input in.parquet --output out.parquet
mlops-lab batch-predict --input shards/ --output sorted.parquet --memory-rows 50000
mlops-lab monitor                         # the drift monitor in the foreground
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, cast

import typer

from mlops_lab.cli.common import Impl, Learner, console, err, parts, serve_forever, settings
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
        cache_class=_written_or_reference(part, "mlops_lab.serving.cache", "LRUCache", _try_cache),
        limiter_class=_written_or_reference(part, "mlops_lab.serving.limiter", "RateLimiter", _try_limiter),
    )
    serve_forever(app_, s.host, port or s.port_of(which))


def _try_cache(cls: Any) -> None:
    cache = cls(1, 100)
    cache.put("probe", "model", size=10)
    cache.get("probe")


def _try_limiter(cls: Any) -> None:
    cls(rate_per_s=1.0, burst=1, max_clients=1).acquire("probe")


def _written_or_reference(
    part: Callable[[str], ModuleType], mirrors: str, name: str, attempt: Callable[[Any], None]
) -> Any:
    """The class `name` of whoever plays `mirrors`; the reference's, said in one line, while the
    learner's still raises its TODO: `--impl exercises` serves lab 1's code before lab 6 is done."""
    cls = getattr(part(mirrors), name)
    try:
        attempt(cls)
    except NotImplementedError as exc:
        err.print(f"{name} ({mirrors}): yours is not written yet ({exc}); serving with the reference's")
        return getattr(importlib.import_module(mirrors), name)
    return cls


def batch_predict(
    input: Annotated[
        Path,
        typer.Option(
            help=".parquet or .csv with the schema's columns; or a directory of them (shards): "
            "one .parquet output sorted by score, riskiest first"
        ),
    ],
    output: Annotated[Path, typer.Option(help=".parquet or .csv (.parquet for a directory)")],
    model: Annotated[
        str, typer.Option(help="models:/name@alias or models:/name/version")
    ] = "models:/fraud-detector@champion",
    chunk_rows: Annotated[int, typer.Option(min=1, help="a file: rows scored at a time")] = 50_000,
    memory_rows: Annotated[
        int, typer.Option(min=3, help="a directory: the most rows held at once (sorted runs, merged)")
    ] = 50_000,
    impl: Impl = "reference",
    learner: Learner = None,
) -> None:
    """Score a file in chunks, or a directory of shards into one output sorted by score (an
    external merge sort); atomic output; re-running with the same input and model is a no-op."""
    from mlops_lab.serving.batch import batch_predict as run
    from mlops_lab.serving.shards import score_shards

    s, part = settings(), parts(impl, learner)
    progress = sys.stderr.isatty()
    try:
        if input.is_dir():  # the learner's external merge (lab 6) sorts and merges the runs
            res = score_shards(
                s,
                model,
                input,
                output,
                memory_rows=memory_rows,
                show_progress=progress,
                merge=part("mlops_lab.serving.merge"),
            )
        else:  # the learner's chunk loop (lab 1's batch-chunks) scores the file
            res = run(
                s,
                model,
                input,
                output,
                chunk_rows=chunk_rows,
                show_progress=progress,
                score_file_fn=part("mlops_lab.serving.batch").score_file,
            )
    except NotImplementedError as exc:  # a skeleton: say so in one line, not with a traceback
        lab = re.search(r"TODO\(lab-(\d+)\)", str(exc))
        raise UserError(f"an exercise is not written yet ({exc}): make lab-{lab[1] if lab else 'N'}") from exc
    what = "already up to date" if res.skipped else "wrote"
    sort = ", sorted by score" if input.is_dir() else ""
    console.print(
        f"{what}: {res.output} ({res.rows:,} rows{sort}, {res.flagged:,} flagged, model v{res.model_version})"
    )


def monitor(
    port: Annotated[int | None, typer.Option(help="default: the monitor_port setting")] = None,
    impl: Annotated[
        str | None, typer.Option(help="reference or exercises; default: the pipeline_impl setting")
    ] = None,
    learner: Learner = None,
) -> None:
    """Run the drift monitor (one uvicorn worker) in the foreground: windows, gauges, retraining.

    With --impl exercises the trigger policy and the realized/estimated performance are the
    learner's lab 4 code. The default follows MLOPS_PIPELINE_IMPL/LEARNER, which `mlops-lab up`
    and the demo set for the whole loop (the retraining the monitor triggers runs them too)."""
    from mlops_lab.monitoring.service import Monitor, create_monitor_app

    s = settings()
    part = parts(impl or s.pipeline_impl, learner if impl else s.pipeline_learner)
    serve_forever(create_monitor_app(s, Monitor(s, part=part)), s.host, port or s.monitor_port)
