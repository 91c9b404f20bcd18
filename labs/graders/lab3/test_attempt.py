"""Grader of lab 3 / idempotent-step (exercises/lab3/attempt.py): a step safe to retry after a crash.

Every check runs steps in a real run directory (`begin_run` under a temp home) and reads back
what they left there: `<step>.json`, failed.json, and nothing else. A crash is injected before
the step's output is written (the step raises), while it is written (an output whose
serialisation raises partway: json.dump streams, so the keys before it are already in the file),
and after it (the next step raises). `version_of_run` is checked against a real MLflow registry
(SQLite in a temp dir) holding several pipeline runs, and end to end through the reference
pipeline's train step (`ctx.part` hands it the implementation under test).
"""

from __future__ import annotations

import functools
import importlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from mlops_lab.data.io import write_frame
from mlops_lab.data.schema import LABEL, SCHEMA
from mlops_lab.lifecycle.tracking import client_for, configure_mlflow_env, ensure_experiment
from mlops_lab.pipeline.rundir import FAILED_FILE, RunContext, begin_run, read_json, write_json
from mlops_lab.pipeline.validate import PipelineStopped, ValidationFailed
from mlops_lab.settings import Settings

ATTEMPT = "mlops_lab.pipeline.attempt"
RUN_ID = "run__grader"
DAG_RUN_ID = "scheduled__2026-01-05T00:00:00+00:00"  # an attempt of the run, as Airflow names it
KEY, NEW_KEY = "a" * 64, "b" * 64  # input keys: what the step read (rundir.input_key)
OTHER_MODEL = "calibrator"  # registered from the same MLflow runs as the model


class WriteCrash(Exception):
    """What the grader's unserialisable output raises: the process dies while writing."""


class WorkerLost(Exception):
    """A worker dies in the middle of a step (the OOM killer, a node drain)."""


class Unprintable:
    """An output value json cannot write: turning it into text raises (json.dump's default=str
    calls str()), after the keys before it were already streamed to the file."""

    def __str__(self) -> str:
        raise WriteCrash("no space left on device")

    __repr__ = __str__


