"""Statistical quality of drift detection and the retraining trigger (part of `make bench`).

    .venv/bin/python -m mlops_lab.bench.drift [--null-windows 500] [--power-windows 100]

Writes $MLOPS_HOME/bench/drift.json and drift.md. Windows of 500 rows from the generator are
compared with a 5,000-row training reference through the lab's Evidently adapter (the same
call the monitor makes), and the window verdicts go through the real trigger policy:

  false alarms   no-drift windows: retraining triggers (goal: none), and how often the
                 dataset-drift verdict fires. The baseline is Evidently's default: its
                 DataDriftPreset decides dataset drift as DriftedColumnsCount(drift_share=0.5)
                 over the default per-column tests, which is exactly what our adapter
                 computes (same call, same numbers), and the naive "alert when any column
                 drifts" rule that hand-rolled monitors use.
  power          a 0.5 SD shift of each of the model's top-3 numeric features: how often the
                 column is flagged, and how often the window counts towards a trigger (its
                 drifted columns carry >= min_importance_share of the importance).
  irrelevant     `irrelevant_drift` windows (device_os drifts, which the model ignores): they
                 must never trigger.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd

from mlops_lab.bench.canary import clopper_pearson_upper
from mlops_lab.bench.report import write_outputs
from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.lifecycle.model import Hyperparams, build_pipeline
from mlops_lab.monitoring.drift import detect_drift
from mlops_lab.monitoring.importance import feature_importance
from mlops_lab.monitoring.policy import TriggerPolicy
from mlops_lab.monitoring.simulate import shifted, stream, verdict_of, windows_of
from mlops_lab.settings import get_settings

WINDOW_ROWS = 500
REFERENCE_ROWS = 5_000


def _stream(
    windows: list[pd.DataFrame], reference: pd.DataFrame, importance: dict[str, float], policy: TriggerPolicy
) -> dict[str, Any]:
    """Run windows through the Evidently adapter (the monitor's call) and the policy."""
    drifts = [detect_drift(reference, window) for window in windows]
    result, _ = stream(policy, (verdict_of(d, importance) for d in drifts))
    summary = result.summary()
    n = result.windows
    return {
        "windows": n,
        "triggers": summary["triggers"],
        "dataset_drift_rate": summary["dataset_drift_rate"],
        "dataset_drift_upper95": clopper_pearson_upper(result.dataset_drift, n),
        "any_column_rate": summary["any_column_rate"],
        "counted_towards_trigger_rate": summary["counted_rate"],
        "columns_flagged": summary["columns_flagged"],
    }


def run(null_windows: int = 500, power_windows: int = 100) -> dict[str, Any]:
    t0 = time.monotonic()
    s = get_settings()
    policy = TriggerPolicy.from_settings(s)
    train = generate("baseline", 20_000, seed=1)
    model = build_pipeline(Hyperparams()).fit(train[SCHEMA.names], train[SCHEMA.label])
    reference = features_only(generate("baseline", REFERENCE_ROWS, seed=2))
    importance = feature_importance(model, reference)
    nulls = windows_of(features_only(generate("baseline", null_windows * WINDOW_ROWS, seed=3)), WINDOW_ROWS)
    out: dict[str, Any] = {
        "settings": {
            "window_rows": WINDOW_ROWS,
            "reference_rows": REFERENCE_ROWS,
            "consecutive_windows": policy.consecutive_windows,
            "min_importance_share": policy.min_importance_share,
        },
        "importance": {k: round(v, 4) for k, v in sorted(importance.items(), key=lambda kv: -kv[1])},
        "null": _stream(nulls, reference, importance, policy),
    }
    numeric = [c for c in out["importance"] if c in SCHEMA.numeric]
    power: dict[str, Any] = {}
    for feature in numeric[:3]:
        pool = features_only(generate("baseline", power_windows * WINDOW_ROWS, seed=4))
        windows = windows_of(shifted(pool, feature, 0.5, reference), WINDOW_ROWS)
        res = _stream(windows, reference, importance, policy)
        res["column_detection_rate"] = res["columns_flagged"].get(feature, 0) / power_windows
        res["importance"] = importance[feature]
        power[feature] = res
    out["power_0.5sd"] = power
    irrelevant = features_only(generate("irrelevant_drift", power_windows * WINDOW_ROWS, seed=5))
    out["irrelevant"] = _stream(windows_of(irrelevant, WINDOW_ROWS), reference, importance, policy)
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


def goals(doc: dict[str, Any]) -> list[dict[str, Any]]:
    null, irr = doc["null"], doc["irrelevant"]
    rows = [
        {
            "goal": "no-drift windows: zero retraining triggers",
            "measured": f"{null['triggers']} of {null['windows']}",
            "met": null["triggers"] == 0,
        },
        {
            "goal": "no-drift windows: dataset alarms <= 1%",
            "measured": f"{null['dataset_drift_rate']:.2%} (95% upper {null['dataset_drift_upper95']:.2%})",
            "met": null["dataset_drift_rate"] <= 0.01,
        },
    ]
    for feature, r in doc["power_0.5sd"].items():
        rows.append(
            {
                "goal": f"0.5 SD shift in {feature} detected >= 90%",
                "measured": f"{r['column_detection_rate']:.0%} of {r['windows']} windows",
                "met": r["column_detection_rate"] >= 0.9,
            }
        )
    rows.append(
        {
            "goal": "irrelevant_drift never triggers",
            "measured": f"{irr['triggers']} of {irr['windows']}",
            "met": irr["triggers"] == 0,
        }
    )
    return rows


def markdown(doc: dict[str, Any]) -> str:
    st, null = doc["settings"], doc["null"]
    lines = [
        "# Drift detection and the retraining trigger",
        "",
        f"Command: `.venv/bin/python -m mlops_lab.bench.drift` (part of `make bench`), {doc['seconds']} s. "
        f"Windows of {st['window_rows']} rows vs a {st['reference_rows']}-row reference; trigger after "
        f"{st['consecutive_windows']} windows whose drifted columns carry >= "
        f"{st['min_importance_share']:.0%} of the champion's importance.",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        *[f"| {g['goal']} | {g['measured']} | {'yes' if g['met'] else '**no**'} |" for g in doc["goals"]],
        "",
        "## No drift: what each rule would have alarmed on",
        "",
        "| rule | windows alarmed |",
        "|---|---|",
        f"| Evidently default (DataDriftPreset: >= 50% of columns) | {null['dataset_drift_rate']:.2%} |",
        f"| naive: any column drifted | {null['any_column_rate']:.2%} |",
        f"| window counts towards a trigger | {null['counted_towards_trigger_rate']:.2%} |",
        f"| retraining triggered (K in a row) | {null['triggers']} of {null['windows']} |",
        "",
        f"Columns flagged on no-drift windows: {null['columns_flagged'] or 'none'}.",
        "",
        "## Power: a 0.5 SD shift of a top-3 numeric feature",
        "",
        "| feature | importance | column flagged | window counts towards a trigger | triggers |",
        "|---|---|---|---|---|",
    ]
    for feature, r in doc["power_0.5sd"].items():
        lines.append(
            f"| {feature} | {r['importance']:.1%} | {r['column_detection_rate']:.0%} | "
            f"{r['counted_towards_trigger_rate']:.0%} | {r['triggers']} |"
        )
    irr = doc["irrelevant"]
    lines += [
        "",
        f"Irrelevant drift: columns flagged {irr['columns_flagged']}, windows counted "
        f"{irr['counted_towards_trigger_rate']:.0%}, triggers {irr['triggers']} of {irr['windows']}.",
        "",
        "Importance (permutation, share of the model's attention): "
        + ", ".join(f"{k} {v:.1%}" for k, v in doc["importance"].items())
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--null-windows", type=int, default=500)
    parser.add_argument("--power-windows", type=int, default=100)
    args = parser.parse_args()
    doc = run(args.null_windows, args.power_windows)
    doc["goals"] = goals(doc)
    write_outputs("drift", doc, markdown(doc))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
