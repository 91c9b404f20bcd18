"""The router's weights (what share of entities the canary gets, shadow on or off, and why) and
the route of one request.

    python -c "from mlops_lab.canary.weights import Weights; help(Weights)"

Set through the router's admin API (validated here, field errors as FastAPI writes them) and
saved atomically, so a restarted router keeps the split the controller last asked for.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from mlops_lab.data.io import write_json_atomic

log = logging.getLogger("mlops_lab.router")

# The canary's copy of a request is stored under `<request_id>:shadow`: never counted as served,
# and paired with stable's answer of the same request by the judge.
SHADOW_SUFFIX = ":shadow"

# The request header a client may name the request's card in (what the router routes on, sticky,
# without parsing the body; as a service mesh routes on headers). It must equal the body's
# card_id: when the two differ, the header wins. Without it the router reads the body's card_id.
CARD_ID_HEADER = "x-card-id"


def shadow_id(request_id: str) -> str:
    """The id the canary's copy of a request is stored under (request ids are at most 64 chars)."""
    return request_id[: 64 - len(SHADOW_SUFFIX)] + SHADOW_SUFFIX


@dataclass(frozen=True)
class Route:
    """Where one prediction goes: the variant that answers it, and whether the canary also gets
    a copy (shadow mode; the copy's answer never reaches the caller)."""

    variant: Literal["stable", "canary"]
    mirror: bool = False


@dataclass(frozen=True)
class Weights:
    canary_weight: int = 0  # percent of entities sent to the canary
    shadow: bool = False  # mirror every request to the canary (stable still answers)
    updated: float = 0.0
    actor: str = "default"
    reason: str = "no weights saved yet: everything to stable"

    def save(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> Weights:
        """Saved weights, or all-to-stable. An unreadable file also means all-to-stable: unlike
        a lost cooldown, sending everything to the champion is always safe."""
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return cls()
        except (ValueError, TypeError) as err:
            log.error("unreadable router weights %s (%s): sending everything to stable", path, err)
            return cls(reason=f"unreadable weights file: {err}")


def validate_weights(body: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The admin payload, or FastAPI-style field errors."""
    errors: list[dict[str, Any]] = []
    if not isinstance(body, dict):
        return None, [{"loc": ["body"], "msg": "expected a JSON object", "type": "type_error"}]
    weight = body.get("canary_weight")
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        errors.append(
            {"loc": ["body", "canary_weight"], "msg": "an integer from 0 to 100", "type": "value_error"}
        )
    shadow = body.get("shadow", False)
    if not isinstance(shadow, bool):
        errors.append({"loc": ["body", "shadow"], "msg": "true or false", "type": "type_error"})
    for key in ("actor", "reason"):
        if key in body and not isinstance(body[key], str):
            errors.append({"loc": ["body", key], "msg": "a string", "type": "type_error"})
    unknown = set(body) - {"canary_weight", "shadow", "actor", "reason"}
    errors += [
        {"loc": ["body", k], "msg": "unknown field", "type": "extra_forbidden"} for k in sorted(unknown)
    ]
    return (None if errors else body), errors
