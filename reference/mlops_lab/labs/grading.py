"""Helpers the lab graders share (labs/graders/): a small real model, a holder-ready copy of it,
and a cache for a grader's expensive, deterministic setup.

python -c "from mlops_lab.labs.grading import fit_tiny_model; print(fit_tiny_model().threshold)"
"""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, cast

from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.manifest import repo_root
from mlops_lab.lifecycle import model as fraud_model

T = TypeVar("T")
LIBRARIES = ("numpy", "pandas", "scipy", "scikit-learn")  # what the cached numbers depend on


@dataclass(frozen=True)
class TinyModel:
    """A real fraud model (the reference pipeline) fitted on a small sample: enough to grade with."""

    pipeline: Any
    threshold: float
    rows: list[dict[str, Any]]  # feature rows it was not fitted on


def fit_tiny_model() -> TinyModel:
    data = generate("baseline", 4_000, seed=7)
    pipeline = fraud_model.build_pipeline(fraud_model.Hyperparams()).fit(
        data[SCHEMA.names], data[SCHEMA.label]
    )
    threshold = fraud_model.budget_threshold(fraud_model.scores(pipeline, data[SCHEMA.names]), 0.05)
    rows = cast(list[dict[str, Any]], features_only(generate("baseline", 200, seed=8)).to_dict("records"))
    return TinyModel(pipeline, threshold, rows)


def loaded_model(tiny: TinyModel, version: str, alias: str = "champion") -> Any:
    """A LoadedModel as the reference holder builds it, without going through MLflow."""
    from mlops_lab.serving.holder import LoadedModel

    return LoadedModel(
        version=version,
        alias=alias,
        run_id=None,
        threshold=tiny.threshold,
        pipeline=tiny.pipeline,
        compiled=fraud_model.compile_scorer(tiny.pipeline),
        loaded_at=datetime.now(UTC),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cached(name: str, sources: Iterable[ModuleType], build: Callable[[], T]) -> T:
    """`build()`, remembered under var/cache/graders/ between grading runs.

    For setup that is deterministic and costs seconds (the trigger-policy grader streams about
    800 windows): a learner re-grading after each edit should wait for their code, not for it.
    The key is the source of every module in `sources` (pass each module the result depends
    on, the grader's own included) and the versions of the numeric libraries: any change
    rebuilds. A file that cannot be read back is rebuilt, never trusted.
    """
    digest = hashlib.sha256(name.encode())
    for module in sources:
        digest.update(Path(str(module.__file__)).read_bytes())
    for library in LIBRARIES:
        digest.update(metadata.version(library).encode())
    path = repo_root() / "var" / "cache" / "graders" / f"{name}-{digest.hexdigest()[:16]}.pickle"
    try:
        with path.open("rb") as fh:
            return cast(T, pickle.load(fh))
    except Exception:  # missing, truncated, written by another Python: build it again
        pass
    value = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # two graders at once: the last complete file wins
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return value
