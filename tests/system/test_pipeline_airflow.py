"""The retraining pipeline as a user and the monitor run it: one real `airflow dags test` run,
and `mlops-lab retrain` as a subprocess (one-line errors for a stop and a held lock).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mlops_lab.lifecycle.tracking import CHALLENGER, client_for, version_by_alias
from mlops_lab.pipeline import guard, run
from mlops_lab.settings import Settings

from ..support.pipeline import lab_fixture, serve, settings_fixture  # noqa: F401 (the fixtures lab and settings)


def test_cli_retrain_reports_a_stop_and_a_held_lock_in_one_line(settings: Settings) -> None:
    serve(settings, "unit_bug", 600, seed=14)
    env = {
        "PATH": "/usr/bin:/bin",
        "OMP_NUM_THREADS": "1",
        "MLOPS_HOME": str(settings.home),
        "MLOPS_TRACKING_URI": str(settings.tracking_uri),
        "MLOPS_STORE_URL": str(settings.store_url),
        "MLOPS_MLFLOW_PORT": str(settings.mlflow_port),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "mlops_lab.cli", "retrain", "--in-process", *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)

    stopped = cli("--reason", "drift on amount")
    assert stopped.returncode == 1, (stopped.stdout, stopped.stderr)
    assert "unit_bug" in stopped.stderr and "Traceback" not in stopped.stderr + stopped.stdout
    assert len(stopped.stderr.strip().splitlines()) == 1, stopped.stderr

    with guard.retrain_lock(settings):
        busy = cli()
    assert busy.returncode == 1 and "already running" in busy.stderr, busy.stderr
    assert "Traceback" not in busy.stderr


# ---------------------------------------------------------------- Airflow (the slow one)
def test_airflow_dags_test_stages_a_challenger_with_the_learners_code(
    settings: Settings, tmp_path: Path
) -> None:
    """One real `airflow db migrate` + `airflow dags test retrain_fraud_detector` under tmp.

    MLOPS_PIPELINE_IMPL reaches the DAG's tasks: a learner's validate plays the step (what the
    monitor hands Airflow in `make demo IMPL=exercises`); then a backfill window reaches extract."""
    serve(settings, "covariate_shift", 2_000, seed=15)
    learner = tmp_path / "learner"
    (learner / "exercises" / "lab3").mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    (learner / "exercises" / "lab3" / "validate.py").write_text(
        "from mlops_lab.pipeline.validate import *  # noqa: F403\n"
        "from mlops_lab.pipeline import validate as reference\n\n\n"
        "def validate_rows(*args, **kwargs):\n"
        f"    with open({str(calls)!r}, 'a') as out:\n"
        "        out.write('called\\n')\n"
        "    return reference.validate_rows(*args, **kwargs)\n"
    )
    s = settings.model_copy(update={"pipeline_impl": str(learner), "pipeline_learner": "validation-gate"})
    result = run.retrain(s, "drift (through airflow)")
    assert result.ok, (result.summary(), (result.log.read_text()[-3000:] if result.log else ""))
    assert result.log is not None and result.log.exists()
    assert str(result.log).startswith(str(settings.home))
    assert calls.read_text().count("called") >= 1  # the learner's validate_rows ran in the task
    tags = dict(client_for(settings).get_model_version(settings.model_name, str(result.version)).tags or {})
    assert tags["dag_run_id"].startswith("manual__"), tags
    assert tags["trigger_reason"] == "drift (through airflow)"
    assert tags["pipeline_run_id"] == result.run_id
    challenger = version_by_alias(client_for(settings), settings.model_name, CHALLENGER)
    assert challenger is not None and str(challenger.version) == result.version

    window = {"window_start": "2020-01-01T00:00:00+00:00", "window_end": "2020-01-02T00:00:00+00:00"}
    empty = run.retrain(settings, "backfill of an empty day", params=window)
    assert (empty.status, empty.step, empty.stop_reason) == ("stopped", "extract", "empty_window"), empty
