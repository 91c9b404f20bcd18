"""The retraining pipeline's test bed for tests: a home with a base training set and v1 as
@champion; traffic and versions come from mlops_lab.labs.testbed (the lab 3 scenarios use it too).

    from ..support.pipeline import lab_fixture, settings_fixture, serve   # fixtures by name: lab, settings
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_lab.data.generator import generate
from mlops_lab.data.io import write_frame
from mlops_lab.labs.testbed import PIPELINE_SETTINGS, log_traffic, versions_of_run
from mlops_lab.lifecycle.release import train_and_release
from mlops_lab.settings import Settings

from ..conftest import make_settings

__all__ = ["BASE_ROWS", "lab_fixture", "serve", "settings_fixture", "versions_of_run"]

BASE_ROWS = 12_000

serve = log_traffic  # serve(settings, scenario, n, *, seed, labelled=None): logged now, labelled at once


@pytest.fixture(scope="module", name="lab")
def lab_fixture(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A home with a base training set and v1 (trained on it) as @champion.

    The gate's margins are loosened (testbed.PIPELINE_SETTINGS): with about 100 frauds in a
    holdout, PR-AUC moves by a few hundredths between two equally good models, and these tests are
    about the pipeline (test_lifecycle tests the gate). The failing-gate test in test_pipeline.py
    uses an unreachable recall floor.
    """
    home = tmp_path_factory.mktemp("pipeline")
    s = make_settings(home, **PIPELINE_SETTINGS)
    s = s.model_copy(update={"tracking_uri": s.mlflow_sqlite_uri})
    base = generate("baseline", BASE_ROWS, seed=1)
    write_frame(base, home / "data" / "train.parquet")
    rel = train_and_release(s, base, promote=True, actor="tests", reason="fixture")
    assert rel.promoted, rel.verdict.summary()
    return s


@pytest.fixture(name="settings")
def settings_fixture(lab: Settings, tmp_path: Path) -> Settings:
    """The module's registry with a fresh prediction store per test."""
    return lab.model_copy(update={"store_url": f"sqlite:///{tmp_path / 'store.db'}"})
