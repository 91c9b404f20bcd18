"""Grader of lab 1 / model-holder (exercises/lab1/holder.py): the decision, the atomic swap, failed loads.

The holder's loader is played by `Registry` below (a real model fitted by the grader, or a
failure); where the alias points is played by overriding `alias_moved`, the reference method
`refresh` asks.
"""

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

WAIT_S = 120  # only bounds a hang: the slow load below is held by an event, not by time


class Registry:
    """Plays the registry: which version the alias points at, whether it moved, or a failure."""

    def __init__(self, tiny: TinyModel) -> None:
        self.tiny = tiny
        self.version = "1"
        self.failure: Exception | None = None
        self.check_failure: Exception | None = None
        self.moved = True
        self.loads = 0
        self.gate: threading.Event | None = None  # when set: a slow load, held until the gate opens
        self.loading = threading.Event()

    def load(self, _settings: Settings, alias: str) -> Any:
        self.loads += 1
        if self.gate is not None:
            self.loading.set()
            self.gate.wait(WAIT_S)
        if self.failure is not None:
            raise self.failure
        return loaded_model(self.tiny, self.version, alias)


@pytest.fixture
def registry(tiny_model: TinyModel) -> Registry:
    return Registry(tiny_model)


def make(impl: ModuleType, tmp_path: Path, registry: Registry, **kw: Any) -> Any:
    class Holder(impl.ModelHolder):  # type: ignore[name-defined,misc]
        def alias_moved(self) -> bool:
            if registry.check_failure is not None:
                raise registry.check_failure
            return self.current is None or registry.moved

    return Holder(Settings(home=tmp_path), "champion", loader=registry.load, **kw)


def refresh(holder: Any, force: bool) -> Any:
    try:
        return holder.refresh(force=force)
    except NotImplementedError:
        raise
    except Exception as exc:
        pytest.fail(f"expected refresh() to handle the failure, got it raising {exc!r}", pytrace=False)


