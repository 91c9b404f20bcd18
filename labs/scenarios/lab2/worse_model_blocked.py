"""lab2/worse-model-blocked: a retrain on bad data is stopped by the evaluation gate.

    make scenario S=lab2/worse-model-blocked [IMPL=exercises]

An upstream bug shuffles the fraud labels of the training extract. Training succeeds and the
model looks like any other version; only the gate, comparing it with the champion on the same
holdout, sees that it is worse. @champion must not move, and the verdict stays on the version.
"""

from __future__ import annotations

from mlops_lab.data.generator import generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.scenarios import Context
from mlops_lab.lifecycle.release import gate_version
from mlops_lab.lifecycle.tracking import CHAMPION, client_for, version_by_alias
from mlops_lab.lifecycle.train import load_model, threshold_of


def run(ctx: Context) -> None:
    gate, tracked = ctx.module("evaluation-gate"), ctx.module("tracked-run")
    s = ctx.settings = ctx.settings.model_copy(update={"tracking_uri": ctx.settings.mlflow_sqlite_uri})
    v1 = ctx.train_champion()
    bad = generate("baseline", 6_000, seed=2)
    bad[SCHEMA.label] = bad[SCHEMA.label].sample(frac=1.0, random_state=0).to_numpy()
    ctx.inject("the training extract's labels are shuffled by an upstream join bug")
    v2 = tracked.train(s, bad, lineage={"trigger_reason": "scheduled"})
    ctx.symptom(f"v{v2.version} trained without error (holdout PR-AUC {v2.metrics['pr_auc']:.3f})")

    # What the pipeline's evaluate step does: both models on v2's own holdout, with this gate.
    verdict, _ = gate_version(s, v2.version, evaluate_fn=gate.evaluate)
    ctx.signal(f"gate vs champion v{v1}: {verdict.summary()[:160]}")
    ctx.check(not verdict.passed, "the gate fails the worse model")
    client = client_for(s)
    champion, challenger = load_model(s, v1), load_model(s, v2.version)
    champion_threshold = threshold_of(dict(client.get_model_version(s.model_name, v1).tags))
    golden = generate("baseline", 6_000, seed=77)  # a clean, fixed evaluation set shows the real gap
    clean = gate.evaluate(
        s, challenger, v2.threshold, golden, champion=champion, champion_threshold=champion_threshold
    )
    ctx.signal(
        f"on a clean golden set: challenger PR-AUC {clean.challenger['pr_auc']:.3f} "
        f"vs champion {clean.champion['pr_auc']:.3f}"
    )
    current = version_by_alias(client, s.model_name, CHAMPION)
    ctx.check(current is not None and str(current.version) == v1, f"@champion stays on v{v1}")
    ctx.mitigate("promote only through the gate; keep a fixed golden set beside the fresh holdout")
