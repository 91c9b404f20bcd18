"""Lab 1, exercise `request-schema`: the model server's request model.

    make lab-1        grade it          make hint-1      one more hint
    Reference: reference/mlops_lab/serving/schemas.py    Docs: docs/labs/lab-1-serving.md
    Run yours: mlops-lab serve --impl exercises           (the server then validates with yours)

Every request is validated before it reaches the model; the app validates the body of
POST /v1/predict (and each row of /v1/predict/batch) with the class `request_model()` returns,
and FastAPI turns a ValidationError into a 422. The rules are already written down once, in
`mlops_lab.data.schema.SCHEMA`: one `Feature` per column (kind, minimum, maximum, integer,
categories, closed, pattern, nullable, description). `RequestFields` (written) holds what every
request has besides the features: request_id, card_id, and features() for the model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, create_model

from mlops_lab.data.schema import SCHEMA, Feature
from mlops_lab.serving.schemas import EXAMPLE_REQUEST, FEATURE_NAMES, RequestFields


def feature_field(feat: Feature) -> tuple[Any, Any]:
    """One feature's (type, Field(...)) pair for pydantic's create_model."""
    # TODO(lab-1): turn one Feature's rules into a pydantic type and field.
    #  Contract: a value outside [minimum, maximum], a fraction for an integer feature, a value
    #  outside a closed vocabulary, a string that does not match an open vocabulary's pattern,
    #  or a null where the feature is not nullable is refused; a missing feature is refused.
    #  NaN and infinity are refused for every number, even one without bounds.
    #  Think: why must an open vocabulary (country) accept a code the model never saw?
    raise NotImplementedError("TODO(lab-1): one feature's field rules")


def request_model() -> type[RequestFields]:
    """The body of POST /v1/predict: RequestFields plus one field per feature of SCHEMA."""
    # TODO(lab-1): build the request model from feature_field(...) of every feature in SCHEMA.
    #  Contract: it is a RequestFields (the app calls .features() and reads .request_id); every
    #  feature is validated by its rules; a field the model does not know is refused.
    #  Think: an upstream team renames "amount" to "amount_usd". What should the first request
    #  after their deploy get back, and what happens if unknown fields are ignored instead?
    raise NotImplementedError("TODO(lab-1): the request model")
