"""A solution of lab 3's `one-retrain` (exercises/lab3/guard.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab3/one-retrain.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlops_lab.lifecycle.tracking import CHALLENGER, CHAMPION, version_by_alias
from mlops_lab.pipeline.guard import ChampionMoved, RetrainAlreadyRunning, lock_path
from mlops_lab.settings import Settings


@contextlib.contextmanager
def retrain_lock(settings: Settings) -> Iterator[Path]:
    """Hold the retrain lock for the with-block; RetrainAlreadyRunning (naming the holder's pid)
    when another process or thread holds it."""
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)  # a fresh home has no pipeline/ folder yet
    # A new open file in every call: flock belongs to the open file, not to the process, so a
    # second thread that opens it too is refused like another process would be.
    # "a+" creates the file and leaves its content alone: "w" would wipe the holder's pid before
    # we even know whether we get the lock.
    with open(path, "a+") as lock_file:
        try:
            # LOCK_NB: never queue behind a running retrain (it takes minutes); refuse at once.
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "unknown"
            raise RetrainAlreadyRunning(
                f"a retrain is already running (pid {holder} holds {path}); try again when it is done"
            ) from None
        # Ours now: say who holds it, for the message of the next trigger and for a person.
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"{os.getpid()}\n")
        lock_file.flush()
        try:
            yield path
        finally:
            # However the block ends, a crash included: a lock left held stops every retrain.
            lock_file.seek(0)
            lock_file.truncate()
            lock_file.flush()
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
    # Leaving `with open` closes the file, which drops an flock too: that is also what frees it
    # when the process is killed (SIGKILL runs no finally, but the kernel closes its files).


def stage_challenger(
    client: Any,
    settings: Settings,
    version: str,
    parent_version: str | None,
    move: Callable[[], None],
) -> str | None:
    """Compare-and-set @challenger: call `move()` (which sets the alias and audits it) only when
    @champion is still `parent_version` (None: there was no champion) and @challenger is not
    already `version`. Returns the version @challenger pointed at before; raises ChampionMoved."""

    def points_at(alias: str) -> str | None:
        mv = version_by_alias(client, settings.model_name, alias)
        # MLflow returns the version as an int; the run's records (parent_version) hold a str.
        return None if mv is None else str(mv.version)

    # Compare: the run's challenger passed a gate against parent_version. If someone promoted or
    # rolled back since (or the first champion appeared: None is a value too), that verdict is
    # about a model that no longer serves, so staging it would override a newer human decision.
    champion_now = points_at(CHAMPION)
    if champion_now != parent_version:
        raise ChampionMoved(
            f"@champion is {describe(champion_now)} but this run was judged against "
            f"{describe(parent_version)}: v{version} is not staged; re-trigger against the current champion"
        )
    # Set, unless an earlier attempt already did: move() audits, and a retry must not audit twice.
    before = points_at(CHALLENGER)
    if before == version:
        return before
    move()
    return before


def describe(version: str | None) -> str:
    return "no champion" if version is None else f"v{version}"
