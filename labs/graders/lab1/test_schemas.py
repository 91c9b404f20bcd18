"""Grader of lab 1 / request-schema (exercises/lab1/schemas.py): validation at the edge."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import pytest
from pydantic import ValidationError

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


def refused_fields(impl: ModuleType, **changes: Any) -> list[str]:
    """The fields a ValidationError names for VALID with `changes` applied ([] when accepted)."""
    body = {**VALID, **changes}
    body = {k: v for k, v in body.items() if v is not ...}
    try:
        impl.PredictRequest.model_validate(body)
    except ValidationError as exc:
        return [str(e["loc"][0]) if e["loc"] else "" for e in exc.errors()]
    return []


def expect_refused(impl: ModuleType, field: str, **changes: Any) -> None:
    got = refused_fields(impl, **changes)
    shown = ", ".join(f"{k}={v!r}" for k, v in changes.items())
    assert field in got, f"expected a validation error on '{field}' for {shown}; " + (
        f"got errors on {got}" if got else "the request was accepted"
    )


def test_example(impl: ModuleType) -> None:
    """accepts a valid request and keeps every feature"""
    req = impl.PredictRequest.model_validate(VALID)
    assert req.features() == VALID, f"expected the features back unchanged, got {req.features()}"


def test_negative_amount(impl: ModuleType) -> None:
    """refuses an amount below the schema's minimum"""
    expect_refused(impl, "amount", amount=-5.0)


def test_huge_amount(impl: ModuleType) -> None:
    """refuses an amount above the schema's maximum"""
    expect_refused(impl, "amount", amount=5e9)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_not_finite(impl: ModuleType, value: float) -> None:
    """refuses NaN and infinity (they would poison the model and the JSON answer)"""
    expect_refused(impl, "distance_from_home_km", distance_from_home_km=value)


def test_integer_feature(impl: ModuleType) -> None:
    """refuses a fractional hour and an hour of 24"""
    expect_refused(impl, "hour", hour=2.5)
    expect_refused(impl, "hour", hour=24)


def test_closed_vocabulary(impl: ModuleType) -> None:
    """refuses a channel outside the closed vocabulary"""
    expect_refused(impl, "channel", channel="fax")


def test_open_vocabulary_pattern(impl: ModuleType) -> None:
    """accepts a new two-letter country, refuses one that is not two capital letters"""
    assert refused_fields(impl, country="JP") == [], "expected a new country code like 'JP' to be accepted"
    expect_refused(impl, "country", country="usa")


def test_nullable(impl: ModuleType) -> None:
    """accepts null only where the schema says the feature is nullable"""
    assert refused_fields(impl, account_age_days=None) == [], "expected account_age_days=None to be accepted"
    expect_refused(impl, "amount", amount=None)


def test_unknown_field(impl: ModuleType) -> None:
    """refuses unknown fields (a renamed upstream column)"""
    expect_refused(impl, "amount_usd", amount_usd=10.0)


def test_missing_field(impl: ModuleType) -> None:
    """requires every feature"""
    expect_refused(impl, "device_os", device_os=...)
