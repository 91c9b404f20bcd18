"""The Airflow 3 DAG `retrain_fraud_detector`: a thin shell over `mlops_lab.pipeline.steps`.

    mlops-lab retrain                      # runs it locally with `airflow dags test` (pipeline.run)
    # by hand, once a `mlops-lab retrain` has migrated var/airflow and written its dags folder:
    export AIRFLOW_HOME=var/airflow AIRFLOW__CORE__LOAD_EXAMPLES=False
    airflow dags test retrain_fraud_detector -c '{"reason": "drift"}'

One task per step. Each task calls `steps.run_step` with the pipeline run id (`params.run_id`
when given, which resumes that run; else this DAG run's id made safe for paths), the trigger's
reason and the data window (`params.window_start`/`window_end` for a manual run or a backfill;
a scheduled run's `data_interval_start`/`data_interval_end` from the task context, the Airflow 3
names), so Airflow and the in-process runner share one implementation and one run directory.
Settings come from the environment (MLOPS_* variables; the trigger passes its own). A step that
refuses to go on (bad data, failed gate) fails its task without retries; the reason is in the
task log and in the run directory's failed.json.

Importing this module defines the DAG and nothing else: the steps (MLflow, pandas, sklearn)
are imported inside the tasks, so parsing the file stays fast.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from mlops_lab.pipeline.rundir import DAG_ID


def _run(step: str) -> dict[str, Any]:
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_lab.lifecycle.tracking import configure_mlflow_env
    from mlops_lab.pipeline.rundir import sanitize_run_id
    from mlops_lab.pipeline.steps import run_step
    from mlops_lab.pipeline.validate import PipelineStopped
    from mlops_lab.settings import get_settings

    configure_mlflow_env()
    settings = get_settings()
    part: Any = None  # the reference's modules
    if settings.pipeline_impl != "reference":  # the labs: the learner's code plays its exercises
        from mlops_lab.labs.impl import part_of

        learner = settings.pipeline_learner
        part = part_of(settings.pipeline_impl, None if learner is None else learner.split(","))
    context = get_current_context()
    params = context["params"]
    dag_run_id = str(context["dag_run"].run_id)
    run_id = sanitize_run_id(str(params.get("run_id") or dag_run_id))
    try:
        outputs, _ = run_step(
            settings,
            run_id,
            step,
            reason=str(params["reason"]),
            dag_run_id=dag_run_id,
            params=params,
            airflow_context=context,
            **({"part": part} if part is not None else {}),
        )
    except PipelineStopped as stop:  # an outcome, not a flake: retrying cannot help
        raise AirflowFailException(str(stop)) from stop
    return outputs


@dag(
    dag_id=DAG_ID,
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["mlops-lab", "retraining"],
    params={
        "reason": Param("manual retrain", type="string", description="why (lineage tag, audit log)"),
        "run_id": Param("", type="string", description="pipeline run to resume; empty: this DAG run"),
        "window_start": Param("", type="string", description="data window start, ISO 8601 (a backfill)"),
        "window_end": Param("", type="string", description="data window end, exclusive, ISO 8601"),
    },
    default_args={"retries": 0, "execution_timeout": timedelta(minutes=30)},
    doc_md=__doc__,
)
def retrain_fraud_detector() -> None:
    @task
    def extract() -> dict[str, Any]:
        return _run("extract")

    @task
    def validate() -> dict[str, Any]:
        return _run("validate")

    @task
    def train() -> dict[str, Any]:
        return _run("train")

    @task
    def evaluate() -> dict[str, Any]:
        return _run("evaluate")

    @task
    def register() -> dict[str, Any]:
        return _run("register")

    @task
    def stage_challenger() -> dict[str, Any]:
        return _run("stage_challenger")

    extract() >> validate() >> train() >> evaluate() >> register() >> stage_challenger()


retrain_dag = retrain_fraud_detector()
