"""Lab 3, exercise `one-retrain`: one retrain at a time, and a stale run never wins.

    make lab-3        grade it          make hint-3      one more hint
    Reference: reference/mlops_lab/pipeline/guard.py     Docs: docs/labs/lab-3-orchestration.md

The drift monitor and a person (or two monitor replicas, or the nightly CronJob) may trigger a
retrain at the same moment; and a run takes minutes, during which someone may promote or roll
back. You write the two guards `mlops_lab.pipeline.run.retrain` and the stage_challenger step
call:

  retrain_lock       hold an exclusive lock for the with-block: a second trigger fails at once
  stage_challenger   compare-and-set: stage the run's version only while @champion is still the
                     version the run started from

What they work with:

    lock_path(settings)          home/pipeline/retrain.lock (create its folder first)
    RetrainAlreadyRunning(msg)   what a second trigger gets (the monitor counts it as skipped)
    ChampionMoved(detail)        a PipelineStopped: the stage_challenger step stops the run
    version_by_alias(client, name, alias) -> a ModelVersion (.version) or None
    CHAMPION, CHALLENGER         "champion", "challenger"
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB) raises BlockingIOError when the lock is held
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
    # TODO(lab-3): an exclusive, non-blocking lock on lock_path(settings).
    #  - Never wait: a second trigger raises RetrainAlreadyRunning at once, its message naming
    #    the pid of the process that holds the lock (write os.getpid() into the file while held).
    #  - Released when the with-block ends, however it ends (an exception too).
    #  - Released when the holder dies, even by SIGKILL: a lock that outlives its process stops
    #    every retrain until a person deletes a file. flock on an open file is released by the
    #    kernel when the process exits; "the file exists" is not a lock.
    #  - Threads of one process count as two triggers: open the file in each call.
    #  Yield the lock file's path.
    raise NotImplementedError("TODO(lab-3): one retrain at a time")
    yield lock_path(settings)  # a generator, as @contextmanager needs (never reached until then)


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
    # TODO(lab-3): a compare-and-set on the registry's aliases of settings.model_name.
    #  - @champion now (a version string, or None when there is none) differs from
    #    parent_version: raise ChampionMoved with a detail naming both versions and `version`;
    #    call nothing.
    #  - @challenger already points at `version` (a retry after the move): do not move it again
    #    (the move writes an audit entry).
    #  - Otherwise call move().
    #  Return what @challenger pointed at before (a version string, or None).
    #  Think about: why is a challenger that passed the gate still wrong to stage once the
    #  champion moved?
    raise NotImplementedError("TODO(lab-3): stage only if the champion did not move")
