"""`mlops-lab train` and `mlops-lab registry ...`: train, gate, and move the aliases (audited).

mlops-lab train --data var/data/train.parquet --promote
mlops-lab registry list | promote 3 | rollback | history
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from mlops_lab.cli.common import console, settings
from mlops_lab.errors import UserError

registry_app = typer.Typer(no_args_is_help=True, help="Model versions and aliases (champion/challenger).")


def train(
    data: Annotated[Path, typer.Option(help="training data, .parquet or .csv")],
    promote: Annotated[
        bool, typer.Option(help="move @champion to the new version if the gate passes")
    ] = False,
    reason: Annotated[str, typer.Option(help="why (goes to the audit log)")] = "manual training",
    flavour: Annotated[
        Literal["sklearn", "torch"] | None,
        typer.Option(help="model flavour (default: MLOPS_MODEL_FLAVOUR, else sklearn); torch: docs/gpu.md"),
    ] = None,
    device: Annotated[
        Literal["auto", "cpu", "cuda"] | None,
        typer.Option(help="torch device (default: MLOPS_MODEL_DEVICE, else auto = cuda if available)"),
    ] = None,
) -> None:
    """Train, log to MLflow, register a version, gate it against the champion."""
    from mlops_lab.data.io import read_frame
    from mlops_lab.lifecycle.registry import default_actor
    from mlops_lab.lifecycle.release import train_and_release

    s = settings()
    overrides = {"model_flavour": flavour, "model_device": device}
    s = s.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    frame = read_frame(data)
    rel = train_and_release(
        s, frame, promote=promote, actor=default_actor(), reason=reason, lineage={"trigger_reason": reason}
    )
    m = rel.trained.metrics
    console.print(
        f"registered [bold]{s.model_name} v{rel.trained.version}[/] (run {rel.trained.run_id[:8]}): "
        f"PR-AUC {m['pr_auc']:.3f}, recall {m['recall']:.3f} at threshold {rel.trained.threshold:.3f}"
        f" ({s.model_flavour})"
    )
    for c in rel.verdict.checks:
        console.print(f"  gate {'[green]pass[/]' if c.passed else '[red]FAIL[/]'} {c.name}: {c.detail}")
    if promote:
        if rel.promoted:
            console.print(f"@champion -> v{rel.trained.version} (was {rel.champion_before or 'none'})")
        else:
            raise UserError(f"gate failed; @champion stays at {rel.champion_before or 'none'}")


@registry_app.command("list")
def registry_list() -> None:
    """Every version with its aliases, gate verdict and lineage."""
    from mlops_lab.lifecycle.registry import list_versions
    from mlops_lab.lifecycle.tracking import client_for

    s = settings()
    table = Table("version", "aliases", "created", "threshold", "gate", "data", "code")
    for v in list_versions(client_for(s), s.model_name):
        table.add_row(
            v.version,
            ",".join(v.aliases),
            f"{v.created:%Y-%m-%d %H:%M:%S}",
            v.tags.get("decision_threshold", ""),
            v.tags.get("gate", "")[:40],
            v.tags.get("data_fingerprint", ""),
            v.tags.get("code_version", ""),
        )
    console.print(table)


@registry_app.command("promote")
def registry_promote(
    version: str,
    reason: Annotated[str, typer.Option()] = "manual promotion",
) -> None:
    """Point @champion at VERSION (audited)."""
    from mlops_lab.lifecycle import registry
    from mlops_lab.lifecycle.tracking import client_for
    from mlops_lab.store.db import Store

    s = settings()
    prev = registry.promote(
        client_for(s),
        Store(s.resolved_store_url),
        s.model_name,
        version,
        actor=registry.default_actor(),
        reason=reason,
    )
    console.print(f"@champion -> v{version} (was {prev or 'none'})")


@registry_app.command("rollback")
def registry_rollback(reason: Annotated[str, typer.Option()] = "manual rollback") -> None:
    """Return @champion to the previous champion (from the audit log)."""
    from mlops_lab.lifecycle import registry
    from mlops_lab.lifecycle.tracking import client_for
    from mlops_lab.store.db import Store

    s = settings()
    target = registry.rollback(
        client_for(s),
        Store(s.resolved_store_url),
        s.model_name,
        actor=registry.default_actor(),
        reason=reason,
    )
    console.print(f"@champion -> v{target} (rolled back)")


@registry_app.command("history")
def registry_history() -> None:
    """Which version served when, and why (the audit log)."""
    from mlops_lab.lifecycle import registry
    from mlops_lab.store.db import Store

    s = settings()
    table = Table("time (UTC)", "actor", "action", "alias", "version", "previous", "reason")
    for e in registry.history(Store(s.resolved_store_url), s.model_name):
        d = e["details"]
        table.add_row(
            f"{e['ts']:%Y-%m-%d %H:%M:%S}",
            e["actor"],
            e["action"],
            d.get("alias", ""),
            str(d.get("version", "")),
            str(d.get("previous") or ""),
            d.get("reason", ""),
        )
    console.print(table)
