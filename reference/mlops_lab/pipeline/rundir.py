"""The run directory: where a pipeline run keeps its state, and how its outcome is read back.

    python -m mlops_lab.pipeline.rundir [RUN_ID]     # the outcome of one run (default: the newest)

Layout, under `settings.home / "pipeline" / "runs" / <run_id>/`:
  run.json            run_id, trigger reason, first DAG run id, start time and the data window
                      (`pipeline.window`), written once: a resume reads the same rows
  <data>.parquet      frames the steps hand each other (new.parquet, recent.parquet, training.parquet)
  <step>.json         one per finished step: its outputs and the key of the input it read
                      (`input_key`). A re-run skips a step whose json has the same key
                      (`pipeline.attempt`).
  failed.json         the step that stopped (bad data, failed gate) or crashed, and why; removed
                      when a later attempt gets past that step

Every json is written atomically (temp file, then rename), so a crash leaves either the old
state or the new one. The trigger reads the outcome from here (`read_result`), never by
parsing logs. `begin_run` gives the steps a `RunContext`: the run id, the reason and window
recorded when the run started (a resume keeps them), the DAG run executing this attempt, and
`part`, which names the module playing each reference module (the learner's code, in the labs).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mlops_lab.data.io import write_json_atomic
from mlops_lab.errors import InvalidValue
from mlops_lab.parts import Part
from mlops_lab.pipeline.window import Window
from mlops_lab.settings import Settings

DAG_ID = "retrain_fraud_detector"  # the Airflow DAG (pipeline.dag) that runs these steps
STEPS = ("extract", "validate", "train", "evaluate", "register", "stage_challenger")
RUN_FILE = "run.json"
FAILED_FILE = "failed.json"
# Recorded with a step's outputs but not part of what the next step reads (its input key).
VOLATILE = ("finished_at", "took_s", "dag_run_id")

Status = Literal["staged", "stopped", "crashed", "incomplete"]


@dataclass(frozen=True)
class PipelineResult:
    """The outcome of one run, as its run directory records it."""

    run_id: str
    status: Status  # staged: @challenger points at `version`; stopped: a step refused (data, gate)
    reason: str  # why the run was triggered
    version: str | None = None  # the version this run trained (None before train finished)
    parent_version: str | None = None  # @champion when the run extracted its data
    step: str | None = None  # the step that stopped or crashed
    stop_reason: str | None = None  # unit_bug, missing_values, schema_break, gate, no_data, or the error type
    detail: str | None = None  # the step's message: names columns and numbers
    done: tuple[str, ...] = ()  # steps finished, in order
    skipped: tuple[str, ...] = ()  # steps this attempt found finished and did not redo
    log: Path | None = None  # the Airflow log, when the run went through Airflow
    dir: Path = field(default=Path("."), compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "staged"

    def summary(self) -> str:
        if self.status == "staged":
            return f"run {self.run_id}: v{self.version} staged as @challenger (parent v{self.parent_version})"
        if self.status == "incomplete":
            text = f"run {self.run_id}: incomplete after {', '.join(self.done) or 'no step'}"
        else:
            text = f"run {self.run_id}: {self.step} {self.status} the run ({self.stop_reason}): {self.detail}"
        return text + (f" (log: {self.log})" if self.log is not None else "")


def sanitize_run_id(text: str) -> str:
    """A DAG run id (`manual__2026-11-26T12:00:00+00:00`) made safe as a folder name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._-")[:128]
    if not safe:
        raise InvalidValue(f"run id {text!r} has no usable characters")
    return safe


def runs_dir(settings: Settings) -> Path:
    return settings.home / "pipeline" / "runs"


def run_dir(settings: Settings, run_id: str) -> Path:
    if run_id != sanitize_run_id(run_id):
        raise InvalidValue(f"run id {run_id!r} is not a safe folder name (use sanitize_run_id)")
    return runs_dir(settings) / run_id


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_json_atomic(path, data, indent=2)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except FileNotFoundError:
        return None


