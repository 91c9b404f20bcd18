"""The batch body validated as columns (serving/columns.py) against the pydantic model it replaces.

Two FastAPI apps side by side, one parsing the body into schemas.BatchRequest (rows of the
single-row model, as the batch route did) and one into columns.BatchRequest: every batch gets the
same status and the same answer from both (the 422's field errors, locations and order; the
columns an accepted batch turns into), and a property test draws batches at random.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from starlette.responses import JSONResponse

from mlops_lab.data.schema import SCHEMA
from mlops_lab.serving import columns, handlers, schemas
from mlops_lab.serving.columns import BatchRoute, Columns, JSONRequest, batch_answer, fast_columns

from ..conftest import GOOD


def comparable(cols: Columns) -> dict[str, Any]:
    """Columns as JSON can carry them, each value with its type (1 and 1.0 must not compare equal)."""
    typed = {k: [[type(v).__name__, v] for v in vs] for k, vs in cols.features.items()}
    return {"features": typed, "request_ids": cols.request_ids}


def batch_app(model: type[schemas.BatchRequest]) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Any, exc: RequestValidationError) -> Any:
        return handlers.validation_error(exc)

    async def route(body: Any) -> Any:
        cols = body.columns() if isinstance(body, columns.BatchRequest) else Columns.of_rows(body.rows)
        return JSONResponse(comparable(cols))

    route.__annotations__["body"] = model
    new = model is columns.BatchRequest  # as the server registers it: its JSON read by pydantic_core
    app.router.add_api_route(
        "/batch", route, methods=["POST"], route_class_override=BatchRoute if new else None
    )
    return app


@pytest.fixture(scope="module")
def old_and_new() -> tuple[TestClient, TestClient]:
    return TestClient(batch_app(schemas.BatchRequest)), TestClient(batch_app(columns.BatchRequest))


def row(**changes: Any) -> dict[str, Any]:
    out = {**GOOD, **changes}
    return {k: v for k, v in out.items() if v is not DROP}


DROP = object()
BAD_BATCHES: list[tuple[str, Any]] = [
    ("missing field", {"rows": [row(), row(amount=DROP)]}),
    ("wrong type", {"rows": [row(amount="lots")]}),
    ("negative amount", {"rows": [row(amount=-5)]}),
    ("amount over its maximum", {"rows": [row(amount=1_000_000.5)]}),
    ("hour out of range", {"rows": [row(hour=24)]}),
    ("fractional hour", {"rows": [row(hour=2.5)]}),
    ("huge integer", {"rows": [row(hour=10**30), row(amount=10**400)]}),
    ("boolean in a string field", {"rows": [row(channel=True)]}),
    ("unknown category", {"rows": [row(channel="carrier_pigeon")]}),
    ("bad country code", {"rows": [row(country="United States")]}),
    ("lower-case country", {"rows": [row(country="us")]}),
    ("country with a newline", {"rows": [row(country="US\n")]}),
    ("renamed column", {"rows": [row(amount=DROP, amount_usd=1.0)]}),
    ("unknown field only", {"rows": [row(colour="red")]}),
    ("null in a required field", {"rows": [row(merchant_category=None)]}),
    ("bad request id", {"rows": [row(request_id="x" * 65)]}),
    ("request id with a space", {"rows": [row(request_id="a b")]}),
    ("request id not text", {"rows": [row(request_id=7)]}),
    ("card id too long", {"rows": [row(card_id="4" * 65)]}),
    ("a list in a field", {"rows": [row(device_os=["ios"])]}),
    ("an object in a field", {"rows": [row(country={"code": "US"})]}),
    ("errors in several rows, several fields", {"rows": [row(hour=-1), row(), row(amount="x", channel="?")]}),
    ("a row that is not an object", {"rows": [row(), [1, 2], "row", None]}),
    ("no rows", {"rows": []}),
    ("rows not a list", {"rows": row()}),
    ("no rows key", {"row": [row()]}),
    ("an unknown key beside rows", {"rows": [row()], "more": 1}),
    ("not an object", [row()]),
    ("null", None),
    ("a number", 3),
]
ACCEPTED: list[tuple[str, Any]] = [
    ("good rows", {"rows": [row(), row(amount=5, hour=0, request_id="r-1", card_id="c" * 64)]}),
    ("nullable features null", {"rows": [row(distance_from_home_km=None, account_age_days=None)]}),
    ("an unseen country", {"rows": [row(country="ZZ")]}),
    ("optional fields null", {"rows": [row(request_id=None, card_id=None)]}),
    (
        "values the schema converts",
        {"rows": [row(amount="5.5", hour="3", txn_count_24h=2.0, account_age_days=True)]},
    ),
    ("a non-ASCII card id", {"rows": [row(card_id="carte-é")]}),
    ("ids on some rows only", {"rows": [row(request_id="a"), row(), row(card_id="7")]}),
]


@pytest.mark.parametrize(
    ("case", "payload"), BAD_BATCHES + ACCEPTED, ids=[c for c, _ in BAD_BATCHES + ACCEPTED]
)
def test_a_batch_gets_the_same_answer_from_both_paths(
    old_and_new: tuple[TestClient, TestClient], case: str, payload: Any
) -> None:
    old, new = (c.post("/batch", json=payload) for c in old_and_new)
    assert (new.status_code, new.json()) == (old.status_code, old.json()), case
    expected = 200 if (case, payload) in ACCEPTED else 422
    assert new.status_code == expected, new.text


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        ('{"rows": [{"amount": NaN}]}', {"content-type": "application/json"}),
        (json.dumps({"rows": [GOOD]}).replace('"amount": 182.5', '"amount": Infinity'), None),
        (json.dumps({"rows": [GOOD]}).replace('"hour": 2', '"hour": 2, "hour": 99'), None),  # last wins
        ("{", {"content-type": "application/json"}),
        ("", {"content-type": "application/json"}),
        (json.dumps({"rows": [GOOD]}), {"content-type": "text/plain"}),
        (json.dumps({"rows": [GOOD]}), {"content-type": ""}),
        (json.dumps({"rows": [GOOD]}), {"content-type": "application/vnd.batch+json"}),
    ],
)
def test_what_fastapi_reads_is_answered_the_same(
    old_and_new: tuple[TestClient, TestClient], content: str, headers: dict[str, str] | None
) -> None:
    old, new = (c.post("/batch", content=content, headers=headers) for c in old_and_new)
    assert (new.status_code, new.json()) == (old.status_code, old.json())


def parsed(body: bytes) -> tuple[str, str]:
    """What JSONRequest.json() makes of a body: ("ok", repr of the value) or ("error", its type)."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    request = JSONRequest({"type": "http", "method": "POST", "headers": []}, receive)
    try:
        return "ok", repr(asyncio.run(request.json()))
    except Exception as exc:
        return "error", type(exc).__name__


