"""The body of POST /v1/predict/batch read as columns: validation, and the answer's bytes.

    python -c "import mlops_lab.serving.columns as c; help(c.BatchRequest)"

FastAPI still reads the body (content type, broken JSON, the size limit; its JSON parsed by
`JSONRequest` on this route, `BatchRoute`) and hands it to `columns.BatchRequest`: the batch
request model with a fast path in front of its pydantic validation. `fast_columns` takes the
rows apart into one list per field and validates each list in one call with that field's own
rule, taken from the single-row model (`PredictRequest`): its type, range, vocabulary or
pattern, and its conversions (the text "5" for a number is 5.0 here too). In Python it checks
what a field cannot: every required field in every row, no unknown field. No model is built
per row (that was most of the validation's cost, measured with 1,000 rows: 1.9 ms as models,
0.7 ms as columns).

A batch the fast path does not take (a row that breaks a rule, a shape it does not know) is
validated by the pydantic model itself, as before, so a 422 is the model's own: the same field
errors, at ["body", "rows", i, field], in the same order. Only the reference request model has
the fast path: a learner's (`mlops-lab serve --impl exercises`) may add validators that no
field rule knows.

`JSONRequest` parses with pydantic_core.from_json (0.8 ms for 1,000 rows, json.loads 1.4 ms)
and gives json.loads whatever it refuses: a document either takes is the same document (checked
on the edge cases in tests/unit/test_columns.py), and what pydantic_core refuses (a lone
surrogate, a BOM, nesting past its limit, broken JSON) is json.loads' to accept or to answer
with the JSONDecodeError FastAPI turns into the 422 it always gave.

`batch_answer` writes the 200's body from columns: byte for byte what JSONResponse writes for
the same predictions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import cache
from json.encoder import encode_basestring
from typing import Annotated, Any

import pydantic_core
from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import ModelWrapValidatorHandler, PrivateAttr, TypeAdapter, ValidationError, model_validator

from mlops_lab.serving import schemas
from mlops_lab.serving.schemas import FEATURE_NAMES, PredictRequest, RequestFields


@dataclass(frozen=True)
class Columns:
    """A validated batch, one list per field: `features` keyed by SCHEMA.names (the model's
    input, values as the single-row model gives them), `request_ids` None where a row has none."""

    features: dict[str, list[Any]]
    request_ids: list[str | None]

    def __len__(self) -> int:
        return len(self.request_ids)

    @classmethod
    def of_rows(cls, rows: Sequence[RequestFields]) -> Columns:
        """The columns of rows pydantic validated (the slow path, or a learner's request model)."""
        features = [r.features() for r in rows]
        return cls({n: [f[n] for f in features] for n in FEATURE_NAMES}, [r.request_id for r in rows])


@dataclass(frozen=True)
class Plan:
    """What `fast_columns` checks: the single-row model's fields, each with its rule for a list."""

    required: tuple[str, ...]
    optional: tuple[str, ...]  # each defaults to None and accepts None
    rules: dict[str, TypeAdapter[list[Any]]]


# Model settings that change no field's rule; any other (strict, str_strip_whitespace, ...) would.
NEUTRAL_CONFIG = {"frozen", "extra", "json_schema_extra", "title"}


@cache
def plan() -> Plan | None:
    """The fast path's plan for PredictRequest; None (no fast path) unless the model's rules are
    its fields' own and unknown fields are refused: what `fast_columns` assumes."""
    model = PredictRequest
    d = model.__pydantic_decorators__
    if (
        model.model_config.get("extra") != "forbid"
        or not set(model.model_config) <= NEUTRAL_CONFIG
        or any((d.validators, d.field_validators, d.root_validators, d.model_validators))
    ):
        return None
    required, optional, rules = [], [], {}
    for name, field in model.model_fields.items():
        if field.alias not in (None, name) or field.validation_alias not in (None, name):
            return None
        if field.is_required():
            required.append(name)
        elif field.default is None and _accepts_none(field.annotation):
            optional.append(name)
        else:
            return None
        item: Any = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        rules[name] = TypeAdapter(list[item])
    if not set(FEATURE_NAMES) <= set(required) | set(optional):
        return None
    return Plan(tuple(required), tuple(optional), rules)


def fast_columns(raw: Any) -> Columns | None:
    """`raw` (the parsed JSON body) as columns when every row passes the single-row rules as it
    is; None when the pydantic model must look at it (for its 422, or a shape it alone judges)."""
    p = plan()
    if p is None or type(raw) is not dict or len(raw) != 1:
        return None
    rows = raw.get("rows")
    if type(rows) is not list or not rows or set(map(type, rows)) != {dict}:
        return None
    try:
        columns = {name: [r[name] for r in rows] for name in p.required}
    except KeyError:  # a row without a required field
        return None
    keys = sum(map(len, rows))  # every row has the required fields: what is over is optional or unknown
    expected = len(rows) * len(p.required)
    for name in p.optional if keys > expected else ():
        present = sum([name in r for r in rows])
        if present:
            columns[name] = [r.get(name) for r in rows]  # absent: the default, None
            expected += present
    if keys != expected:  # a row with a field the model does not know
        return None
    try:
        checked = {name: p.rules[name].validate_python(values) for name, values in columns.items()}
    except ValidationError:
        return None
    return Columns({n: checked[n] for n in FEATURE_NAMES}, checked.get("request_id") or [None] * len(rows))


# schemas.BatchRequest validated by `fast_columns` first: the same fields, the same JSON schema
# under the same name in the OpenAPI document (a docstring would become its description there).
# A batch the fast path takes keeps `rows` empty: read `columns()`.
class BatchRequest(schemas.BatchRequest):
    _columns: Columns | None = PrivateAttr(None)

    @model_validator(mode="wrap")
    @classmethod
    def _columnar(cls, data: Any, handler: ModelWrapValidatorHandler[BatchRequest]) -> BatchRequest:
        columns = fast_columns(data)
        if columns is None:
            return handler(data)  # the pydantic model: its 422, or the rows it converts
        batch = cls.model_construct(rows=[])
        batch._columns = columns
        return batch

    def columns(self) -> Columns:
        return self._columns if self._columns is not None else Columns.of_rows(self.rows)


class JSONRequest(Request):
    """A request whose JSON body pydantic_core parses, json.loads taking what it refuses."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = pydantic_core.from_json(body)
            except ValueError:
                self._json = json.loads(body)  # the same document, or the JSONDecodeError FastAPI expects
        return self._json


class BatchRoute(APIRoute):
    """The batch route: FastAPI's, handed a JSONRequest."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handle(JSONRequest(request.scope, request.receive))

        return route


def batch_answer(
    model_version: str,
    variant: str,
    request_ids: Sequence[str],
    scores: Sequence[float],
    decisions: Sequence[bool],
) -> bytes:
    """The 200's body: the bytes JSONResponse writes for {"model_version", "variant",
    "predictions": [{"request_id", "model_version", "score", "decision", "variant"}, ...]}
    (scores as Python floats), a row at a time from its constant parts rather than through
    json.dumps' generic encoder."""
    if not all(map(math.isfinite, scores)):
        raise ValueError("Out of range float values are not JSON compliant")  # as JSONResponse refuses
    version, name = encode_basestring(model_version), encode_basestring(variant)
    middle = f',"model_version":{version},"score":'
    ends = {True: f',"decision":true,"variant":{name}}}', False: f',"decision":false,"variant":{name}}}'}
    rows = ",".join(
        [
            f'{{"request_id":{rid}{middle}{score}{ends[decision]}'
            for rid, score, decision in zip(
                map(encode_basestring, request_ids), map(repr, scores), map(bool, decisions), strict=True
            )
        ]
    )
    return f'{{"model_version":{version},"variant":{name},"predictions":[{rows}]}}'.encode()


def _accepts_none(annotation: Any) -> bool:
    try:
        TypeAdapter(annotation).validate_python(None)
    except ValidationError:
        return False
    return True
