"""`mlops-lab store ...`: the prediction store's maintenance commands.

mlops-lab store replay-spill
"""

from __future__ import annotations

import typer

from mlops_lab.cli.common import console, settings

store_app = typer.Typer(no_args_is_help=True, help="The prediction store.")


@store_app.command("replay-spill")
def replay_spill() -> None:
    """Load predictions spilled to home/spill/*.jsonl (database down at shutdown) into the store."""
    from mlops_lab.store.db import Store
    from mlops_lab.store.writer import replay_spill as replay

    s = settings()
    n = replay(Store(s.resolved_store_url), s.home / "spill")
    console.print(f"replayed {n} spilled predictions")