def test_load(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """a successful load swaps the model in, clears the not-ready reason and returns True"""
    holder = make(impl, tmp_path, registry)
    changed = refresh(holder, force=True)
    assert changed is True, f"expected refresh() to return True after a successful load, got {changed!r}"
    assert holder.current is not None and holder.current.version == "1", (
        f"expected version 1 to be served, got {holder.current!r}"
    )
    assert holder.not_ready_reason is None, f"expected no not_ready_reason, got {holder.not_ready_reason!r}"


def test_failed_load_keeps_the_old_model(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """a failed load (corrupt artifact) keeps the old model serving, counted and explained"""
    holder = make(impl, tmp_path, registry)
    refresh(holder, force=True)
    before = holder.current
    registry.failure = OSError("model.skops: truncated file")
    changed = refresh(holder, force=True)
    assert changed is False, f"expected refresh() to return False after a failed load, got {changed!r}"
    assert holder.current is before, "expected the old model to keep serving after a failed load"
    assert holder.load_failures == 1, f"expected load_failures == 1, got {holder.load_failures}"
    assert holder.last_error == "OSError: model.skops: truncated file", (
        f"expected last_error 'OSError: model.skops: truncated file' (failure_message), "
        f"got {holder.last_error!r}"
    )
    assert holder.not_ready_reason is None, (
        f"expected no not_ready_reason (a model is still served), got {holder.not_ready_reason!r}"
    )


def test_failed_first_load(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """a failed first load (registry down) leaves the server not ready, with the reason"""
    holder = make(impl, tmp_path, registry)
    registry.failure = LoadError("registry unreachable: connection refused")
    changed = refresh(holder, force=True)
    assert changed is False, f"expected refresh() to return False after a failed load, got {changed!r}"
    assert holder.current is None, f"expected no model, got {holder.current!r}"
    assert holder.not_ready_reason and "connection refused" in holder.not_ready_reason, (
        f"expected the load error in not_ready_reason, got {holder.not_ready_reason!r}"
    )
    assert holder.load_failures == 1, f"expected load_failures == 1, got {holder.load_failures}"


def test_recovers(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """after a failure, the next good load swaps in the new version and clears the error"""
    holder = make(impl, tmp_path, registry)
    registry.failure = OSError("truncated")
    refresh(holder, force=True)
    registry.failure, registry.version = None, "2"
    assert refresh(holder, force=True) is True, "expected the good load to return True"
    assert holder.current is not None and holder.current.version == "2", (
        f"expected version 2, got {holder.current!r}"
    )
    assert (holder.last_error, holder.not_ready_reason) == (None, None), (
        f"expected last_error and not_ready_reason cleared, got {holder.last_error!r} "
        f"and {holder.not_ready_reason!r}"
    )


def test_callbacks(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """on_load gets the new model and on_failure the error message (they feed the metrics)"""
    loads: list[str] = []
    failures: list[str] = []
    holder = make(
        impl, tmp_path, registry, on_load=lambda m: loads.append(m.version), on_failure=failures.append
    )
    refresh(holder, force=True)
    registry.failure = OSError("truncated")
    refresh(holder, force=True)
    assert loads == ["1"], f"expected on_load called once with version 1, got {loads}"
    assert failures == ["OSError: truncated"], f"expected on_failure(['OSError: truncated']), got {failures}"


def test_poll_loads_only_when_the_alias_moved(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """a poll (refresh()) loads nothing while the alias has not moved, and loads when it moves

    Loading takes seconds and memory; the poll runs every reload_poll_s. Ask alias_moved()
    first, unless the reload is forced.
    """
    holder = make(impl, tmp_path, registry)
    assert refresh(holder, force=False) is True, "expected the first poll (no model yet) to load"
    registry.moved, loads = False, registry.loads
    changed = refresh(holder, force=False)
    assert (changed, registry.loads) == (False, loads), (
        f"expected no load and False while the alias has not moved, got {changed!r} "
        f"after {registry.loads - loads} loads"
    )
    registry.moved, registry.version = True, "2"
    changed = refresh(holder, force=False)
    assert changed is True and holder.current.version == "2", (
        f"expected the poll to load version 2 once the alias moved, got {changed!r} "
        f"and v{holder.current.version}"
    )


def test_forced_reload(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """a forced reload (refresh(force=True), /admin/reload) loads even when the alias has not moved"""
    holder = make(impl, tmp_path, registry)
    refresh(holder, force=True)
    registry.moved, loads = False, registry.loads
    changed = refresh(holder, force=True)
    assert (changed, registry.loads) == (True, loads + 1), (
        f"expected one more load and True, got {changed!r} after {registry.loads - loads} loads"
    )


def test_registry_down_during_the_check(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """a registry that does not answer the alias check keeps the old model, counted and explained"""
    holder = make(impl, tmp_path, registry)
    refresh(holder, force=True)
    before = holder.current
    registry.check_failure = ConnectionError("registry unreachable")
    changed = refresh(holder, force=False)
    assert changed is False, f"expected refresh() to return False, got {changed!r}"
    assert holder.current is before, "expected the old model to keep serving"
    assert holder.load_failures == 1 and "registry unreachable" in str(holder.last_error), (
        f"expected the failure counted (1) and kept in last_error, got {holder.load_failures} "
        f"and {holder.last_error!r}"
    )


def test_no_gap_during_a_slow_load(impl: ModuleType, tmp_path: Path, registry: Registry) -> None:
    """while a new version loads, requests keep being scored by the old one (never None)"""
    holder = make(impl, tmp_path, registry)
    refresh(holder, force=True)
    registry.version, registry.gate = "2", threading.Event()
    errors: list[BaseException] = []

    def reload() -> None:
        try:
            holder.refresh(force=True)
        except BaseException as exc:
            errors.append(exc)

    loader = threading.Thread(target=reload)
    loader.start()
    try:
        while loader.is_alive() and not registry.loading.wait(0.05):
            pass  # until the load has begun (or refresh returned without loading)
        during = {m.version if m is not None else None for m in (holder.current for _ in range(100))}
        assert during == {"1"}, f"expected version 1 served while version 2 loads, got {during}"
    finally:
        registry.gate.set()
    gaps = 0
    while loader.is_alive():
        model = holder.current
        gaps += model is None
        if model is not None:
            model.score_one(registry.tiny.rows[0])
        time.sleep(0.001)
    loader.join()
    if errors:
        raise errors[0]
    assert gaps == 0, f"expected a model at every moment of the reload, saw none {gaps} times"
    assert holder.current is not None and holder.current.version == "2", (
        f"expected version 2 after the reload, got {holder.current!r}"
    )
