"""The model holder's LRU cache in the server: a rollback to a recent version is a swap in memory
(in-process TestClient, real MLflow registry on SQLite)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlops_lab.labs.grading import TinyModel, fit_tiny_model, loaded_model
from mlops_lab.lifecycle.tracking import client_for
from mlops_lab.serving.app import create_app
from mlops_lab.serving.cache import LRUCache
from mlops_lab.serving.holder import CachedLoader, model_bytes
from mlops_lab.settings import Settings

from ..conftest import TOKEN


@pytest.fixture
def two_versions(registry: Settings, tmp_path: Path) -> Iterator[tuple[Any, Settings]]:
    """A model of its own with v1 and v2 (the same artifact), @champion on v1, and settings that
    serve it with a fast poll."""
    client = client_for(registry)
    source = client.get_model_version(registry.model_name, "1")
    name = f"rollback-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source.source, run_id=source.run_id, tags=source.tags)
    client.set_registered_model_alias(name, "champion", "1")
    s = registry.model_copy(
        update={"model_name": name, "reload_poll_s": 0.1, "store_url": f"sqlite:///{tmp_path / 'store.db'}"}
    )
    yield client, s


def serving(c: TestClient, client: Any, s: Settings, version: str) -> dict[str, Any]:
    """Move @champion to `version` and wait until the server serves it; its /v1/model."""
    client.set_registered_model_alias(s.model_name, "champion", version)
    deadline = time.monotonic() + 20
    while (info := c.get("/v1/model").json())["version"] != version and time.monotonic() < deadline:
        time.sleep(0.05)
    assert info["version"] == version, info
    return dict(info)


def test_a_rollback_is_served_from_the_cache(two_versions: tuple[Any, Settings]) -> None:
    client, s = two_versions
    app = create_app(s)
    with TestClient(app) as c:
        assert app.state.holder.wait_ready(30)
        first = serving(c, client, s, "1")
        second = serving(c, client, s, "2")
        back = serving(c, client, s, "1")
        assert (first["loaded_from_cache"], second["loaded_from_cache"], back["loaded_from_cache"]) == (
            False,
            False,
            True,
        )
        assert back["load_s"] < second["load_s"]  # a dict lookup against a download and a warm-up
        text = c.get("/metrics").text
        assert 'mlops_model_load_seconds_count{source="registry",variant="stable"} 2.0' in text
        assert 'mlops_model_load_seconds_count{source="cache",variant="stable"} 1.0' in text
        stats = app.state.holder.loader.cache.stats()
        assert (stats.hits, stats.items, stats.evictions) == (1, 2, 0)


def test_admin_reload_reads_the_served_version_from_the_registry(two_versions: tuple[Any, Settings]) -> None:
    """/admin/reload is a person asking to load again: the served version is not taken from memory."""
    _, s = two_versions
    app = create_app(s)
    with TestClient(app) as c:
        assert app.state.holder.wait_ready(30)
        r = c.post("/admin/reload", headers=TOKEN)
        assert r.status_code == 200 and r.json()["version"] == "1"
        assert c.get("/v1/model").json()["loaded_from_cache"] is False
        assert app.state.holder.loader.cache.stats().hits == 0


def test_the_cache_is_bounded_by_its_settings(two_versions: tuple[Any, Settings]) -> None:
    client, s = two_versions
    app = create_app(s.model_copy(update={"model_cache_versions": 1}))
    with TestClient(app) as c:
        assert app.state.holder.wait_ready(30)
        serving(c, client, s, "2")
        assert serving(c, client, s, "1")["loaded_from_cache"] is False  # v1 was evicted by v2
        assert app.state.holder.loader.cache.stats().evictions == 2


@pytest.fixture(scope="module")
def tiny() -> TinyModel:
    return fit_tiny_model()


def test_a_cached_version_takes_its_threshold_and_alias_from_the_registry(tiny: TinyModel) -> None:
    """The weights of a version never change, its tags may (a retuned decision threshold)."""
    tags = {"decision_threshold": "0.3"}
    loads: list[str] = []

    def resolve(_s: Settings, _alias: str) -> Any:
        return SimpleNamespace(version="4", run_id="r4", tags=dict(tags))

    def load(_s: Settings, mv: Any, alias: str) -> Any:
        loads.append(mv.version)
        return loaded_model(tiny, mv.version, alias)

    loader = CachedLoader(LRUCache(3, 2**30), resolve=resolve, load=load)
    first = loader(Settings(), "champion")
    tags["decision_threshold"] = "0.7"
    again = loader(Settings(), "challenger")
    assert loads == ["4"] and (first.source, again.source) == ("registry", "cache")
    assert (first.threshold, again.threshold, again.alias, again.run_id) == (0.3, 0.7, "challenger", "r4")
    assert again.pipeline is first.pipeline and again.loaded_at >= first.loaded_at


def test_model_bytes_is_the_pickled_pipeline(tiny: TinyModel) -> None:
    m = loaded_model(tiny, "1")
    assert 1_000 < model_bytes(m) < 10_000_000
    assert model_bytes(SimpleNamespace(pipeline=lambda: None)) == 0  # type: ignore[arg-type]


def test_the_reference_cache_and_limiter_demonstrate_themselves(capsys: pytest.CaptureFixture[str]) -> None:
    from mlops_lab.serving import cache, limiter

    cache._main()
    limiter._main()
    out = capsys.readouterr().out
    assert "after v5 (50 bytes): ['v4', 'v5']" in out and "a 101-byte entry kept: False" in out
    assert "24 passed" in out and "another client, meanwhile: wait 0.0 s" in out
