"""Grader of lab 1 / model-holder (exercises/lab1/holder.py): the atomic swap and failed loads."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mlops_lab.labs.grading import TinyModel, loaded_model
from mlops_lab.serving.holder import LoadError
from mlops_lab.settings import Settings


class Registry:
    """Plays the registry for the holder's loader: which version the alias points at, or a failure."""

    def __init__(self, tiny: TinyModel) -> None:
        self.tiny = tiny
        self.version = "1"
        self.failure: Exception | None = None
        self.delay_s = 0.0

    def load(self, _settings: Settings, alias: str) -> Any:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.failure is not None:
            raise self.failure
        return loaded_model(self.tiny, self.version, alias)


@pytest.fixture
def registry(tiny_model: TinyModel) -> Registry:
    return Registry(tiny_model)


def make(impl: ModuleType, tmp_path: Path, registry: Registry, **kw: Any) -> Any:
    return impl.ModelHolder(Settings(home=tmp_path), "champion", loader=registry.load, **kw)


def test_not_ready_before_a_load(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """before any load: no model and a reason for the 503"""
    holder = make(impl, tmp_path, registry)
    assert holder.current is None, "expected no model before the first load"
    assert holder.not_ready_reason, "expected not_ready_reason to say why there is no model"


def test_load(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """a successful load swaps the model in and clears the not-ready reason"""
    holder = make(impl, tmp_path, registry)
    changed = holder.refresh(force=True)
    assert changed is True, f"expected refresh() to return True after a successful load, got {changed!r}"
    assert holder.current is not None and holder.current.version == "1", "expected version 1 to be served"
    assert holder.not_ready_reason is None, f"expected no not_ready_reason, got {holder.not_ready_reason!r}"


def test_failed_load_keeps_the_old_model(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """a failed load (corrupt artifact) keeps the old model serving, counted and explained"""
    holder = make(impl, tmp_path, registry)
    holder.refresh(force=True)
    before = holder.current
    registry.failure = OSError("model.skops: truncated file")
    try:
        changed = holder.refresh(force=True)
    except Exception as exc:
        pytest.fail(f"expected refresh() to handle the failed load, it raised {exc!r}", pytrace=False)
    assert changed is False, f"expected refresh() to return False after a failed load, got {changed!r}"
    assert holder.current is before, "expected the old model to keep serving after a failed load"
    assert holder.load_failures == 1, f"expected load_failures == 1, got {holder.load_failures}"
    assert holder.last_error and "OSError" in holder.last_error and "truncated" in holder.last_error, (
        f"expected last_error like 'OSError: model.skops: truncated file', got {holder.last_error!r}"
    )
    assert holder.not_ready_reason is None, "a model is still served: the server must stay ready"


def test_failed_first_load(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """a failed first load (registry down) leaves the server not ready, with the reason"""
    holder = make(impl, tmp_path, registry)
    registry.failure = LoadError("registry unreachable: connection refused")
    try:
        holder.refresh(force=True)
    except Exception as exc:
        pytest.fail(f"expected refresh() to handle the failed load, it raised {exc!r}", pytrace=False)
    assert holder.current is None, "expected no model"
    assert holder.not_ready_reason and "connection refused" in holder.not_ready_reason, (
        f"expected the load error in not_ready_reason, got {holder.not_ready_reason!r}"
    )


def test_recovers(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """after a failure, the next good load swaps in the new version and clears the error"""
    holder = make(impl, tmp_path, registry)
    holder.refresh(force=True)
    registry.failure = OSError("truncated")
    holder.refresh(force=True)
    registry.failure, registry.version = None, "2"
    assert holder.refresh(force=True) is True, "expected the good load to succeed"
    assert holder.current.version == "2", f"expected version 2, got {holder.current.version}"
    assert holder.last_error is None, f"expected last_error cleared, got {holder.last_error!r}"


def test_callbacks(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """on_load gets the new model and on_failure the error message (they feed the metrics)"""
    loads: list[str] = []
    failures: list[str] = []
    holder = make(
        impl, tmp_path, registry, on_load=lambda m: loads.append(m.version), on_failure=failures.append
    )
    holder.refresh(force=True)
    registry.failure = OSError("truncated")
    holder.refresh(force=True)
    assert loads == ["1"], f"expected on_load called once with version 1, got {loads}"
    assert len(failures) == 1 and "truncated" in failures[0], f"expected one failure message, got {failures}"


def test_no_gap_during_a_slow_load(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """while a new version loads, requests keep being scored by the old one (never None)"""
    holder = make(impl, tmp_path, registry)
    holder.refresh(force=True)
    registry.version, registry.delay_s = "2", 0.3
    seen: set[str] = set()
    gaps = 0
    loader = threading.Thread(target=holder.refresh, kwargs={"force": True})
    loader.start()
    while loader.is_alive():
        model = holder.current
        if model is None:
            gaps += 1
        else:
            model.score_one(registry.tiny.rows[0])
            seen.add(model.version)
        time.sleep(0.001)
    loader.join()
    assert gaps == 0, f"expected a model at every moment of the reload, saw none {gaps} times"
    assert holder.current is not None and holder.current.version == "2", "expected version 2 after the reload"
    assert "1" in seen, "expected version 1 to keep serving during the slow load"