class Step:
    """A step function that counts its calls, and returns `outputs` or raises `error`."""

    def __init__(self, outputs: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        self.outputs = outputs if outputs is not None else {"rows": 1200, "columns": ["amount", "hour"]}
        self.error = error
        self.calls = 0

    def __call__(self, ctx: RunContext) -> dict[str, Any]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return dict(self.outputs)


def context(tmp_path: Path, dag_run_id: str = DAG_RUN_ID, **kw: Any) -> RunContext:
    return begin_run(Settings(home=tmp_path), RUN_ID, "grader", dag_run_id, **kw)


def run_step(impl: ModuleType, ctx: RunContext, step: str, fn: Any, key: str = KEY) -> Any:
    result = impl.run_step(ctx, step, fn, key)
    assert isinstance(result, tuple) and len(result) == 2, (
        f"expected run_step to return (record, skipped), got {result!r}"
    )
    return result


def failure(ctx: RunContext) -> dict[str, Any] | None:
    return read_json(ctx.dir / FAILED_FILE)


def files(ctx: RunContext) -> set[str]:
    return {p.name for p in ctx.dir.iterdir()}


# ---------------------------------------------------------------- run_step
def test_records_the_output(impl: ModuleType, tmp_path: Path) -> None:
    """a first attempt runs the step and records its outputs, input_key, finished_at, took_s, dag_run_id

    The record is {**outputs, "input_key": input_key, "finished_at": utc_now(), "took_s": ...,
    "dag_run_id": ctx.dag_run_id}, written to ctx.dir / f"{step}.json" and returned with False.
    """
    ctx = context(tmp_path)
    fn = Step()
    record, skipped = run_step(impl, ctx, "extract", fn)
    assert (fn.calls, skipped) == (1, False), (
        f"expected the step run once and skipped False, got {fn.calls} calls and skipped {skipped!r}"
    )
    on_disk = read_json(ctx.dir / "extract.json")
    assert on_disk is not None, f"expected the record in {ctx.dir / 'extract.json'}, got no file"
    assert record == on_disk, f"expected run_step to return the record it wrote {on_disk}, got {record}"
    kept = {k: on_disk.get(k) for k in fn.outputs}
    assert kept == fn.outputs, f"expected the step's outputs {fn.outputs} in the record, got {kept}"
    got = (on_disk.get("input_key"), on_disk.get("dag_run_id"))
    assert got == (KEY, DAG_RUN_ID), f"expected input_key and dag_run_id {(KEY, DAG_RUN_ID)}, got {got}"
    took = on_disk.get("took_s")
    assert isinstance(took, int | float) and not isinstance(took, bool) and took >= 0, (
        f"expected took_s, the seconds the step took, got {took!r}"
    )
    try:
        datetime.fromisoformat(str(on_disk.get("finished_at")))
    except ValueError:
        pytest.fail(f"expected finished_at as ISO 8601 (utc_now()), got {on_disk.get('finished_at')!r}")


def test_skips_a_finished_step(impl: ModuleType, tmp_path: Path) -> None:
    """a retry with the same input_key skips the finished step (fn not called) and returns its record

    Read ctx.dir / f"{step}.json" first: when it exists with the same "input_key", return
    (that record, True) without calling fn. A step that registers a model must not run twice.
    """
    fn = Step()
    first, _ = run_step(impl, context(tmp_path), "extract", fn)
    again, skipped = run_step(impl, context(tmp_path, "manual__retry"), "extract", fn)
    assert (fn.calls, skipped) == (1, True), (
        f"expected the retry to skip the step (1 call in all, skipped True), got {fn.calls} calls "
        f"and skipped {skipped!r}"
    )
    assert again == first, f"expected the retry to return the recorded {first}, got {again}"


def test_reruns_on_a_new_input(impl: ModuleType, tmp_path: Path) -> None:
    """a different input_key runs the step again and replaces its output

    The input key is what the step read (the previous step's output, the data window): the same
    step of the same run must be redone when it changed. Compare the record's "input_key".
    """
    ctx = context(tmp_path)
    run_step(impl, ctx, "validate", Step({"rows": 1200, "stale": True}), KEY)
    fn = Step({"rows": 1500})
    record, skipped = run_step(impl, ctx, "validate", fn, NEW_KEY)
    assert (fn.calls, skipped) == (1, False), (
        f"expected a new input_key to run the step again (skipped False), got {fn.calls} calls and "
        f"skipped {skipped!r}"
    )
    on_disk = read_json(ctx.dir / "validate.json") or {}
    got = (on_disk.get("input_key"), on_disk.get("rows"), "stale" in on_disk)
    assert got == (NEW_KEY, 1500, False), (
        f"expected validate.json replaced by the new output (input_key {NEW_KEY[:8]}..., rows 1500, "
        f"no 'stale'), got input_key {str(got[0])[:8]}..., rows {got[1]}, 'stale' kept: {got[2]}"
    )
    assert record == on_disk, f"expected run_step to return the new record {on_disk}, got {record}"
    _, skipped = run_step(impl, ctx, "validate", fn, NEW_KEY)
    assert (fn.calls, skipped) == (1, True), (
        f"expected the new output to be skipped for the new key, got {fn.calls} calls and skipped {skipped!r}"
    )


def test_crash_before_the_write(impl: ModuleType, tmp_path: Path) -> None:
    """a crash inside the step is recorded as crashed in failed.json, re-raised, and the retry runs it again

    Put fn(ctx) and the write in one try: for an exception that is not a PipelineStopped,
    record_failure(ctx, step, "crashed", type(exc).__name__, str(exc)), then `raise` it as it is.
    """
    ctx = context(tmp_path)
    error = ConnectionError("registry unreachable")
    with pytest.raises(ConnectionError) as raised:
        run_step(impl, ctx, "train", Step(error=error))
    assert raised.value is error, f"expected the step's own exception re-raised, got {raised.value!r}"
    failed = failure(ctx) or {}
    got = {k: failed.get(k) for k in ("step", "status", "reason")}
    want = {"step": "train", "status": "crashed", "reason": "ConnectionError"}
    assert got == want, f"expected failed.json to say {want}, got {got or 'no failed.json'}"
    assert "registry unreachable" in str(failed.get("detail")), (
        f"expected the error's message in failed.json's detail, got {failed.get('detail')!r}"
    )
    assert not (ctx.dir / "train.json").exists(), "expected no train.json for a step that crashed, got one"
    fn = Step()
    _, skipped = run_step(impl, ctx, "train", fn)
    assert (fn.calls, skipped) == (1, False), (
        f"expected the retry to run the crashed step, got {fn.calls} calls and skipped {skipped!r}"
    )


def test_crash_while_writing(impl: ModuleType, tmp_path: Path) -> None:
    """a crash while the record is written leaves no half-written <step>.json nor any temporary file

    Write the record with write_json (temp file in the same folder, fsync, os.replace, the temp
    file removed on failure) inside the same try as fn: a crash halfway is then recorded as
    crashed, and the retry finds no record, so it runs the step again.
    """
    ctx = context(tmp_path)
    before = files(ctx)
    with pytest.raises(Exception) as raised:  # WriteCrash from str(), or json's own TypeError
        run_step(impl, ctx, "train", Step({"version": "7", "model": Unprintable()}))
    if isinstance(raised.value, NotImplementedError):
        raise raised.value
    path = ctx.dir / "train.json"
    if path.exists():
        pytest.fail(
            f"expected no train.json after a crash while writing it, got a half-written one: "
            f"{path.read_text()[:80]!r} (write to a temp file, then os.replace)",
            pytrace=False,
        )
    failed = failure(ctx) or {}
    got = (failed.get("step"), failed.get("status"))
    assert got == ("train", "crashed"), (
        f"expected failed.json to record train as crashed, got {got if failed else 'no failed.json'}"
    )
    left = sorted(files(ctx) - before - {FAILED_FILE})
    assert not left, f"expected nothing left in the run directory but failed.json, got {left}"
    fn = Step({"version": "7"})
    record, skipped = run_step(impl, ctx, "train", fn)
    assert (fn.calls, skipped, record.get("version")) == (1, False, "7"), (
        f"expected the retry to run the step and record version 7, got {fn.calls} calls, skipped "
        f"{skipped!r}, version {record.get('version')!r}"
    )


def test_crash_after_the_write(impl: ModuleType, tmp_path: Path) -> None:
    """a crash after a step finished (the next one fails) does not run the finished step again on the retry"""
    ctx = context(tmp_path)
    extract = Step({"rows": 1200})
    first, _ = run_step(impl, ctx, "extract", extract)
    with pytest.raises(WorkerLost):
        run_step(impl, ctx, "validate", Step(error=WorkerLost("worker OOM-killed")))
    retry = context(tmp_path, "manual__resume")
    record, skipped = run_step(impl, retry, "extract", extract)
    assert (extract.calls, skipped, record) == (1, True, first), (
        f"expected the finished extract skipped with its record, got {extract.calls} calls, skipped "
        f"{skipped!r}, record {record}"
    )
    validate = Step({"checked": ["amount"]})
    _, skipped = run_step(impl, retry, "validate", validate)
    assert (validate.calls, skipped) == (1, False), (
        f"expected the crashed validate to run on the retry, got {validate.calls} calls and "
        f"skipped {skipped!r}"
    )


def test_stopped(impl: ModuleType, tmp_path: Path) -> None:
    """a PipelineStopped is recorded as stopped with its reason and detail, and re-raised

    A refusal on purpose (bad data, a failed gate) is not a crash: catch PipelineStopped before
    Exception and record_failure(ctx, step, "stopped", stop.reason, stop.detail).
    """
    ctx = context(tmp_path)
    stop = ValidationFailed("unit_bug", "amount: median 4,210.00 is x100 the reference's 42.10")
    with pytest.raises(PipelineStopped) as raised:
        run_step(impl, ctx, "validate", Step(error=stop))
    assert raised.value is stop, f"expected the PipelineStopped re-raised as it is, got {raised.value!r}"
    failed = failure(ctx) or {}
    got = {k: failed.get(k) for k in ("step", "status", "reason", "detail")}
    want = {"step": "validate", "status": "stopped", "reason": "unit_bug", "detail": stop.detail}
    assert got == want, f"expected failed.json to say {want}, got {got if failed else 'no failed.json'}"


def test_failure_cleared_by_its_step(impl: ModuleType, tmp_path: Path) -> None:
    """failed.json is removed once the step that failed succeeds, never by another step

    After a success, read failed.json: remove it only when its "step" is this step. A run whose
    validate failed and whose extract is re-run still failed at validate.
    """
    ctx = context(tmp_path)
    with pytest.raises(PipelineStopped):
        run_step(impl, ctx, "validate", Step(error=ValidationFailed("missing_values", "hour: 40% null")))
    run_step(impl, ctx, "extract", Step(), NEW_KEY)
    got = (failure(ctx) or {}).get("step")
    assert got == "validate", (
        f"expected failed.json to keep validate's failure after extract succeeded, got "
        f"{'no failed.json' if got is None else f'a failure of {got!r}'}"
    )
    run_step(impl, ctx, "validate", Step())
    assert failure(ctx) is None, f"expected failed.json removed once validate succeeded, got {failure(ctx)}"


# ---------------------------------------------------------------- version_of_run
@dataclass
class Registry:
    """A real MLflow registry with pipeline runs: MLflow runs tagged pipeline_run_id, and the
    versions they registered (`expected`: the version of the model each pipeline run has)."""

    settings: Settings
    client: MlflowClient
    experiment_id: str
    expected: dict[str, str | None] = field(default_factory=dict)

    def mlflow_run(self, pipeline_run_id: str) -> str:
        run = self.client.create_run(self.experiment_id, tags={"pipeline_run_id": pipeline_run_id})
        return str(run.info.run_id)

    def register(self, name: str, mlflow_run_id: str, **tags: str) -> str:
        source = self.settings.home / "artifacts" / mlflow_run_id
        mv = self.client.create_model_version(name, source=str(source), run_id=mlflow_run_id, tags=tags)
        return str(mv.version)

    def versions_of(self, pipeline_run_id: str) -> list[str]:
        """Every version of the model registered from an MLflow run of this pipeline run."""
        runs = self.client.search_runs([self.experiment_id], f"tags.pipeline_run_id = '{pipeline_run_id}'")
        ids = {r.info.run_id for r in runs}
        name = self.settings.model_name
        return sorted(
            str(v.version) for v in self.client.search_model_versions(f"name = '{name}'") if v.run_id in ids
        )


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    configure_mlflow_env()
    home = tmp_path_factory.mktemp("lab3-attempt")
    settings = Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    client = client_for(settings)
    reg = Registry(settings, client, ensure_experiment(client, settings))
    name = settings.model_name
    client.create_registered_model(name)
    client.create_registered_model(OTHER_MODEL)
    # run-a crashed right after register_model, before the version got its lineage tags.
    reg.expected["run-a"] = reg.register(name, reg.mlflow_run("run-a"))
    # run-b registered the model, then a calibrator from the same MLflow run.
    b = reg.mlflow_run("run-b")
    reg.expected["run-b"] = reg.register(name, b, pipeline_run_id="run-b")
    reg.register(OTHER_MODEL, b, pipeline_run_id="run-b")
    # run-c registered only the calibrator; run-d crashed before registering anything.
    reg.register(OTHER_MODEL, reg.mlflow_run("run-c"), pipeline_run_id="run-c")
    reg.mlflow_run("run-d")
    reg.expected |= {"run-c": None, "run-d": None}
    reg.expected["run-e"] = reg.register(name, reg.mlflow_run("run-e"), pipeline_run_id="run-e")
    return reg


def version_of_run(impl: ModuleType, settings: Settings, run_id: str) -> Any:
    return impl.version_of_run(settings, run_id)


def test_version_of_run(impl: ModuleType, registry: Registry) -> None:
    """version_of_run finds the version each run registered, as a str, untagged versions included

    The train step tags its MLflow run with pipeline_run_id when the run starts, and the version
    only after registering it: search the experiment's runs by that tag, then the versions whose
    run_id is one of theirs. MLflow gives versions as int; return str(version).
    """
    for run_id in ("run-a", "run-b", "run-e"):
        got = version_of_run(impl, registry.settings, run_id)
        want = registry.expected[run_id]
        assert got == want, f"expected version {want!r} (a str) for {run_id}, got {got!r}"


def test_version_of_unknown_run(impl: ModuleType, registry: Registry) -> None:
    """version_of_run returns None for a run that registered nothing (unknown, or crashed before it)"""
    for run_id in ("run-d", "run-never-started"):
        got = version_of_run(impl, registry.settings, run_id)
        assert got is None, f"expected None for {run_id} (no version registered), got {got!r}"


def test_version_of_another_model(impl: ModuleType, registry: Registry) -> None:
    """version_of_run never returns a version of another model registered from the same MLflow run

    search_model_versions(f"run_id = '...'") returns every model's versions of that run: keep
    the one whose .name is settings.model_name (or filter on the name in the search).
    """
    for run_id in ("run-b", "run-c"):
        got = version_of_run(impl, registry.settings, run_id)
        want = registry.expected[run_id]
        assert got == want, (
            f"expected {want!r} for {run_id} ({OTHER_MODEL} versions are another model's), got {got!r}"
        )


def test_version_without_experiment(impl: ModuleType, registry: Registry) -> None:
    """version_of_run returns None when the experiment does not exist yet (the very first run)

    client.get_experiment_by_name(...) is None until something was trained: nothing was registered.
    """
    settings = registry.settings.model_copy(update={"experiment_name": f"never-{uuid.uuid4().hex[:8]}"})
    got = version_of_run(impl, settings, "run-a")
    assert got is None, (
        f"expected None when experiment {settings.experiment_name} does not exist, got {got!r}"
    )


class RegisteringTrain:
    """Plays lifecycle.train.train for the reference train step: logs an MLflow run with the lineage
    tags and registers a version (no fitting: the registry is what is graded), then crashes while
    `crash` is set, as a worker killed before the step could record its output."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.calls = 0
        self.crash = True

    def __call__(self, settings: Settings, data: Any, *, lineage: dict[str, str]) -> Any:
        self.calls += 1
        run = self.registry.client.create_run(self.registry.experiment_id, tags=lineage)
        version = self.registry.register(settings.model_name, run.info.run_id)
        if self.crash:
            raise WorkerLost(f"worker lost after registering version {version}")
        return SimpleNamespace(
            version=version, run_id=run.info.run_id, data_fingerprint="grader", threshold=0.5, metrics={}
        )


def test_retried_train_registers_once(impl: ModuleType, registry: Registry, tmp_path: Path) -> None:
    """a train step retried after it registered a model registers one version, not two

    The reference pipeline's train step, through your run_step and version_of_run: the first
    attempt registers a version and dies before train.json is written, the retry must find that
    version (version_of_run) instead of training again.
    """
    from mlops_lab.pipeline import steps  # the real train step (scikit-learn, MLflow's loaders): only here

    def part(name: str) -> ModuleType:
        return impl if name == ATTEMPT else importlib.import_module(name)

    run_id = f"retried__{uuid.uuid4().hex[:8]}"  # the registry is shared by every graded copy
    settings = registry.settings.model_copy(update={"home": tmp_path})
    ctx = begin_run(settings, run_id, "grader: retried step", part=part)
    write_json(ctx.dir / "extract.json", {"parent_version": None})  # extract finished
    columns = [*SCHEMA.names, LABEL]
    write_frame(pd.DataFrame({c: [0] * 4 for c in columns}), ctx.dir / "training.parquet")
    train = RegisteringTrain(registry)
    fn = functools.partial(steps.train_step, train_fn=train)
    with pytest.raises(WorkerLost):
        impl.run_step(ctx, "train", fn, KEY)
    first = registry.versions_of(run_id)
    train.crash = False
    retry = begin_run(settings, run_id, "grader: retried step", "manual__retry", part=part)
    record, _ = run_step(impl, retry, "train", fn)
    versions = registry.versions_of(run_id)
    assert versions == first and len(versions) == 1, (
        f"expected one version registered by run {run_id} after the retry ({first}), got {versions}"
    )
    assert (train.calls, str(record.get("version"))) == (1, first[0]), (
        f"expected the retry to reuse version {first[0]} without training again, got "
        f"{train.calls} trainings and version {record.get('version')!r} in train.json"
    )
