"""Run one retraining: through a local Airflow (`airflow dags test`), or in this process.

    mlops-lab retrain --reason "drift on amount"      # Airflow, AIRFLOW_HOME=var/airflow
    mlops-lab retrain --in-process                    # the same steps without Airflow

Only one run at a time: a non-blocking lock on `home/pipeline/retrain.lock` makes a second
trigger fail at once with `RetrainAlreadyRunning` (the monitor and a user may both ask;
`pipeline.guard`).

The local Airflow lives under `home/airflow`: its own SQLite metadata database (`airflow db
migrate` runs once; a stamp file remembers it per Airflow version), a dags folder with a
one-line file that imports `mlops_lab.pipeline.dag`, examples off. Each run is one `airflow
dags test` process, whose output goes to `home/logs/retrain-<run_id>.log`; the tasks run
inside that process (no scheduler, no executor). The child gets this process's settings as
MLOPS_* variables. The outcome is read back from the run directory, never parsed from the log.
The dags-folder file also applies `pipeline.airflow_compat` (Airflow 3.2.2 vs the locked fastapi, svcs).
Who calls it, and how the cluster does the same with a Job: `pipeline.trigger`.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from mlops_lab.errors import UserError
from mlops_lab.pipeline.rundir import (
    DAG_ID,
    Part,
    PipelineResult,
    new_run_id,
    read_json,
    read_result,
    run_dir,
)
from mlops_lab.pipeline.steps import run_pipeline
from mlops_lab.settings import Settings, child_env

log = logging.getLogger(__name__)

# A run trains, gates and scores in a minute or two here; this only bounds a hung Airflow.
AIRFLOW_TIMEOUT_S = 1_800.0
DAG_SHIM = '''"""Written by mlops_lab.pipeline.run: the airflow dag lives in mlops_lab.pipeline.dag."""

from mlops_lab.pipeline import airflow_compat

airflow_compat.apply()  # airflow 3.2.2 with the locked fastapi and svcs: see that module

from mlops_lab.pipeline.dag import retrain_dag  # noqa: E402, F401
'''


class RetrainError(UserError):
    """Airflow itself failed (migration, DAG import) before the pipeline recorded an outcome."""


def retrain(
    settings: Settings,
    reason: str,
    *,
    in_process: bool = False,
    run_id: str | None = None,
    params: Mapping[str, Any] | None = None,
    part: Part = importlib.import_module,
) -> PipelineResult:
    """Run the pipeline once (a new run, or resume `run_id`) and return its outcome.

    `params` may give a new run's data window (window_start, window_end: a backfill). `part`
    names the module playing each reference module (in-process only: an Airflow run imports the
    reference). Raises RetrainAlreadyRunning when another retrain holds the lock, RetrainError
    when Airflow failed before any step recorded an outcome. A step that stopped the run (bad
    data, failed gate) is a result with status "stopped", not an exception.
    """
    with part("mlops_lab.pipeline.guard").retrain_lock(settings):
        run_id = run_id or new_run_id("retrain")
        run_dir(settings, run_id)  # refuses an id that is not a safe folder name
        if in_process:
            return run_pipeline(settings, run_id, reason, params=params, part=part)
        return run_with_airflow(settings, run_id, reason, params=params)


def airflow_home(settings: Settings) -> Path:
    return (settings.home / "airflow").resolve()


def airflow_env(settings: Settings) -> dict[str, str]:
    """The child's environment: ours without MLOPS_*/AIRFLOW_*, then the settings and Airflow's."""
    home = airflow_home(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AIRFLOW"))}
    env.update(child_env(settings))
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        }
    )
    return env


def prepare_airflow(settings: Settings, log_file: Path) -> None:
    """The dags folder and, once per Airflow version, `airflow db migrate`."""
    home = airflow_home(settings)
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    shim = dags / f"{DAG_ID}.py"
    if not shim.exists() or shim.read_text() != DAG_SHIM:
        shim.write_text(DAG_SHIM)
    stamp = home / "migrated.json"
    airflow_version = package_version("apache-airflow")
    if (read_json(stamp) or {}).get("airflow") == airflow_version:
        return
    took = _airflow(settings, ["db", "migrate"], log_file)
    if took is None:
        raise RetrainError(f"airflow db migrate failed; see {log_file}")
    stamp.write_text(json.dumps({"airflow": airflow_version, "migrate_s": round(took, 1)}))


def run_with_airflow(
    settings: Settings, run_id: str, reason: str, *, params: Mapping[str, Any] | None = None
) -> PipelineResult:
    log_file = settings.home / "logs" / f"retrain-{run_id}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    prepare_airflow(settings, log_file)
    before = read_result(settings, run_id)
    conf = json.dumps({"reason": reason, "run_id": run_id, **(params or {})})
    shim = str(airflow_home(settings) / "dags" / f"{DAG_ID}.py")
    took = _airflow(settings, ["dags", "test", DAG_ID, "--conf", conf, "--dagfile-path", shim], log_file)
    result = read_result(settings, run_id, skipped=before.done, log=log_file)
    if result.status == "incomplete":
        what = "failed" if took is None else "finished"
        raise RetrainError(
            f"airflow dags test {what} without a pipeline outcome (run {run_id}); see {log_file}"
        )
    log.info("run %s: %s (airflow dags test %.1f s)", run_id, result.status, took or -1.0)
    return result


def _airflow(settings: Settings, args: list[str], log_file: Path) -> float | None:
    """Run `airflow ARGS` with its output appended to `log_file`; seconds taken, None on failure."""
    argv = [sys.executable, "-m", "airflow", *args]
    start = time.monotonic()
    with open(log_file, "a") as out:
        out.write(f"$ airflow {' '.join(args)}\n")
        out.flush()
        try:
            returncode = subprocess.run(
                argv,
                env=airflow_env(settings),
                cwd=airflow_home(settings),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=AIRFLOW_TIMEOUT_S,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            returncode = -1
            out.write(f"# killed after {AIRFLOW_TIMEOUT_S:.0f} s\n")
        took = time.monotonic() - start
        out.write(f"# exit {returncode} after {took:.1f} s\n")
    return took if returncode == 0 else None
