"""Request and response models of the model server, derived from the data schema.

    python -c "from mlops_lab.serving.schemas import PredictRequest; import json; \
print(json.dumps(PredictRequest.model_json_schema(), indent=1))"

Validation rules come from `mlops_lab.data.schema.SCHEMA`: ranges for numbers (finite only,
so NaN and inf are 422s), closed vocabularies as enums, open ones (country) by pattern.
Unknown fields are refused, so a renamed upstream column is a clear 422, not a silent default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.config import JsonDict

from mlops_lab.data.schema import SCHEMA, Feature

FEATURE_NAMES = tuple(SCHEMA.names)
REQUEST_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


# --8<-- [start:field]
def _field(feat: Feature) -> tuple[Any, Any]:
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


class _Base(BaseModel):
    """The fields every request has besides the features; PredictRequest adds one field per feature."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str | None = Field(None, pattern=REQUEST_ID_PATTERN, description="idempotency/trace id")
    card_id: str | None = Field(None, max_length=64, description="entity id (sticky routing); not a feature")

    def features(self) -> dict[str, Any]:
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

_FEATURE_FIELDS: dict[str, Any] = {f.name: _field(f) for f in SCHEMA.features}
_PredictRequest: type[_Base] = create_model("PredictRequest", __base__=_Base, **_FEATURE_FIELDS)
_PredictRequest.model_config["json_schema_extra"] = {"examples": [EXAMPLE_REQUEST]}
_PredictRequest.model_rebuild(force=True)

if TYPE_CHECKING:
    # mypy cannot see the fields create_model adds: it checks a request as the _Base it derives from.
    PredictRequest = _Base
else:
    PredictRequest = _PredictRequest


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
    ready: bool
    reason: str | None
    load_failures: int
    last_error: str | None