def loaded(body: bytes) -> tuple[str, str]:
    """What json.loads (Starlette's Request.json) makes of it."""
    try:
        return "ok", repr(json.loads(body))
    except Exception as exc:
        return "error", type(exc).__name__


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "a": 2}',
        b"[NaN, Infinity, -Infinity, -0.0, -0, 1e400, -1e400, 5e-324, 1.0000000000000002]",
        b"123456789012345678901234567890",
        b'"\\ud800"',  # a lone surrogate: pydantic_core refuses, json.loads takes it
        b'"\\udc00x"',
        b'"a\x01b"',
        b'"\xff"',
        b'\xef\xbb\xbf{"a": 1}',  # a BOM
        b"[" * 300 + b"]" * 300,  # deeper than pydantic_core goes
        b'{"a": 1} x',
        b"[1,]",
        b"01",
        b'"\\u00e9 \\/"',
        '{"é": "ü"}'.encode(),
        '{"é": "ü"}'.encode("utf-16"),
        b"",
    ],
)
def test_the_batch_route_reads_json_as_json_loads_does(body: bytes) -> None:
    assert parsed(body) == loaded(body)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(JSON, st.booleans())
@settings(max_examples=300, deadline=None, database=None)
def test_any_json_document_is_read_as_json_loads_reads_it(document: Any, ascii_only: bool) -> None:
    body = json.dumps(document, ensure_ascii=ascii_only).encode()
    assert parsed(body) == loaded(body)


