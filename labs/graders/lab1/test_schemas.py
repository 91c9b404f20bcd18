"""Grader of lab 1 / request-schema (exercises/lab1/schemas.py): validation at the edge.

`feature_field` is checked one feature at a time (a one-field model built from it), and
`request_model()` as the app uses it: the class the body of POST /v1/predict is validated with.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError, create_model

from mlops_lab.data.schema import SCHEMA, Feature
from mlops_lab.serving.schemas import RequestFields

VALID: dict[str, Any] = {
    "amount": 182.5,
    "merchant_category": "electronics",
    "channel": "online",
    "country": "US",
    "hour": 2,
    "account_age_days": 41,
    "txn_count_24h": 6,
    "distance_from_home_km": 12.4,
    "device_os": "android",
}
UNBOUNDED = Feature("balance", "numeric", "a number with no minimum and no maximum")


def one_field(impl: ModuleType, feat: Feature) -> type[BaseModel]:
    """A model with the single field feature_field(feat) describes."""
    return create_model("OneField", **{feat.name: impl.feature_field(feat)})


def field_refuses(impl: ModuleType, feat: Feature, value: Any) -> bool:
    try:
        one_field(impl, feat).model_validate({feat.name: value})
    except ValidationError:
        return True
    return False


def expect_field(impl: ModuleType, feat: Feature, refused: list[Any], accepted: list[Any]) -> None:
    for value in refused:
        assert field_refuses(impl, feat, value), f"expected {feat.name}={value!r} refused, got it accepted"
    for value in accepted:
        assert not field_refuses(impl, feat, value), (
            f"expected {feat.name}={value!r} accepted, got it refused"
        )


def model_of(impl: ModuleType) -> type[BaseModel]:
    model = impl.request_model()
    assert isinstance(model, type) and issubclass(model, RequestFields), (
        f"expected request_model() to return a subclass of RequestFields, got {model!r}"
    )
    return model


def refused_fields(impl: ModuleType, **changes: Any) -> list[str]:
    """The fields a ValidationError names for VALID with `changes` applied ([] when accepted)."""
    body = {k: v for k, v in {**VALID, **changes}.items() if v is not ...}
    try:
        model_of(impl).model_validate(body)
    except ValidationError as exc:
        return [str(e["loc"][0]) if e["loc"] else "" for e in exc.errors()]
    return []


def expect_refused(impl: ModuleType, field: str, **changes: Any) -> None:
    got = refused_fields(impl, **changes)
    shown = ", ".join(f"{k}={v!r}" for k, v in changes.items())
    assert field in got, f"expected a validation error on '{field}' for {shown}; " + (
        f"got errors on {got}" if got else "got the request accepted"
    )


# ---------------------------------------------------------------- feature_field, one feature at a time
def test_range(impl: ModuleType) -> None:
    """a number below the minimum or above the maximum is refused, the bounds themselves are not"""
    expect_field(impl, SCHEMA["amount"], refused=[-0.01, 1_000_000.01, None], accepted=[0.0, 182.5, 1e6])


def test_not_finite(impl: ModuleType) -> None:
    """NaN and infinity are refused, even for a number without bounds

    A range check alone does not do it: NaN fails every comparison, but infinity passes
    `ge` when there is no maximum. pydantic has a field option for finite numbers only.
    """
    expect_field(impl, UNBOUNDED, refused=[math.nan, math.inf, -math.inf], accepted=[-1e12, 0.0, 1e12])


def test_integer_feature(impl: ModuleType) -> None:
    """an integer feature refuses a fraction and its range still applies"""
    expect_field(impl, SCHEMA["hour"], refused=[2.5, 24, -1, math.nan], accepted=[0, 23, 2.0])


def test_closed_vocabulary(impl: ModuleType) -> None:
    """a closed vocabulary accepts only its categories"""
    feat = SCHEMA["channel"]
    expect_field(impl, feat, refused=["fax", "Online", ""], accepted=list(feat.categories))


def test_open_vocabulary_pattern(impl: ModuleType) -> None:
    """an open vocabulary accepts a new code matching its pattern, refuses one that does not

    The model scores a category it never saw as unknown: refusing it would turn a new market
    into an outage. The pattern still stops garbage.
    """
    expect_field(impl, SCHEMA["country"], refused=["usa", "U", "U1", ""], accepted=["US", "JP"])


def test_nullable(impl: ModuleType) -> None:
    """null is accepted only where the schema says the feature is nullable"""
    expect_field(impl, SCHEMA["account_age_days"], refused=[-1, 1.5], accepted=[None, 41])
    expect_field(impl, SCHEMA["distance_from_home_km"], refused=[math.inf], accepted=[None, 12.4])
    expect_field(impl, SCHEMA["device_os"], refused=[None], accepted=["ios"])


def test_required(impl: ModuleType) -> None:
    """a feature is required: a missing value is refused, not defaulted"""
    for name in ("amount", "account_age_days", "country"):
        try:
            one_field(impl, SCHEMA[name]).model_validate({})
        except ValidationError:
            continue
        pytest.fail(f"expected a missing {name} refused, got it accepted", pytrace=False)


# ---------------------------------------------------------------- request_model, as the app uses it
def test_example(impl: ModuleType) -> None:
    """the request model accepts a valid request and keeps every feature, request_id and card_id"""
    req = model_of(impl).model_validate({**VALID, "request_id": "r-1", "card_id": "4417"})
    assert req.features() == VALID, f"expected the features back unchanged, got {req.features()}"
    assert (req.request_id, req.card_id) == ("r-1", "4417"), (
        f"expected request_id 'r-1' and card_id '4417', got {req.request_id!r} and {req.card_id!r}"
    )


def test_every_feature_validated(impl: ModuleType) -> None:
    """the request model applies each feature's rules"""
    bad = {
        "amount": -5.0,
        "merchant_category": "pets",
        "channel": "fax",
        "country": "usa",
        "hour": 24,
        "account_age_days": 1.5,
        "txn_count_24h": -1,
        "distance_from_home_km": math.nan,
        "device_os": None,
    }
    assert set(bad) == set(SCHEMA.names), "grader out of date with SCHEMA"
    for name, value in bad.items():
        expect_refused(impl, name, **{name: value})


def test_unknown_field(impl: ModuleType) -> None:
    """the request model refuses unknown fields (a renamed upstream column)"""
    renamed = {**VALID, "amount": ..., "amount_usd": 10.0}
    got = refused_fields(impl, **renamed)
    assert "amount_usd" in got, f"expected a validation error on 'amount_usd', got errors on {got}"
    expect_refused(impl, "debug", debug=True)


def test_missing_field(impl: ModuleType) -> None:
    """the request model requires every feature"""
    for name in ("device_os", "distance_from_home_km"):
        expect_refused(impl, name, **{name: ...})
