"""Grader of lab 3 / one-retrain (exercises/lab3/guard.py): one retrain at a time, staged by compare-and-set.

The lock is graded with real contenders: a second thread of this process, and a child process
that holds the lock until it is killed with SIGKILL (the kernel, not the holder, must free it).
The compare-and-set is graded against a real MLflow registry (SQLite in a temp dir) with
registered versions and real @champion / @challenger aliases; `move` is played by a recorder
that moves @challenger as the pipeline's audited move does.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from mlflow import MlflowClient

from mlops_lab.lifecycle.tracking import (
    CHALLENGER,
    CHAMPION,
    client_for,
    configure_mlflow_env,
    version_by_alias,
)
from mlops_lab.pipeline.guard import RetrainAlreadyRunning, lock_path
from mlops_lab.pipeline.validate import PipelineStopped
from mlops_lab.settings import Settings

NAME = "fraud-detector"
AT_ONCE_S = 10  # a refused trigger returns in microseconds: only bounds a lock that waits instead
START_S = 120  # only bounds a hang: a child process imports MLflow before it takes the lock

# The lock holder: loads the implementation under test from its file, takes the lock, says so,
# then sleeps until the grader kills it.
HOLDER = """
import importlib.util, sys, time
from pathlib import Path
from mlops_lab.settings import Settings
spec = importlib.util.spec_from_file_location("lab3_guard_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
with module.retrain_lock(Settings(home=Path(sys.argv[2]))):
    print("held", flush=True)
    time.sleep(600)
"""


def attempt(impl: ModuleType, settings: Settings, hold: threading.Event | None = None) -> Any:
    """Enter the lock in another thread: "acquired" (holding it until `hold` is set), the
    exception it raised, or "waiting" when it neither got it nor refused within AT_ONCE_S."""
    outcome: list[Any] = []
    entered = threading.Event()

    def enter() -> None:
        try:
            with impl.retrain_lock(settings):
                outcome.append("acquired")
                entered.set()
                if hold is not None:
                    hold.wait(START_S)
        except BaseException as exc:
            outcome.append(exc)
            entered.set()

    thread = threading.Thread(target=enter, daemon=True)
    thread.start()
    if not entered.wait(AT_ONCE_S):
        return "waiting"
    if hold is None:
        thread.join(START_S)
    if isinstance(outcome[0], NotImplementedError):
        raise outcome[0]
    return outcome[0]


def refused(got: Any, pid: int, who: str) -> None:
    """`got` must be a RetrainAlreadyRunning naming `pid`."""
    if got == "waiting":
        pytest.fail(
            f"expected {who} to fail at once with RetrainAlreadyRunning, got it waiting for the lock "
            f"after {AT_ONCE_S} s (flock with LOCK_NB never waits)",
            pytrace=False,
        )
    assert isinstance(got, RetrainAlreadyRunning), (
        f"expected {who} to be refused with RetrainAlreadyRunning, got {got!r}"
    )
    assert re.search(rf"(?<!\d){pid}(?!\d)", str(got)), (
        f"expected the message to name the holder's pid {pid}, got {str(got)!r}"
    )


# ---------------------------------------------------------------- retrain_lock
def test_lock_yields_its_path(impl: ModuleType, tmp_path: Path) -> None:
    """the with-block gets the lock file's path (its folder created), and the lock is free again after it

    lock_path(settings) is home/pipeline/retrain.lock: path.parent.mkdir(parents=True,
    exist_ok=True) before opening it, and `yield path`.
    """
    settings = Settings(home=tmp_path / "a-new-home")
    with impl.retrain_lock(settings) as path:
        assert path == lock_path(settings), (
            f"expected the with-block to get {lock_path(settings)}, got {path!r}"
        )
        assert Path(path).is_file(), f"expected the lock file {path} to exist while held"
    got = attempt(impl, settings)
    assert got == "acquired", f"expected the lock free again after the with-block, got {got!r}"


def test_second_thread_refused(impl: ModuleType, tmp_path: Path) -> None:
    """a second trigger while the lock is held (another thread) fails at once, naming the holder's pid

    Threads share the process: a per-process lock (fcntl.lockf, a module-level flag) lets both
    in. flock on a file opened in each call does not. Read the holder's pid from the file
    without truncating it (mode "a+", seek(0)) and raise RetrainAlreadyRunning.
    """
    settings = Settings(home=tmp_path)
    release = threading.Event()
    try:
        first = attempt(impl, settings, hold=release)
        assert first == "acquired", f"expected the first trigger to take the lock, got {first!r}"
        refused(attempt(impl, settings), os.getpid(), "a second trigger")
        refused(attempt(impl, settings), os.getpid(), "a third trigger (the second one must not clobber it)")
    finally:
        release.set()


def test_exception_releases(impl: ModuleType, tmp_path: Path) -> None:
    """an exception in the with-block reaches the caller, and the lock is free after it

    A crashed run must not stop every later retrain: release in a `finally`, and let the
    exception propagate (no `except` that swallows it).
    """
    settings = Settings(home=tmp_path)

    class RunCrashed(Exception):
        pass

    with pytest.raises(RunCrashed), impl.retrain_lock(settings):
        raise RunCrashed("train crashed")
    got = attempt(impl, settings)
    assert got == "acquired", f"expected the lock free after the with-block raised, got {got!r}"


def test_killed_holder_releases(impl: ModuleType, tmp_path: Path) -> None:
    """a holder in another process is named by its pid, and SIGKILL on it frees the lock

    A lock the holder must clean up (a file that exists, a row in a table) outlives a killed
    process. The kernel drops an flock when the last descriptor of the open file closes, which
    a process's death does.
    """
    settings = Settings(home=tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(impl.__file__), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        line = "starting"
        while line not in ("held", "") and select.select([holder.stdout], [], [], START_S)[0]:
            line = holder.stdout.readline().strip()  # "" once the child exited
        if line != "held":
            holder.kill()
            _, err = holder.communicate(timeout=START_S)
            last = (err.strip().splitlines() or ["no output"])[-1]
            if "NotImplementedError" in err:
                raise NotImplementedError(
                    f"{last.removeprefix('NotImplementedError: ')} (in the holder process)"
                )
            pytest.fail(f"expected the child process to take the lock, it did not: {last}", pytrace=False)
        refused(attempt(impl, settings), holder.pid, "a trigger from another process")
    finally:
        if holder.poll() is None:
            holder.send_signal(signal.SIGKILL)  # no cleanup code runs: only the kernel can free it
            holder.communicate(timeout=START_S)
    got = attempt(impl, settings)
    assert got == "acquired", f"expected the lock free once its holder was killed (SIGKILL), got {got!r}"


# ---------------------------------------------------------------- stage_challenger
class Move:
    """Plays the pipeline's move: sets @challenger to the run's version, counting the calls."""

    def __init__(self, client: MlflowClient, version: str) -> None:
        self.client, self.version, self.calls = client, version, 0

    def __call__(self) -> None:
        self.calls += 1
        self.client.set_registered_model_alias(NAME, CHALLENGER, self.version)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[MlflowClient, Settings]:
    configure_mlflow_env()
    home = tmp_path_factory.mktemp("lab3-guard")
    settings = Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}", model_name=NAME)
    client = client_for(settings)
    client.create_registered_model(NAME)
    source = home / "artifact"
    source.mkdir()
    for _ in range(4):
        client.create_model_version(NAME, source=str(source))
    return client, settings


@pytest.fixture
def client(registry: tuple[MlflowClient, Settings]) -> Iterator[MlflowClient]:
    c, _ = registry
    for alias in (CHAMPION, CHALLENGER):
        if version_by_alias(c, NAME, alias) is not None:
            c.delete_registered_model_alias(NAME, alias)
    yield c


@pytest.fixture
def settings(registry: tuple[MlflowClient, Settings]) -> Settings:
    return registry[1]


def aliases(client: MlflowClient, champion: str | None, challenger: str | None) -> None:
    for alias, version in ((CHAMPION, champion), (CHALLENGER, challenger)):
        if version is not None:
            client.set_registered_model_alias(NAME, alias, version)


def challenger(client: MlflowClient) -> str | None:
    mv = version_by_alias(client, NAME, CHALLENGER)
    return str(mv.version) if mv is not None else None


def stage(
    impl: ModuleType, client: MlflowClient, settings: Settings, version: str, parent: str | None
) -> Any:
    move = Move(client, version)
    previous = impl.stage_challenger(client, settings, version, parent, move)
    return previous, move.calls


def refused_stage(
    impl: ModuleType, client: MlflowClient, settings: Settings, version: str, parent: str | None
) -> tuple[Any, int]:
    move = Move(client, version)
    try:
        got = impl.stage_challenger(client, settings, version, parent, move)
    except NotImplementedError:
        raise
    except Exception as exc:
        return exc, move.calls
    return f"no exception (it returned {got!r})", move.calls


def moved_away(got: Any, calls: int, client: MlflowClient, before: str | None) -> None:
    assert isinstance(got, PipelineStopped) and got.reason == "champion_moved", (
        f"expected ChampionMoved (a PipelineStopped with reason 'champion_moved'), got {got!r}"
    )
    assert calls == 0, f"expected move() not called when @champion moved, got {calls} calls"
    assert challenger(client) == before, f"expected @challenger to stay on {before}, got {challenger(client)}"


def test_stages_when_the_champion_did_not_move(
    impl: ModuleType, client: MlflowClient, settings: Settings
) -> None:
    """@champion still on the run's parent: move() is called once and the previous @challenger is returned

    Read @champion with version_by_alias and compare str(mv.version) (MLflow gives an int) with
    parent_version; then read @challenger before calling move(): that is what you return.
    """
    aliases(client, champion="1", challenger="2")
    previous, calls = stage(impl, client, settings, "3", "1")
    assert (calls, challenger(client)) == (1, "3"), (
        f"expected move() called once (@challenger on 3), got {calls} calls "
        f"(@challenger on {challenger(client)})"
    )
    assert previous == "2", f"expected the previous @challenger '2' returned, got {previous!r}"


def test_first_challenger(impl: ModuleType, client: MlflowClient, settings: Settings) -> None:
    """a first staging (no @challenger yet) moves it and returns None"""
    aliases(client, champion="1", challenger=None)
    previous, calls = stage(impl, client, settings, "3", "1")
    assert (calls, previous) == (1, None), (
        f"expected move() called once and None returned (no @challenger before), got {calls} calls "
        f"and {previous!r}"
    )


def test_champion_moved(impl: ModuleType, client: MlflowClient, settings: Settings) -> None:
    """@champion moved during the run: ChampionMoved naming both versions, and move() never called

    Compare before moving anything: the run's challenger was judged against v1, which is no
    longer the champion. raise ChampionMoved(detail) with the current champion, parent_version
    and the run's version in the detail.
    """
    aliases(client, champion="3", challenger="2")
    got, calls = refused_stage(impl, client, settings, "4", "1")
    moved_away(got, calls, client, before="2")
    for what, version in (("the current @champion", "3"), ("the run's parent", "1")):
        assert re.search(rf"(?<!\d){version}(?!\d)", got.detail), (
            f"expected the detail to name {what} (v{version}), got {got.detail!r}"
        )


def test_first_champion(impl: ModuleType, client: MlflowClient, settings: Settings) -> None:
    """no champion when the run started (parent None) and none now: the version is staged"""
    aliases(client, champion=None, challenger=None)
    previous, calls = stage(impl, client, settings, "1", None)
    assert (calls, previous, challenger(client)) == (1, None, "1"), (
        f"expected move() called once, None returned and @challenger on 1, got {calls} calls, "
        f"{previous!r} and @challenger on {challenger(client)}"
    )


def test_champion_appeared(impl: ModuleType, client: MlflowClient, settings: Settings) -> None:
    """no champion when the run started (parent None) but one now: refused with ChampionMoved

    None is a value like any other: the run compared itself with no champion at all.
    """
    aliases(client, champion="2", challenger=None)
    got, calls = refused_stage(impl, client, settings, "3", None)
    moved_away(got, calls, client, before=None)


def test_champion_removed(impl: ModuleType, client: MlflowClient, settings: Settings) -> None:
    """a champion removed during the run (parent 1, no @champion now) is a move too: refused"""
    aliases(client, champion=None, challenger="2")
    got, calls = refused_stage(impl, client, settings, "3", "1")
    moved_away(got, calls, client, before="2")


def test_retry_after_the_move(impl: ModuleType, client: MlflowClient, settings: Settings) -> None:
    """@challenger already on the run's version (a retry after the move): no move(), that version returned

    move() writes an audit entry: a retried step must not stage (and audit) the same version twice.
    """
    aliases(client, champion="1", challenger="3")
    previous, calls = stage(impl, client, settings, "3", "1")
    assert (calls, previous) == (0, "3"), (
        f"expected no move() and '3' returned for a version already staged, got {calls} calls "
        f"and {previous!r}"
    )
