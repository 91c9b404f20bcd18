"""`mlops-lab data ...`: synthetic transactions and delayed labels.

mlops-lab data generate --scenario unit_bug --rows 1000 --out var/data/x.csv
mlops-lab data labels
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlops_lab.cli.common import console, settings

data_app = typer.Typer(no_args_is_help=True, help="Synthetic transactions and delayed labels.")


@data_app.command("generate")
def generate(
    out: Annotated[Path, typer.Option(help="output file, .parquet or .csv")],
    scenario: Annotated[str, typer.Option(help="baseline, covariate_shift, unit_bug, ...")] = "baseline",
    rows: Annotated[int, typer.Option(min=1)] = 50_000,
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Write `rows` transactions of a scenario (a pure function of scenario, rows, seed)."""
    from mlops_lab.data.generator import generate as generate_frame
    from mlops_lab.data.io import write_frame

    frame = generate_frame(scenario, rows, seed)
    write_frame(frame, out)
    console.print(
        f"wrote {len(frame):,} rows of [bold]{scenario}[/] to {out} "
        f"(fraud rate {frame['is_fraud'].mean():.2%})"
    )


@data_app.command("labels")
def labels(
    concept: Annotated[
        str, typer.Option(help="ground truth to label with: baseline or concept_drift")
    ] = "baseline",
) -> None:
    """Deliver the chargeback labels that have arrived by now into the store."""
    from mlops_lab.data.labels import deliver_arrived
    from mlops_lab.store.db import Store

    s = settings()
    added, in_flight = deliver_arrived(Store(s.resolved_store_url), s.label_delay_s, concept)
    console.print(f"{added} labels arrived; {in_flight} still in flight")
