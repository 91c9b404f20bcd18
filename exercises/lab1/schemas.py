"""Lab 1, exercise `request-schema`: the model server's request model.

    make lab-1        grade it          make hint-1      one more hint
    Reference: reference/mlops_lab/serving/schemas.py    Docs: docs/labs/lab-1-serving.md

Every request is validated before it reaches the model. The rules are already written down in
`mlops_lab.data.schema.SCHEMA` (one `Feature` per column: kind, minimum, maximum, integer,
categories, closed, pattern, nullable); turn them into pydantic fields, so that bad input is a
422 with field errors (FastAPI does that from a ValidationError) and never a 500 or a silent
default. Done when `make lab-1` shows every request-schema check passing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from mlops_lab.data.schema import SCHEMA, Feature

FEATURE_NAMES = tuple(SCHEMA.names)
REQUEST_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


def _field(feat: Feature) -> tuple[Any, Any]:
    """One feature's (type, Field(...)) pair for pydantic's create_model."""
    # TODO(lab-1): derive the type and the constraints from `feat`:
    #   numeric -> int when feat.integer else float, within [feat.minimum, feat.maximum], finite only
    #   categorical with feat.closed -> only the values in feat.categories
    #   categorical otherwise -> a str matching feat.pattern
    #   feat.nullable -> None is allowed too
    typ: Any = Any
    info = Field(..., description=feat.description)
    return typ, info


class _Base(BaseModel):
    """The fields every request has besides the features."""

    # TODO(lab-1): unknown fields must be refused, not ignored (a renamed upstream column).
    model_config = ConfigDict(frozen=True)

    request_id: str | None = Field(None, pattern=REQUEST_ID_PATTERN, description="idempotency/trace id")
    card_id: str | None = Field(None, max_length=64, description="entity id (sticky routing); not a feature")

    def features(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FEATURE_NAMES}


PredictRequest: type[_Base] = create_model(
    "PredictRequest", __base__=_Base, **{f.name: _field(f) for f in SCHEMA.features}
)
