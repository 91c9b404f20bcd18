"""Predictions logged together, as columns: the rows of one batch request in the prediction log.

    python -c "import mlops_lab.store.block as b; help(b.PredictionBlock)"

POST /v1/predict/batch logs its rows as one `PredictionBlock`: the writer queues it in one submit
(all or nothing: a full queue refuses the whole batch, never half of it) and the store inserts it
with the other queued rows, one executemany per chunk (`Store.insert_predictions`).

A block keeps what its rows share once (time, variant, model version, latency) and the rest as
columns; the features become JSON text column by column (`features_json`), the same text
`json.dumps` writes for each row's dict, at about half its cost (measured with 1,000 rows).
`bind` turns queued rows and blocks into the parameters of that executemany (`InsertPlan`: the
statement compiled once for the dialect, and each column's bind processor).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import repeat
from typing import Any

Processor = Callable[[Any], Any] | None  # a column type's bind processor for a dialect
LOGGED = ("request_id", "ts", "variant", "model_version", "features", "score", "decision", "latency_ms")
JSON_SPELLING = {"None": "null", "nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}  # repr -> json.dumps


@dataclass(frozen=True)
class PredictionBlock:
    """Rows logged at one time by one model: per row a request id, the features, the score and
    the decision (`features`: column name -> one value per row, in the order of the row's dict)."""

    request_ids: Sequence[str]
    ts: datetime
    variant: str
    model_version: str
    features: Mapping[str, Sequence[Any]]
    scores: Sequence[float]
    decisions: Sequence[bool]
    latency_ms: float

    def __post_init__(self) -> None:
        n = len(self.request_ids)
        lengths = [len(self.scores), len(self.decisions), *map(len, self.features.values())]
        if any(length != n for length in lengths):
            raise ValueError(f"a block's columns must all have {n} rows, got {lengths}")

    def __len__(self) -> int:
        return len(self.request_ids)

    def split(self, at: int) -> tuple[PredictionBlock, PredictionBlock]:
        """(the first `at` rows, the rest): the writer cuts a block where a chunk ends."""

        def cut(part: slice) -> PredictionBlock:
            return replace(
                self,
                request_ids=self.request_ids[part],
                features={k: v[part] for k, v in self.features.items()},
                scores=self.scores[part],
                decisions=self.decisions[part],
            )

        return cut(slice(None, at)), cut(slice(at, None))

    def rows(self) -> list[dict[str, Any]]:
        """The rows as `Store.insert_predictions` takes them one by one, and as the spill writes them."""
        names = list(self.features)
        return [
            {
                "request_id": request_id,
                "ts": self.ts,
                "variant": self.variant,
                "model_version": self.model_version,
                "features": dict(zip(names, values, strict=True)),
                "score": score,
                "decision": decision,
                "latency_ms": self.latency_ms,
            }
            for request_id, score, decision, *values in zip(
                self.request_ids, self.scores, self.decisions, *self.features.values(), strict=True
            )
        ]

    def features_json(self) -> list[str]:
        """Each row's features as the JSON text `json.dumps(row_features)` writes."""
        # One "%s" per feature, its key already encoded ("%" doubled: a key is text, not a format).
        template = "{" + ", ".join(json.dumps(k).replace("%", "%%") + ": %s" for k in self.features) + "}"
        columns = [json_column(v) for v in self.features.values()]
        if not columns:
            return ["{}"] * len(self)
        return list(map(template.__mod__, zip(*columns, strict=True)))


def json_column(values: Sequence[Any]) -> list[str]:
    """Each value as `json.dumps(value)` writes it: a whole column at once (numbers by repr, text
    once per distinct value; loops in C), `json.dumps` itself for anything else."""
    kinds = set(map(type, values))
    if kinds <= {float, int, type(None)}:  # exact types: bool is not an int here
        texts = list(map(repr, values))
        # What json.dumps writes instead of repr's None, nan, inf, -inf; any other text stays.
        return list(map(JSON_SPELLING.get, texts, texts)) if kinds - {int} else texts
    if kinds <= {str, type(None)}:
        encoded = {v: json.dumps(v) for v in set(values)}
        return list(map(encoded.__getitem__, values))
    return [json.dumps(v) for v in values]


def row_count(items: Iterable[Mapping[str, Any] | PredictionBlock]) -> int:
    """How many rows: a block counts its rows, a row mapping counts one."""
    return sum(len(item) if isinstance(item, PredictionBlock) else 1 for item in items)


def each_row(items: Iterable[Mapping[str, Any] | PredictionBlock]) -> Iterator[Mapping[str, Any]]:
    """Every row of `items`, blocks taken apart (the writer's row-by-row retry and its spill)."""
    for item in items:
        if isinstance(item, PredictionBlock):
            yield from item.rows()
        else:
            yield item


class EncodedJSON(str):
    """A JSON document already encoded (a block's features, `PredictionBlock.features_json`):
    stored as it is rather than encoded again as a JSON string."""


@dataclass(frozen=True)
class InsertPlan:
    """How `Store.insert_predictions` inserts, for one dialect: the statement compiled once."""

    sql: str
    positions: list[str] | None  # the bind names in positional order, None for a named paramstyle
    processors: Sequence[Processor]  # the bind processor of each LOGGED column (None: the value as is)
    encoded_json: Processor  # what turns an EncodedJSON into the features' parameter (None: itself)
    rows_per_statement: int | None  # rows in one multi-row INSERT; None: one executemany instead


def bind(items: Sequence[Mapping[str, Any] | PredictionBlock], plan: InsertPlan) -> list[tuple[Any, ...]]:
    """Each row's values in LOGGED order, each through its column's bind processor (if any)."""
    out: list[tuple[Any, ...]] = []
    for item in items:
        if isinstance(item, PredictionBlock):
            out += _bind_block(item, plan)
        else:
            out.append(
                tuple(
                    v if p is None else p(v)
                    for v, p in zip(map(item.__getitem__, LOGGED), plan.processors, strict=True)
                )
            )
    return out


def _bind_block(block: PredictionBlock, plan: InsertPlan) -> Iterator[tuple[Any, ...]]:
    """A block's rows: its shared values processed once, its columns a column at a time."""
    by_name = dict(zip(LOGGED, plan.processors, strict=True))

    def one(name: str, value: Any) -> Any:
        p = by_name[name]
        return value if p is None else p(value)

    def each(name: str, values: Sequence[Any]) -> Sequence[Any]:
        p = by_name[name]
        return values if p is None else list(map(p, values))

    features: Sequence[Any] = block.features_json()
    if plan.encoded_json is not None:
        features = list(map(plan.encoded_json, map(EncodedJSON, features)))
    return zip(
        each("request_id", block.request_ids),
        repeat(one("ts", block.ts)),
        repeat(one("variant", block.variant)),
        repeat(one("model_version", block.model_version)),
        features,
        each("score", block.scores),
        each("decision", block.decisions),
        repeat(one("latency_ms", block.latency_ms)),
        strict=False,  # repeat() never ends: the columns, all of one length, end it
    )
