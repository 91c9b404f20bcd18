"""The retraining pipeline's steps: plain, idempotent functions over a run directory.

    python -m mlops_lab.pipeline.steps --reason "drift on amount"          # all steps, in-process
    python -m mlops_lab.pipeline.steps --run-id RUN_ID --reason "..."      # resume a crashed run
    mlops-lab retrain --in-process                                          # the same, from the CLI

extract -> validate -> train -> evaluate -> register -> stage_challenger. Each finished step
writes `<step>.json` in `home/pipeline/runs/<run_id>/` (see `rundir`); running the same run id
again skips finished steps, so a crashed run resumes where it stopped and never registers a
second version. A step that refuses to go on (bad data, a failed gate) raises `PipelineStopped`
and records why in `failed.json`; the Airflow DAG (`pipeline.dag`) and the Kubernetes Job call
the same functions, through `run_step`.

  extract           the base training set (home/data/train.parquet, if any) plus the stable
                    variant's predictions in the run's data window whose delayed labels have
                    arrived (training.parquet); the newest `pipeline_recent_rows` predictions of
                    the window, labelled or not (recent.parquet). A window with fewer than
                    `pipeline_min_window_rows` predictions stops the run (`pipeline.window`)
  validate          the new production rows against the champion's reference (pipeline.validate)
  train             fit, log and register a version with lineage tags (lifecycle.train), unless
                    an earlier attempt of this run registered one (`attempt.version_of_run`)
  evaluate          the gate against the champion; the canary expectation (both models score
                    recent.parquet) as the version tag `canary_expectation`
  register          mark the version a candidate (tag gate_passed, description)
  stage_challenger  move @challenger to it (audited, actor "pipeline") if @champion is still the
                    version the run started from (`guard.stage_challenger`, a compare-and-set)

The lab 3 exercises are seams of this pipeline: `ctx.part(name)` is the module that plays each of
attempt, window, validate and guard (the reference's, or the learner's with `--impl exercises`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from mlops_lab.canary.judgement import Expectation
from mlops_lab.data.io import fingerprint, read_frame, write_frame
from mlops_lab.data.schema import ENTITY, LABEL, SCHEMA
from mlops_lab.lifecycle.model import scores
from mlops_lab.lifecycle.release import Evaluate, SetAlias, Train, gate_version
from mlops_lab.lifecycle.tracking import CHALLENGER, CHAMPION, client_for, version_by_alias
from mlops_lab.lifecycle.train import (
    HOLDOUT_ARTIFACT,
    REFERENCE_ARTIFACT,
    load_model,
    load_run_frame,
    threshold_of,
)
from mlops_lab.pipeline.rundir import (
    RUN_FILE,
    STEPS,
    Part,
    PipelineResult,
    RunContext,
    begin_run,
    input_key,
    new_run_id,
    read_json,
    read_result,
)
from mlops_lab.pipeline.validate import PipelineStopped, ValidationFailed
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

log = logging.getLogger(__name__)

# Fewer rows than this is not a training set: the run stops at extract instead of fitting noise.
MIN_TRAIN_ROWS = 1_000
# The canary expectation needs production-like rows; with fewer recent predictions than this
# (a retrain before any traffic), the new version's holdout stands in for them.
MIN_EXPECTATION_ROWS = 200
EXPECTATION_TAG = "canary_expectation"
_PREDICTION_COLUMNS = ("id", "variant", "model_version", "score", "decision", "latency_ms")
# The modules the lab 3 exercises mirror: steps reach them through ctx.part(...).
ATTEMPT, WINDOW = "mlops_lab.pipeline.attempt", "mlops_lab.pipeline.window"
VALIDATE, GUARD = "mlops_lab.pipeline.validate", "mlops_lab.pipeline.guard"
EXPECTATION = "mlops_lab.canary.expectation"  # lab 5: what the canary should look like online


class GateFailed(PipelineStopped):
    """The evaluation gate refused the new version; no challenger is staged."""

    def __init__(self, detail: str) -> None:
        super().__init__("evaluate", "gate", detail)


# ---------------------------------------------------------------- steps
def extract(ctx: RunContext) -> dict[str, Any]:
    s = ctx.settings
    champion = version_by_alias(client_for(s), s.model_name, CHAMPION)
    base_path = s.home / "data" / "train.parquet"
    base = read_frame(base_path).drop(columns=[ENTITY], errors="ignore") if base_path.exists() else None
    store = Store(s.resolved_store_url)
    try:
        served, labels = store.predictions_frame(variant="stable"), store.labels_frame()
    finally:
        store.dispose()
    window = ctx.part(WINDOW)
    served = window.rows_in_window(served, ctx.window)
    window.require_rows(len(served), ctx.window, s.pipeline_min_window_rows)
    served = served.drop(columns=[c for c in _PREDICTION_COLUMNS if c in served.columns])
    arrived = labels[["request_id", "label"]].drop_duplicates("request_id").rename(columns={"label": LABEL})
    new = served.merge(arrived, on="request_id", how="inner") if not served.empty else pd.DataFrame()
    recent = served.tail(s.pipeline_recent_rows)
    parts = [f.drop(columns=["request_id", "ts"], errors="ignore") for f in (base, new) if f is not None]
    training = _ordered(pd.concat(parts, ignore_index=True)) if parts else pd.DataFrame()
    for name, frame in (("new", new), ("recent", recent), ("training", training)):
        write_frame(_parquet_safe(frame), ctx.dir / f"{name}.parquet")
    training = read_frame(ctx.dir / "training.parquet")  # fingerprint what the next steps will read
    outputs = {
        "parent_version": str(champion.version) if champion is not None else None,
        "base_rows": 0 if base is None else len(base),
        "base_path": str(base_path) if base is not None else None,
        "new_rows": len(new),
        "recent_rows": len(recent),
        "window": ctx.window.to_json(),
        "training_rows": len(training),
        "data_fingerprint": fingerprint(training),
    }
    if len(training) < MIN_TRAIN_ROWS:
        raise PipelineStopped(
            "extract",
            "no_data",
            f"{len(training):,} training rows (base {outputs['base_rows']:,}, "
            f"labelled production {len(new):,}); at least {MIN_TRAIN_ROWS:,} needed",
        )
    return outputs


def validate(ctx: RunContext) -> dict[str, Any]:
    s = ctx.settings
    new, recent = read_frame(ctx.dir / "new.parquet"), read_frame(ctx.dir / "recent.parquet")
    production = pd.concat([new, recent], ignore_index=True)
    if "request_id" in production.columns:
        production = production.drop_duplicates("request_id")
    parent = ctx.outputs("extract")["parent_version"]
    reference = None
    if parent is not None:
        run = client_for(s).get_model_version(s.model_name, parent).run_id
        reference = load_run_frame(s, str(run), REFERENCE_ARTIFACT)
    # The newest rows alone first: a recent upstream break is diluted in all the labelled rows.
    for rows, training in ((recent, None), (production, read_frame(ctx.dir / "training.parquet"))):
        report = ctx.part(VALIDATE).validate_rows(
            rows, reference, max_null_fraction=s.monitor_max_null_fraction, training=training
        )
        if not report.passed:
            raise ValidationFailed.from_report(report)
    return {"production_rows": report.rows, "checked": list(report.checked), "summary": report.summary()}


def train_step(ctx: RunContext, *, train_fn: Train | None = None) -> dict[str, Any]:
    s = ctx.settings
    train_fn = train_fn or ctx.part("mlops_lab.lifecycle.train").train
    client = client_for(s)
    extracted = ctx.outputs("extract")
    existing = ctx.part(ATTEMPT).version_of_run(s, ctx.run_id)
    if existing is not None:  # registered by an attempt that crashed before writing train.json
        mv = client.get_model_version(s.model_name, existing)
        log.info("run %s already registered v%s; not training again", ctx.run_id, existing)
        tags = _complete_version_tags(client, s.model_name, mv)
        return {
            "version": existing,
            "mlflow_run_id": mv.run_id,
            "data_fingerprint": tags.get("data_fingerprint"),
        }
    data = read_frame(ctx.dir / "training.parquet")[[*SCHEMA.names, LABEL]]
    lineage = {
        "trigger_reason": ctx.reason[:500],
        "parent_version": extracted["parent_version"] or "none",
        "dag_run_id": ctx.dag_run_id,
        "pipeline_run_id": ctx.run_id,
    }
    result = train_fn(s, data, lineage=lineage)
    return {
        "version": result.version,
        "mlflow_run_id": result.run_id,
        "data_fingerprint": result.data_fingerprint,
        "threshold": result.threshold,
        "metrics": result.metrics,
    }


def evaluate(ctx: RunContext, *, evaluate_fn: Evaluate | None = None) -> dict[str, Any]:
    s = ctx.settings
    evaluate_fn = evaluate_fn or ctx.part("mlops_lab.lifecycle.gate").evaluate
    client = client_for(s)
    version = ctx.outputs("train")["version"]
    verdict, champion = gate_version(s, version, evaluate_fn=evaluate_fn)
    client.set_model_version_tag(s.model_name, version, "gate", verdict.summary()[:500])
    if not verdict.passed:
        raise GateFailed("; ".join(verdict.reasons))
    outputs: dict[str, Any] = {"gate": verdict.summary(), "champion_version": champion, "expectation": None}
    if champion is None:  # the first version: there is no stable model for a canary to differ from
        return outputs
    rows, source = read_frame(ctx.dir / "recent.parquet"), "recent production"
    if len(rows) < MIN_EXPECTATION_ROWS:
        mv = client.get_model_version(s.model_name, version)
        rows, source = load_run_frame(s, str(mv.run_id), HOLDOUT_ARTIFACT), "holdout"
    features = rows[SCHEMA.names]
    champion_tags = dict(client.get_model_version(s.model_name, champion).tags or {})
    version_tags = dict(client.get_model_version(s.model_name, version).tags or {})
    expectation = ctx.part(EXPECTATION).expectation_from_scores(
        scores(load_model(s, champion), features),
        scores(load_model(s, version), features),
        threshold_of(champion_tags),
        threshold_of(version_tags),
    )
    client.set_model_version_tag(s.model_name, version, EXPECTATION_TAG, expectation.to_json())
    client.set_model_version_tag(
        s.model_name, version, f"{EXPECTATION_TAG}_source", f"{source} ({len(rows)} rows)"
    )
    return {**outputs, "expectation": expectation.to_json(), "expectation_source": source}


def register(ctx: RunContext) -> dict[str, Any]:
    s = ctx.settings
    client = client_for(s)
    version = ctx.outputs("train")["version"]
    client.set_model_version_tag(s.model_name, version, "gate_passed", "true")
    client.update_model_version(
        s.model_name, version, description=f"candidate from pipeline run {ctx.run_id}: {ctx.reason}"[:1000]
    )
    return {"version": version}


def stage_challenger(ctx: RunContext, *, set_alias_fn: SetAlias | None = None) -> dict[str, Any]:
    s = ctx.settings
    set_alias = set_alias_fn or ctx.part("mlops_lab.lifecycle.registry").set_alias
    client = client_for(s)
    version = ctx.outputs("train")["version"]

    def move() -> None:
        store = Store(s.resolved_store_url)
        try:
            set_alias(
                client,
                store,
                s.model_name,
                CHALLENGER,
                version,
                actor="pipeline",
                reason=ctx.reason,
                action="stage",
            )
        finally:
            store.dispose()

    parent = ctx.outputs("extract")["parent_version"]
    previous = ctx.part(GUARD).stage_challenger(client, s, version, parent, move)
    return {"version": version, "alias": CHALLENGER, "previous": previous}


STEP_FUNCTIONS: dict[str, Callable[[RunContext], dict[str, Any]]] = {
    "extract": extract,
    "validate": validate,
    "train": train_step,
    "evaluate": evaluate,
    "register": register,
    "stage_challenger": stage_challenger,
}
assert tuple(STEP_FUNCTIONS) == STEPS


# ---------------------------------------------------------------- running
def run_step(
    settings: Settings,
    run_id: str,
    step: str,
    *,
    reason: str,
    dag_run_id: str | None = None,
    params: Mapping[str, Any] | None = None,
    airflow_context: Mapping[str, Any] | None = None,
    part: Part = importlib.import_module,
) -> tuple[dict[str, Any], bool]:
    """Run one step unless it already finished for what it reads. Returns (its outputs, whether
    it was skipped). A PipelineStopped or any other exception is recorded in failed.json and
    re-raised (`attempt.run_step`)."""
    ctx = begin_run(
        settings, run_id, reason, dag_run_id, params=params, airflow_context=airflow_context, part=part
    )
    index = STEPS.index(step)
    before = read_json(ctx.dir / (RUN_FILE if index == 0 else f"{STEPS[index - 1]}.json"))
    inputs = {"window": ctx.window.to_json()} if index == 0 else dict(before or {})
    log.info("run %s: %s ...", run_id, step)
    outputs, skipped = part(ATTEMPT).run_step(
        ctx, step, STEP_FUNCTIONS[step], input_key(run_id, step, inputs)
    )
    log.info("run %s: %s %s", run_id, step, "already finished, skipped" if skipped else "done")
    return outputs, skipped


def run_pipeline(
    settings: Settings,
    run_id: str,
    reason: str,
    *,
    dag_run_id: str | None = None,
    params: Mapping[str, Any] | None = None,
    part: Part = importlib.import_module,
) -> PipelineResult:
    """Every step in order, in this process. A stop is a result; a crash propagates (recorded).
    `params` may give the data window (window_start, window_end) of a new run."""
    skipped: list[str] = []
    for step in STEPS:
        try:
            _, was_done = run_step(
                settings, run_id, step, reason=reason, dag_run_id=dag_run_id, params=params, part=part
            )
        except PipelineStopped as stop:
            log.info("run %s stopped: %s", run_id, stop)
            break
        if was_done:
            skipped.append(step)
    return read_result(settings, run_id, skipped=tuple(skipped))


def load_expectation(settings: Settings, version: str) -> Expectation | None:
    """The canary expectation the evaluate step recorded on `version` (None when there is none)."""
    mv = client_for(settings).get_model_version(settings.model_name, str(version))
    text = (mv.tags or {}).get(EXPECTATION_TAG)
    return Expectation.from_json(text) if text else None


# ---------------------------------------------------------------- helpers
def _complete_version_tags(client: Any, name: str, mv: Any) -> dict[str, str]:
    """The version's tags, completed from its MLflow run: an attempt killed between registering
    the version and tagging it leaves a version without its decision threshold (the gate would
    judge it at 0.5) and lineage. Tags already on the version are kept."""
    tags = dict(mv.tags or {})
    run = client.get_run(mv.run_id).data
    wanted = {k: v for k, v in run.tags.items() if not k.startswith("mlflow.")}
    if "decision_threshold" in run.params:
        wanted["decision_threshold"] = f"{float(run.params['decision_threshold']):.6f}"
    for key, value in wanted.items():
        if key not in tags:
            client.set_model_version_tag(name, mv.version, key, value)
            tags[key] = value
    return tags


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    first = [c for c in [*SCHEMA.names, LABEL] if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]]


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns that mix types (a producer that sends `hour` as text) become text, so the file is
    written and validate reports the break instead of the writer crashing on it."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object and out[col].dropna().map(type).nunique() > 1:
            out[col] = out[col].map(lambda v: v if v is None or v != v else str(v))  # keep nulls
    return out


def _main() -> None:
    from mlops_lab.lifecycle.tracking import configure_mlflow_env
    from mlops_lab.settings import get_settings

    parser = argparse.ArgumentParser(description="Run the retraining pipeline in this process.")
    parser.add_argument("--run-id", default=None, help="resume this run (default: a new run)")
    parser.add_argument("--reason", default="manual retrain")
    parser.add_argument("--window-start", default="", help="ISO 8601 with a time zone (a backfill)")
    parser.add_argument("--window-end", default="", help="ISO 8601 with a time zone (a backfill)")
    args = parser.parse_args()
    configure_mlflow_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    params = {"window_start": args.window_start, "window_end": args.window_end}
    result = run_pipeline(get_settings(), args.run_id or new_run_id(), args.reason, params=params)
    print(result.summary())
    raise SystemExit(0 if result.ok else 1)


if __name__ == "__main__":
    _main()
