"""One retrain at a time, and a stale run never overrides a newer decision (lab 3's
`one-retrain` exercise mirrors it).

    python -m mlops_lab.pipeline.guard      # who holds the retrain lock, if anyone

Two things can ask for a retrain at once (the drift monitor and a person, two monitor replicas,
the nightly CronJob): two runs would train twice and race to stage. And a run takes minutes:
while it trains, someone may promote or roll back, and its challenger, compared with a champion
that is no longer the champion, must not be staged.

  retrain_lock       a non-blocking exclusive lock (flock) on home/pipeline/retrain.lock: a second
                     trigger fails at once with RetrainAlreadyRunning; the kernel releases it when
                     the holder exits, even when it is killed (no stale lock file to clean up)
  stage_challenger   compare-and-set: move @challenger to the run's version only while @champion is
                     still the version the run started from (`parent_version`), else stop the run
                     with `champion_moved`; a retry after the move does not move or audit it twice

MLflow has no transaction across "read @champion" and "set @challenger": what remains is the
milliseconds between the two calls, not the minutes of a run, which is the race this closes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlops_lab.errors import UserError
from mlops_lab.lifecycle.tracking import CHALLENGER, CHAMPION, version_by_alias
from mlops_lab.pipeline.validate import PipelineStopped
from mlops_lab.settings import Settings


class RetrainAlreadyRunning(UserError):
    """A retrain is already in progress (the local lock, or a retraining Job in the cluster):
    nothing was started. The monitor counts it as `skipped`; the CLI prints it."""


class ChampionMoved(PipelineStopped):
    """@champion changed while the run trained: its challenger was judged against another model."""

    def __init__(self, detail: str) -> None:
        super().__init__("stage_challenger", "champion_moved", detail)


def lock_path(settings: Settings) -> Path:
    return settings.home / "pipeline" / "retrain.lock"


@contextlib.contextmanager
def retrain_lock(settings: Settings) -> Iterator[Path]:
    """Hold the retrain lock for the with-block; RetrainAlreadyRunning (naming the holder's pid)
    when another process or thread holds it."""
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise RetrainAlreadyRunning(
                f"a retrain is already running (pid {holder}, lock {path}); try again when it finishes"
            ) from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            yield path
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


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
    champion = version_by_alias(client, settings.model_name, CHAMPION)
    now = str(champion.version) if champion is not None else None
    if now != parent_version:
        raise ChampionMoved(
            f"@champion is v{now} but this run started from v{parent_version} and was judged against it: "
            f"v{version} is not staged; trigger a new run against the current champion"
        )
    current = version_by_alias(client, settings.model_name, CHALLENGER)
    previous = str(current.version) if current is not None else None
    if previous != version:  # a retry after the move neither moves nor audits it twice
        move()
    return previous


def _main() -> None:
    from mlops_lab.settings import get_settings

    path = lock_path(get_settings())
    try:
        with retrain_lock(get_settings()):
            print(f"free: no retrain holds {path}")
    except RetrainAlreadyRunning as exc:
        print(exc)


if __name__ == "__main__":
    _main()