def read_result(
    settings: Settings, run_id: str, *, skipped: tuple[str, ...] = (), log: Path | None = None
) -> PipelineResult:
    """What the run directory says about `run_id` (status incomplete when it never started)."""
    folder = run_dir(settings, run_id)
    meta = read_json(folder / RUN_FILE) or {}
    outputs = {name: read_json(folder / f"{name}.json") for name in STEPS}
    done = tuple(name for name in STEPS if outputs[name] is not None)
    trained = outputs["train"] or {}
    extracted = outputs["extract"] or {}
    failed = read_json(folder / FAILED_FILE)
    status: Status = "incomplete"
    if outputs["stage_challenger"] is not None:
        status, failed = "staged", None
    elif failed is not None:
        status = "stopped" if failed.get("status") == "stopped" else "crashed"
    return PipelineResult(
        run_id=run_id,
        status=status,
        reason=str(meta.get("reason", "")),
        version=trained.get("version"),
        parent_version=extracted.get("parent_version"),
        step=failed.get("step") if failed else None,
        stop_reason=failed.get("reason") if failed else None,
        detail=failed.get("detail") if failed else None,
        done=done,
        skipped=skipped,
        log=log,
        dir=folder,
    )


@dataclass(frozen=True)
class RunContext:
    settings: Settings
    run_id: str
    reason: str  # the trigger reason recorded when the run started (a resume keeps it)
    dag_run_id: str  # the DAG run executing this attempt (the run id itself when in-process)
    window: Window  # the data interval recorded when the run started (a resume keeps it)
    part: Part = importlib.import_module  # who plays e.g. "mlops_lab.pipeline.validate"

    @property
    def dir(self) -> Path:
        return run_dir(self.settings, self.run_id)

    def outputs(self, step: str) -> dict[str, Any]:
        data = read_json(self.dir / f"{step}.json")
        if data is None:
            raise RuntimeError(f"run {self.run_id}: step {step} has not finished")
        return data


def begin_run(
    settings: Settings,
    run_id: str,
    reason: str,
    dag_run_id: str | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    airflow_context: Mapping[str, Any] | None = None,
    part: Part = importlib.import_module,
) -> RunContext:
    """Create the run directory (or resume it: the recorded reason and window win over new ones).

    The window is resolved once, from `params` (window_start/window_end) and the Airflow task
    context, by `part("mlops_lab.pipeline.window").resolve_window`.
    """
    folder = run_dir(settings, run_id)
    meta = read_json(folder / RUN_FILE)
    if meta is None:
        started = datetime.now(UTC)
        window = part("mlops_lab.pipeline.window").resolve_window(
            params or {}, airflow_context or {}, started
        )
        meta = {
            "run_id": run_id,
            "reason": reason,
            "dag_run_id": dag_run_id or run_id,
            "started_at": started.isoformat(timespec="seconds"),
            "window": window.to_json(),
        }
        write_json(folder / RUN_FILE, meta)
    return RunContext(
        settings,
        run_id,
        str(meta["reason"]),
        dag_run_id or str(meta["dag_run_id"]),
        _recorded_window(meta),
        part,
    )


def _recorded_window(meta: Mapping[str, Any]) -> Window:
    if "window" in meta:
        return Window.from_json(meta["window"])
    # A run started before windows were recorded read everything logged before it started.
    return Window(None, datetime.fromisoformat(str(meta["started_at"])), "manual")


def input_key(run_id: str, step: str, inputs: Mapping[str, Any]) -> str:
    """What a step's output is valid for: the run, the step and what it read (volatile fields of a
    previous step's record left out), as a sha256 hex digest."""
    stable = {k: v for k, v in inputs.items() if k not in VOLATILE}
    text = json.dumps([run_id, step, stable], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def record_failure(ctx: RunContext, step: str, status: str, reason: str, detail: str) -> None:
    write_json(
        ctx.dir / FAILED_FILE,
        {
            "step": step,
            "status": status,
            "reason": reason,
            "detail": detail,
            "at": utc_now(),
            "dag_run_id": ctx.dag_run_id,
        },
    )


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}__{datetime.now(UTC):%Y%m%dT%H%M%S_%f}"


def newest_run(settings: Settings) -> str | None:
    folders = [p for p in runs_dir(settings).glob("*") if (p / RUN_FILE).exists()]
    return max(folders, key=lambda p: p.stat().st_mtime).name if folders else None


def _main() -> None:
    import sys

    from mlops_lab.settings import get_settings

    settings = get_settings()
    run_id = sys.argv[1] if len(sys.argv) > 1 else newest_run(settings)
    if run_id is None:
        raise SystemExit(f"no pipeline run under {runs_dir(settings)}")
    print(read_result(settings, run_id).summary())


if __name__ == "__main__":
    _main()
