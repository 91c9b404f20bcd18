"""`mlops-lab retrain`: one run of the retraining pipeline (Airflow locally, or in this process).

mlops-lab retrain --reason "drift on amount"
mlops-lab retrain --in-process --run-id retrain-20261126-141914   # resume a crashed run
"""

from __future__ import annotations

from typing import Annotated

import typer

from mlops_lab.cli.common import console, settings
from mlops_lab.errors import UserError


def retrain(
    reason: Annotated[str, typer.Option(help="why (lineage tag and audit log)")] = "manual retrain",
    in_process: Annotated[
        bool, typer.Option("--in-process", help="run the steps in this process instead of airflow dags test")
    ] = False,
    run_id: Annotated[
        str | None, typer.Option(help="resume this pipeline run (skips finished steps)")
    ] = None,
) -> None:
    """Run the retraining pipeline once; a version that passes is staged as @challenger."""
    from mlops_lab.pipeline.run import retrain as run

    result = run(settings(), reason, in_process=in_process, run_id=run_id)
    if not result.ok:
        raise UserError(result.summary())
    console.print(result.summary())
