"""A small client of the MLflow server's REST API: aliases, versions, artifacts. httpx, no MLflow.

    python -c "from mlops_lab.lifecycle.rest_registry import RestRegistry; \
print(RestRegistry('http://127.0.0.1:5000').version_by_alias('fraud-detector', 'champion'))"

What the model server needs of the registry on its hot start: where an alias points (GET
/api/2.0/mlflow/registered-models/alias), one version (GET /api/2.0/mlflow/model-versions/get) and
the bytes of an artifact the server proxies (GET /api/2.0/mlflow-artifacts/artifacts/<path>, for
`mlflow-artifacts:/<path>` URIs). Importing MLflow costs the server seconds and a hundred MiB;
these three calls are all it needs when the version carries a serving spec
(`mlops_lab.lifecycle.scorer`). Anything else (a serverless registry, a version without a spec)
still goes through MLflow itself (`mlops_lab.serving.holder`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from mlops_lab.lifecycle.aliases import is_database_uri

# MLflow's answer when the model, version or alias does not exist (404), or a name is malformed.
ABSENT = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


class RegistryError(Exception):
    """The registry answered with an error; `error_code` is MLflow's (e.g. RESOURCE_DOES_NOT_EXIST)."""

    def __init__(self, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


@dataclass(frozen=True)
class VersionRef:
    """What the server reads of a model version: like MLflow's ModelVersion (.version, .run_id,
    .tags as a dict), without MLflow."""

    name: str
    version: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


def speaks_rest(tracking_uri: str) -> bool:
    """True when `tracking_uri` is an MLflow server this client can talk to (http or https)."""
    return not is_database_uri(tracking_uri) and urlsplit(tracking_uri).scheme in ("http", "https")


class RestRegistry:
    """The registry at `base_url` (an MLflow server). One keep-alive connection; not shared
    across threads without a lock (the holder loads one version at a time)."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        # The credentials MLflow's own client reads, so a server behind auth is asked the same way.
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user, password = (
            os.environ.get("MLFLOW_TRACKING_USERNAME"),
            os.environ.get("MLFLOW_TRACKING_PASSWORD"),
        )
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_s,
            # Plain http never uses TLS: skip building a verifying context (~30 ms per client).
            verify=urlsplit(self.base_url).scheme == "https",
            headers={"Authorization": f"Bearer {token}"} if token else None,
            auth=httpx.BasicAuth(user, password) if user and password else None,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RestRegistry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def version_by_alias(self, name: str, alias: str) -> VersionRef | None:
        """The version behind `alias`, or None when the alias (or the model) does not exist."""
        body = self._get("/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": alias})
        return None if body is None else _version(body["model_version"])

    def get_version(self, name: str, version: str) -> VersionRef | None:
        """Version `version` of `name`, or None when the registry does not hold it."""
        body = self._get("/api/2.0/mlflow/model-versions/get", {"name": name, "version": version})
        return None if body is None else _version(body["model_version"])

    def artifact_bytes(self, uri: str) -> bytes:
        """The bytes of a proxied artifact, `mlflow-artifacts:/<path>` (served by this server)."""
        parts = urlsplit(uri)
        if parts.scheme != "mlflow-artifacts" or parts.netloc:
            raise RegistryError(f"not an artifact this server proxies: {uri}")
        r = self._http.get("/api/2.0/mlflow-artifacts/artifacts/" + quote(parts.path.lstrip("/")))
        if r.status_code != 200:
            raise RegistryError(f"GET {uri}: HTTP {r.status_code}: {_message(r)}", _code(r))
        return r.content

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any] | None:
        r = self._http.get(path, params=params)
        if r.status_code == 200:
            body: dict[str, Any] = r.json()
            return body
        if _code(r) in ABSENT:
            return None
        raise RegistryError(
            f"MLflow registry at {self.base_url}: HTTP {r.status_code}: {_message(r)}", _code(r)
        )


def _version(mv: dict[str, Any]) -> VersionRef:
    return VersionRef(
        name=str(mv["name"]),
        version=str(mv["version"]),
        run_id=mv.get("run_id") or None,
        tags={t["key"]: t.get("value", "") for t in mv.get("tags", [])},
        aliases=tuple(mv.get("aliases", [])),
    )


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _code(r: httpx.Response) -> str | None:
    code = _json(r).get("error_code")
    return str(code) if code else None


def _message(r: httpx.Response) -> str:
    return str(_json(r).get("message") or r.text[:200] or r.reason_phrase)