@pytest.mark.parametrize(("case", "payload"), BAD_BATCHES, ids=[c for c, _ in BAD_BATCHES])
def test_the_validation_errors_are_pydantics_own(case: str, payload: Any) -> None:
    """Every field of every error (input and ctx included, which a learner's handler may show)."""
    errors = []
    for model in (schemas.BatchRequest, columns.BatchRequest):
        with pytest.raises(ValidationError) as caught:
            TypeAdapter(model).validate_python(payload, from_attributes=True)
        errors.append(caught.value.errors())
    assert repr(errors[1]) == repr(errors[0]), case


def test_a_plain_batch_takes_the_fast_path() -> None:
    """No model per row for the batches clients send: the speed must not quietly go."""
    assert columns.plan() is not None
    plain = {"rows": [row(), row(request_id="r-2", card_id="4417"), row(distance_from_home_km=None)]}
    got = fast_columns(json.loads(json.dumps(plain)))
    assert got is not None and got.request_ids == [None, "r-2", None]
    assert got == Columns.of_rows(schemas.BatchRequest.model_validate(plain).rows)
    converted = fast_columns({"rows": [row(amount="5", hour=3.0)]})  # each field's own rule converts
    assert converted is not None and (converted.features["amount"], converted.features["hour"]) == (
        [5.0],
        [3],
    )
    assert type(converted.features["hour"][0]) is int
    assert fast_columns({"rows": [row(amount="lots")]}) is None  # the model words the 422


VALUES: dict[str, Any] = {
    "number": st.one_of(
        st.integers(-5, 40_000),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0, 23, 24, -0.0, 1e6, 1e6 + 1, 2.0, "5", "x", True, None, 10**20]),
    ),
    "text": st.one_of(
        st.sampled_from(["US", "ZZ", "us", "USA", "online", "ios", "grocery", "a b", "", "x" * 65, None, 1]),
        st.text(max_size=8),
    ),
}
KIND = {
    name: "number" if name in SCHEMA.numeric else "text"
    for name in [*schemas.FEATURE_NAMES, "request_id", "card_id"]
}


@st.composite
def batches(draw: st.DrawFn) -> dict[str, Any]:
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        r: dict[str, Any] = dict(GOOD)
        for name in draw(st.sets(st.sampled_from(sorted(KIND)), max_size=3)):
            r[name] = draw(VALUES[KIND[name]])
        if draw(st.booleans()) and draw(st.booleans()):
            r.pop(draw(st.sampled_from(sorted(r))))
        if draw(st.integers(0, 9)) == 0:
            r["extra"] = 1
        rows.append(r)
    return {"rows": rows}


@given(batches())
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_random_batches_are_validated_alike(batch: dict[str, Any]) -> None:
    outcomes = []
    for model in (schemas.BatchRequest, columns.BatchRequest):
        try:
            body = TypeAdapter(model).validate_python(batch)
        except ValidationError as exc:
            outcomes.append(("422", repr(exc.errors())))
            continue
        cols = body.columns() if isinstance(body, columns.BatchRequest) else Columns.of_rows(body.rows)
        outcomes.append(("ok", repr(comparable(cols))))
    assert outcomes[1] == outcomes[0]


@pytest.mark.parametrize("ids", [["a", "b"], ['é"\\\n', "0" * 32], [f"{i:032x}" for i in range(50)]])
def test_the_answer_is_byte_for_byte_jsonresponses(ids: list[str]) -> None:
    scores = [i / (len(ids) + 1) + 1e-12 for i in range(len(ids))]
    decisions = [s >= 0.5 for s in scores]
    predictions = [
        {"request_id": r, "model_version": "12", "score": s, "decision": d, "variant": "canary"}
        for r, s, d in zip(ids, scores, decisions, strict=True)
    ]
    expected = JSONResponse({"model_version": "12", "variant": "canary", "predictions": predictions}).body
    assert batch_answer("12", "canary", ids, scores, decisions) == expected
    with pytest.raises(ValueError, match="not JSON compliant"):
        batch_answer("12", "canary", ids[:1], [math.nan], [False])
