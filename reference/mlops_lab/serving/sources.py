"""Where the model server reads a version from without MLflow: the alias and the serving spec.

    python -c "import mlops_lab.serving.sources as s; help(s.scorer_from_spec)"

`scorer_from_spec` is the holder's fast path: a version trained with a serving spec
(`mlops_lab.lifecycle.scorer`, logged by `mlops_lab.lifecycle.train`) is served from the spec when
the registry is an MLflow server. Over its REST API (`mlops_lab.lifecycle.rest_registry`) the
server reads the spec and the bytes of the model file; the scorer is built with numpy and must
reproduce the pipeline's recorded scores, and the model file must still have the digest the spec
recorded (a damaged artifact fails the load, as it does on the pipeline path, and says why).
Anything else returns None and the holder loads the pipeline through MLflow.

`alias_reader` is what the holder's polls ask: the MLflow server over REST, or MLflow itself for
a serverless registry (imported then, not before).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Protocol

import httpx

from mlops_lab.lifecycle.aliases import resolve_tracking_uri
from mlops_lab.lifecycle.rest_registry import RegistryError, RestRegistry, speaks_rest
from mlops_lab.lifecycle.scorer import SPEC_TAG, LinearScorer, SpecError, check_parity, from_spec
from mlops_lab.settings import Settings

log = logging.getLogger(__name__)


class ArtifactMismatch(Exception):
    """The version's model file is not the one its spec was made from: the load fails (the
    holder keeps the old model), as loading the damaged file through MLflow would."""


def scorer_from_spec(settings: Settings, mv: Any) -> LinearScorer | None:
    """The scorer of version `mv` (.version, .run_id, .tags) built from its serving spec, checked
    against the recorded scores, or None (with the reason logged) when it has no usable one: no
    spec tag, a serverless registry, the torch flavour, an unknown, malformed or missing spec, a
    parity failure. Raises ArtifactMismatch when the model file's SHA-256 is not the one the spec
    recorded, and httpx.TransportError when the registry stops answering mid-way: failed loads,
    not reasons to try MLflow against the same registry."""
    tags = dict(mv.tags or {})
    uri, spec_uri = resolve_tracking_uri(settings), tags.get(SPEC_TAG)
    if spec_uri is None or not speaks_rest(uri) or tags.get("model_flavour", "sklearn") != "sklearn":
        return None
    try:
        with RestRegistry(uri) as rest:
            spec = json.loads(rest.artifact_bytes(spec_uri))
            if spec.get("run_id") != mv.run_id:
                raise SpecError(f"spec of run {spec.get('run_id')}, version of run {mv.run_id}")
            scorer = from_spec(spec)
            check_parity(scorer, spec)  # also the warm-up: every row scored both ways
            model_file = spec.get("model_file") or {}
            digest = hashlib.sha256(rest.artifact_bytes(str(model_file.get("uri")))).hexdigest()
    except httpx.TransportError:
        raise
    except (RegistryError, SpecError, ValueError, AttributeError, TypeError) as exc:
        log.warning(
            "v%s: serving spec not used (%s: %s); loading the pipeline", mv.version, type(exc).__name__, exc
        )
        return None
    if digest != model_file.get("sha256"):
        raise ArtifactMismatch(
            f"v{mv.version}: model file {model_file.get('uri')} is not the one training logged "
            "(its SHA-256 differs): damaged or replaced"
        )
    return scorer


class AliasReader(Protocol):
    """Where an alias points: `RestRegistry` for an MLflow server, `MlflowAliases` otherwise."""

    def version_by_alias(self, name: str, alias: str) -> Any: ...
    def close(self) -> None: ...


class MlflowAliases:
    """A serverless registry's aliases, through MLflow (imported when one is built)."""

    def __init__(self, settings: Settings) -> None:
        from mlops_lab.lifecycle.tracking import client_for

        self._client = client_for(settings)

    def version_by_alias(self, name: str, alias: str) -> Any:
        from mlops_lab.lifecycle.tracking import version_by_alias

        return version_by_alias(self._client, name, alias)

    def close(self) -> None:
        """Nothing to release: MLflow's client holds no connection between calls."""


def alias_reader(settings: Settings) -> AliasReader:
    """What the holder polls: the MLflow server over REST, a serverless registry through MLflow."""
    uri = resolve_tracking_uri(settings)
    return RestRegistry(uri, timeout_s=5.0) if speaks_rest(uri) else MlflowAliases(settings)
