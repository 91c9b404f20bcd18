"""A solution of lab 1's `request-schema` (exercises/lab1/schemas.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab1/request-schema.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, create_model

from mlops_lab.data.schema import SCHEMA, Feature
from mlops_lab.serving.schemas import EXAMPLE_REQUEST, FEATURE_NAMES, RequestFields


def feature_field(feat: Feature) -> tuple[Any, Any]:
    """One feature's (type, Field(...)) pair for pydantic's create_model."""
    if feat.kind == "numeric":
        # int refuses 2.5 (and accepts 2.0, an exact integer); float would let a fraction through.
        typ: Any = int if feat.integer else float
        # ge/le are inclusive: the bounds themselves are valid. allow_inf_nan=False because a range
        # alone is not enough: NaN fails every comparison, but with no maximum inf passes `ge`.
        info = Field(..., ge=feat.minimum, le=feat.maximum, allow_inf_nan=False, description=feat.description)
    elif feat.closed:
        # A closed vocabulary is a client error outside its categories: Literal refuses the rest.
        typ = Literal[feat.categories]
        info = Field(..., description=feat.description)
    else:
        # An open vocabulary (country): a code the model never saw is scored as "unknown", so it
        # must be accepted (refusing it would turn a new market into an outage); the pattern
        # still refuses garbage.
        typ = str
        info = Field(..., pattern=feat.pattern, description=feat.description)
    if feat.nullable:
        # Nullable means null is a value (the model imputes it), not that the field may be left
        # out: the `...` above still makes it required.
        typ = typ | None
    return typ, info


def request_model() -> type[RequestFields]:
    """The body of POST /v1/predict: RequestFields plus one field per feature of SCHEMA."""
    # Every field comes from SCHEMA: adding a feature there adds it here, with its rules.
    fields: dict[str, Any] = {name: feature_field(SCHEMA[name]) for name in FEATURE_NAMES}
    # extra="forbid": when upstream renames "amount" to "amount_usd", the first request gets a 422
    # naming both fields, instead of a silently ignored column (and a missing-amount puzzle).
    config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_REQUEST]})
    # __base__=RequestFields: the app calls .features() and reads .request_id on what it validated.
    return create_model("PredictRequest", __base__=RequestFields, __config__=config, **fields)
