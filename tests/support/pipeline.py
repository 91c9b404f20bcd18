"""The retraining pipeline's test bed: a home with a base training set and v1 as @champion, and
production traffic written to the store as the model server would.

    from ..support.pipeline import lab_fixture, settings_fixture, serve   # fixtures by name: lab, settings
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlops_lab.data.generator import generate
from mlops_lab.data.io import write_frame
from mlops_lab.data.schema import ENTITY, LABEL
from mlops_lab.lifecycle.release import train_and_release
from mlops_lab.lifecycle.tracking import client_for
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

from ..conftest import make_settings

BASE_ROWS = 12_000


@pytest.fixture(scope="module", name="lab")
def lab_fixture(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A home with a base training set and v1 (trained on it) as @champion.

    The gate's PR-AUC margins are loosened: with about 100 frauds in a holdout, PR-AUC moves by
    a few hundredths between two equally good models, and these tests are about the pipeline
    (test_lifecycle tests the gate). The failing-gate test below uses an unreachable recall floor.
    """
    home = tmp_path_factory.mktemp("pipeline")
    s = make_settings(home, gate_pr_auc_margin=0.1, gate_slice_margin=0.2, pipeline_recent_rows=500)
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


def serve(settings: Settings, scenario: str, n: int, *, seed: int, labelled: int | None = None) -> None:
    """Write `n` stable-variant predictions of `scenario` as the server would, and the delayed
    labels of the first `labelled` of them (default: all)."""
    frame = generate(scenario, n, seed=seed)
    features = frame.drop(columns=[ENTITY, LABEL])
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for i, record in enumerate(features.to_dict("records")):
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
        rows.append(
            {
                "request_id": f"{scenario}-{seed}-{i}",
                "ts": now,
                "variant": "stable",
                "model_version": "1",
                "features": clean,
                "score": 0.02,
                "decision": False,
                "latency_ms": 1.0,
            }
        )
    store = Store(settings.resolved_store_url)
    try:
        store.insert_predictions(rows)
        k = n if labelled is None else labelled
        store.insert_labels(
            [
                {"request_id": r["request_id"], "ts": now, "label": int(y)}
                for r, y in zip(rows[:k], frame[LABEL][:k], strict=True)
            ]
        )
    finally:
        store.dispose()


def versions_of_run(settings: Settings, run_id: str) -> list[str]:
    client = client_for(settings)
    return [
        str(v.version)
        for v in client.search_model_versions(f"name = '{settings.model_name}'")
        if (v.tags or {}).get("pipeline_run_id") == run_id
    ]
