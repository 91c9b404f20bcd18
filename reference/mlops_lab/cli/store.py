"""`mlops-lab store ...`: the prediction store's maintenance and review commands.

mlops-lab store replay-spill
mlops-lab store top-risk --k 20 --since 2026-12-01T00:00:00+00:00 [--until ...] [--variant stable]
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

import typer

from mlops_lab.cli.common import Impl, Learner, console, parts, settings
from mlops_lab.errors import InvalidValue, UserError

store_app = typer.Typer(no_args_is_help=True, help="The prediction store.")


@store_app.command("replay-spill")
def replay_spill() -> None:
    """Load predictions spilled to home/spill/*.jsonl (database down at shutdown) into the store."""
    from mlops_lab.store.db import Store
    from mlops_lab.store.writer import replay_spill as replay

    s = settings()
    n = replay(Store(s.resolved_store_url), s.home / "spill")
    console.print(f"replayed {n} spilled predictions")


Moment = Annotated[str | None, typer.Option(help="ISO 8601 with a time zone, e.g. 2026-12-01T00:00:00+00:00")]


@store_app.command("top-risk")
def top_risk(
    k: Annotated[int, typer.Option(min=1, help="how many transactions to list")] = 20,
    since: Moment = None,
    until: Moment = None,
    variant: Annotated[str | None, typer.Option(help="stable or canary; default both")] = None,
    page_rows: Annotated[int, typer.Option(min=1, help="rows read from the store per query")] = 1000,
    impl: Impl = "reference",
    learner: Learner = None,
) -> None:
    """The K riskiest transactions of the log in [since, until), read as a stream in bounded memory.

    A transaction scored by two models (the canary's shadow) takes one place, at its highest.
    The log records no card id: the ranking is per transaction, ties by id (mlops_lab.store.topk).
    """
    from mlops_lab.canary.weights import SHADOW_SUFFIX
    from mlops_lab.store.db import Store

    window = (_moment(since, "--since"), _moment(until, "--until"))
    if window[0] and window[1] and window[0] >= window[1]:
        raise InvalidValue(f"--until ({until}) must be after --since ({since})")
    topk = parts(impl, learner)("mlops_lab.store.topk")
    store = Store(settings().resolved_store_url)
    read = [0]

    def rows() -> Iterator[tuple[str, float, dict[str, Any]]]:
        for row in store.iter_predictions(*window, variant, page_rows=page_rows):
            read[0] += 1
            # `<id>:shadow` is the canary model's score of request <id>: the same transaction.
            # (The router cuts ids over 57 characters to fit the suffix; such a pair stays two.)
            yield row["request_id"].removesuffix(SHADOW_SUFFIX), row["score"], row

    try:
        ranked = topk.top_k(rows(), k)
    except NotImplementedError as exc:  # a skeleton: say so in one line, not with a traceback
        raise UserError(f"the top-k exercise is not written yet ({exc}): make lab-6") from exc
    console.print(_table(ranked, SHADOW_SUFFIX))
    console.print(f"{read[0]:,} predictions read in pages of {page_rows:,}; {len(ranked)} kept (k={k})")


def _moment(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValue(f"{name}: {value!r} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise InvalidValue(f"{name}: {value!r} has no time zone (write it as 2026-12-01T00:00:00+00:00)")
    return moment


def _table(ranked: list[Any], shadow_suffix: str) -> Any:
    from rich.table import Column, Table

    # The id and the time whole (a reviewer copies the id); "scored by" wraps on a narrow terminal.
    table = Table(
        "#",
        "score",
        Column("transaction", no_wrap=True, min_width=32),
        "scored by",
        Column("when (UTC)", no_wrap=True),
    )
    for place, (key, score, row) in enumerate(ranked, 1):
        shadow = " (shadow)" if row["request_id"].endswith(shadow_suffix) else ""
        table.add_row(
            str(place),
            f"{score:.4f}",
            key,
            f"{row['variant']} v{row['model_version']}{shadow}",
            f"{row['ts']:%m-%d %H:%M:%S}",
        )
    return table
