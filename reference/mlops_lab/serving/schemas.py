"""Request and response models of the model server, derived from the data schema.

    python -c "from mlops_lab.serving.schemas import PredictRequest; import json; \
print(json.dumps(PredictRequest.model_json_schema(), indent=1))"

Validation rules come from `mlops_lab.data.schema.SCHEMA`: ranges for numbers (finite only,
so NaN and inf are 422s), closed vocabularies as enums, open ones (country) by pattern.
Unknown fields are refused, so a renamed upstream column is a clear 422, not a silent default.
`feature_field` turns one feature's rules into a pydantic field and `request_model` builds the
request model from them; lab 1's `request-schema` exercise writes both (exercises/lab1/schemas.py).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.config import JsonDict

from mlops_lab.data.schema import SCHEMA, Feature

FEATURE_NAMES = tuple(SCHEMA.names)
REQUEST_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


# --8<-- [start:field]
def feature_field(feat: Feature) -> tuple[Any, Any]:
    """One feature's (type, Field(...)) pair for pydantic's create_model, from its rules in SCHEMA."""
    if feat.kind == "numeric":
        typ: Any = int if feat.integer else float
        info = Field(..., ge=feat.minimum, le=feat.maximum, allow_inf_nan=False, description=feat.description)
    elif feat.closed:
        typ = Literal[feat.categories]
        info = Field(..., description=feat.description)
    else:
        typ = str
        info = Field(..., pattern=feat.pattern, description=feat.description)
    if feat.nullable:
        typ = typ | None
    return typ, info


# --8<-- [end:field]


class RequestFields(BaseModel):
    """What every request has besides the features; `request_model()` adds one field per feature."""

    model_config = ConfigDict(frozen=True)

    request_id: str | None = Field(None, pattern=REQUEST_ID_PATTERN, description="idempotency/trace id")
    card_id: str | None = Field(None, max_length=64, description="entity id (sticky routing); not a feature")

    def features(self) -> dict[str, Any]:
        """The model's input: every feature of SCHEMA, in schema order."""
        return {name: getattr(self, name) for name in FEATURE_NAMES}


EXAMPLE_REQUEST: JsonDict = {  # shown in the OpenAPI docs; the tests send it too
    "amount": 182.5,
    "merchant_category": "electronics",
    "channel": "online",
    "country": "US",
    "hour": 2,
    "account_age_days": 41,
    "txn_count_24h": 6,
    "distance_from_home_km": 12.4,
    "device_os": "android",
    "card_id": "4417",
}


# --8<-- [start:request_model]
@cache  # one class: the app, the batch model and the OpenAPI schema all use the same
def request_model() -> type[RequestFields]:
    """The body of POST /v1/predict: RequestFields plus one validated field per feature of SCHEMA.
    Unknown fields are refused: a renamed upstream column is a 422, not a silent default."""
    fields: dict[str, Any] = {feat.name: feature_field(feat) for feat in SCHEMA.features}
    config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_REQUEST]})
    return create_model("PredictRequest", __base__=RequestFields, __config__=config, **fields)


# --8<-- [end:request_model]

if TYPE_CHECKING:
    # mypy cannot see the fields create_model adds: it checks a request as the RequestFields it derives from.
    PredictRequest = RequestFields
else:
    PredictRequest = request_model()


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[PredictRequest] = Field(..., min_length=1)


class PredictResponse(BaseModel):
    request_id: str
    model_version: str
    score: float = Field(..., ge=0.0, le=1.0)
    decision: bool
    variant: str


class BatchResponse(BaseModel):
    model_version: str
    variant: str
    predictions: list[PredictResponse]


class ModelInfo(BaseModel):
    name: str
    alias: str
    version: str | None
    run_id: str | None
    threshold: float | None
    loaded_at: str | None
    scorer: str | None
    flavour: str | None = Field(None, description="model flavour: sklearn or torch (docs/gpu.md)")
    device: str | None = Field(None, description="where the model scores: cpu or cuda")
    loaded_from_cache: bool | None = Field(
        None, description="whether the served model came from the holder's LRU cache (a rollback)"
    )
    load_s: float | None = Field(None, description="seconds its load took, the alias's resolution included")
    built_from: str | None = Field(
        None,
        description="what the scorer was built from: spec (the version's serving spec, checked against "
        "the pipeline's recorded scores) or pipeline (the model artifact, loaded through MLflow)",
    )
    ready: bool
    reason: str | None
    load_failures: int
    last_error: str | None
