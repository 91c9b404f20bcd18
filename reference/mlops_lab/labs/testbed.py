"""The retraining pipeline's test bed: production traffic logged to the store as the model server
logs it, and the model versions a run registered. Used by the lab 3 scenarios
(`Context.pipeline_home`) and the pipeline tests.

    python -m mlops_lab.labs.testbed      # logs a little traffic into a throwaway store, reads it back

The pipeline reads what serving wrote: one row per prediction of the stable variant, its features
as served (NaN as null, as JSON has no NaN), and the delayed labels that arrive later.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from mlops_lab.data.generator import generate
from mlops_lab.data.schema import ENTITY, LABEL
from mlops_lab.lifecycle.tracking import client_for
from mlops_lab.settings import Settings, get_settings
from mlops_lab.store.db import Store

# A challenger's holdout holds base rows the champion was fitted on, so two equally good models
# differ by a few hundredths of PR-AUC there: runs about the pipeline (not the gate, which lab 2
# and tests/unit/test_lifecycle.py test) loosen the margins; the evaluate step scores the newest
# 500 rows for the canary expectation.
PIPELINE_SETTINGS: dict[str, Any] = {
    "gate_pr_auc_margin": 0.1,
    "gate_slice_margin": 0.2,
    "pipeline_recent_rows": 500,
}


def log_traffic(
    settings: Settings,
    scenario: str,
    n: int,
    *,
    seed: int,
    labelled: int | None = None,
    at: datetime | None = None,
    span: timedelta = timedelta(0),
    label_delay: timedelta = timedelta(0),
) -> pd.DataFrame:
    """Log `n` stable-variant predictions of the generator's `scenario`, spread evenly from `at`
    (default now) over `span`, and the labels of the first `labelled` of them (default all),
    arriving `label_delay` after each prediction. Returns the generated rows (with labels)."""
    frame = generate(scenario, n, seed=seed)
    start = at or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for i, record in enumerate(frame.drop(columns=[ENTITY, LABEL]).to_dict("records")):
        features = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
        rows.append(
            {
                "request_id": f"{scenario}-{seed}-{i}",
                "ts": start + span * (i / n),
                "variant": "stable",
                "model_version": "1",
                "features": features,
                "score": 0.02,
                "decision": False,
                "latency_ms": 1.0,
            }
        )
    k = n if labelled is None else labelled
    labels = [
        {"request_id": r["request_id"], "ts": r["ts"] + label_delay, "label": int(y)}
        for r, y in zip(rows[:k], frame[LABEL][:k], strict=True)
    ]
    store = Store(settings.resolved_store_url)
    try:
        store.insert_predictions(rows)
        store.insert_labels(labels)
    finally:
        store.dispose()
    return frame


def versions(settings: Settings) -> list[str]:
    """Every version of the model, oldest first."""
    found = client_for(settings).search_model_versions(f"name = '{settings.model_name}'")
    return sorted((str(v.version) for v in found), key=int)


def versions_of_run(settings: Settings, run_id: str) -> list[str]:
    """The versions registered by pipeline run `run_id`: tagged pipeline_run_id on the version, or,
    for a version whose tags a killed attempt never set, on the MLflow run it was registered from."""
    client = client_for(settings)
    out = []
    for mv in client.search_model_versions(f"name = '{settings.model_name}'"):
        tags = dict(mv.tags or {})
        if tags.get("pipeline_run_id") == run_id or (
            "pipeline_run_id" not in tags
            and mv.run_id is not None
            and client.get_run(mv.run_id).data.tags.get("pipeline_run_id") == run_id
        ):
            out.append(str(mv.version))
    return sorted(out, key=int)


def _main() -> None:
    import tempfile
    from pathlib import Path

    home = Path(tempfile.mkdtemp(prefix="mlops-lab-testbed-"))
    settings = get_settings(home=home, store_url=f"sqlite:///{home / 'store.db'}")
    settings.ensure_dirs()
    log_traffic(settings, "baseline", 100, seed=1, labelled=60, span=timedelta(hours=1))
    store = Store(settings.resolved_store_url)
    try:
        served, labels = store.predictions_frame(), store.labels_frame()
    finally:
        store.dispose()
    print(
        f"{len(served)} predictions from {served['ts'].min()} to {served['ts'].max()}; {len(labels)} labels"
    )


if __name__ == "__main__":
    _main()
