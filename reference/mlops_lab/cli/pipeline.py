"""`mlops-lab retrain`: one run of the retraining pipeline (Airflow locally, or in this process).

mlops-lab retrain --reason "drift on amount"
mlops-lab retrain --in-process --run-id retrain-20261126-141914   # resume a crashed run
"""

from __future__ import annotations

from typing import Annotated

import typer

from mlops_lab.cli.common import Impl, Learner, console, parts, settings
from mlops_lab.errors import UserError


def retrain(
    reason: Annotated[str, typer.Option(help="why (lineage tag and audit log)")] = "manual retrain",
    in_process: Annotated[
        bool, typer.Option("--in-process", help="run the steps in this process instead of airflow dags test")
    ] = False,
    run_id: Annotated[
        str | None, typer.Option(help="resume this pipeline run (skips finished steps)")
    ] = None,
    window_start: Annotated[
        str, typer.Option(help="a backfill's data window: start, ISO 8601 with a time zone")
    ] = "",
    window_end: Annotated[str, typer.Option(help="a backfill's data window: end (exclusive)")] = "",
    impl: Impl = "reference",
    learner: Learner = None,
) -> None:
    """Run the retraining pipeline once; a version that passes is staged as @challenger.

    With --impl exercises the steps call your lab 2 and lab 3 exercises (under Airflow too)."""
    from mlops_lab.pipeline.run import retrain as run

    part = parts(impl, learner)  # refuses an unknown exercise id before anything runs
    s = settings().model_copy(update={"pipeline_impl": impl, "pipeline_learner": learner})
    params = {"window_start": window_start, "window_end": window_end}
    result = run(s, reason, in_process=in_process, run_id=run_id, params=params, part=part)
    if not result.ok:
        raise UserError(result.summary())
    console.print(result.summary())
