"""lab2/nondeterministic-training: two trainings on the same data differ.

    make scenario S=lab2/nondeterministic-training [IMPL=exercises]

Trains three versions on the *same* data: two with the same seed, one with another seed (what
an unpinned `random_state` gives you). Compares what a byte-level check sees (artifact hashes)
with what matters (scores and decisions), and shows what the lineage tags pin.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import mlflow
import numpy as np

from mlops_lab.data.generator import generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.scenarios import Context
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle.tracking import client_for


def run(ctx: Context) -> None:
    train = ctx.module("tracked-run").train
    ctx.settings = ctx.settings.model_copy(update={"tracking_uri": ctx.settings.mlflow_sqlite_uri})
    data = generate("baseline", 6_000, seed=1)
    probe = generate("baseline", 3_000, seed=99)[SCHEMA.names]
    ctx.inject("train three times on identical data: seeds 42, 42 and 7 (an unpinned seed)")
    results = [train(ctx.settings, data, params=fraud_model.Hyperparams(seed=seed)) for seed in (42, 42, 7)]
    client = client_for(ctx.settings)
    models, digests, fingerprints = [], [], []
    for r in results:
        mv = client.get_model_version(ctx.settings.model_name, r.version)
        fingerprints.append(mv.tags.get("data_fingerprint"))
        path = mlflow.artifacts.download_artifacts(f"models:/{ctx.settings.model_name}/{r.version}")
        files = sorted(p for p in Path(path).rglob("*") if p.is_file())
        blob = b"".join(f.read_bytes() for f in files if f.name.endswith((".skops", ".pkl")))
        digests.append(hashlib.sha256(blob).hexdigest()[:12])
        models.append(mlflow.sklearn.load_model(f"models:/{ctx.settings.model_name}/{r.version}"))
    scores = [fraud_model.scores(m, probe) for m in models]
    decisions = [s >= r.threshold for s, r in zip(scores, results, strict=True)]

    ctx.symptom(f"model artifact sha256: v1 {digests[0]}, v2 {digests[1]}, v3 {digests[2]}")
    ctx.signal(f"the data fingerprint tag is the same on all three: {len(set(fingerprints)) == 1}")
    same = float(np.max(np.abs(scores[0] - scores[1])))
    other = float(np.max(np.abs(scores[0] - scores[2])))
    flips = float(np.mean(decisions[0] != decisions[2]))
    ctx.signal(
        f"same seed: max score difference {same:.2e}; other seed: {other:.2e}, {flips:.2%} decisions flip"
    )
    ctx.check(len(set(fingerprints)) == 1, "the lineage tag proves the data was identical")
    ctx.check(same <= 1e-9, "same code + data + seed: identical behaviour (compare scores, not bytes)")
    ctx.check(other > same, "a different seed gives a different model from the same data")
    ctx.check(results[0].metrics["pr_auc"] > 0 and results[2].metrics["pr_auc"] > 0, "both are valid models")
    pr_aucs = " vs ".join(f"{r.metrics['pr_auc']:.3f}" for r in (results[0], results[2]))
    ctx.info(f"holdout PR-AUC, seed 42 vs seed 7: {pr_aucs} (the seed also picks the holdout split)")
    ctx.mitigate(
        "pin seeds, the lock and the data fingerprint; compare behaviour within a tolerance, not bytes"
    )
