"""Train a version, gate it against the current champion, and (optionally) promote it.

    mlops-lab train --data var/data/train.parquet --promote

The first version has no champion to beat: it is promoted when the gate's champion-free
checks (schema, recall floor, latency) pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from mlops_lab.lifecycle import gate, registry
from mlops_lab.lifecycle.tracking import CHAMPION, client_for, version_by_alias
from mlops_lab.lifecycle.train import (
    HOLDOUT_ARTIFACT,
    TrainResult,
    load_model,
    load_run_frame,
    threshold_of,
    train,
)
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

# What a flow calls, so that it can be given another implementation (lab 2's exercises).
Train = Callable[..., TrainResult]  # train.train(settings, data, *, params=None, lineage=None)
Evaluate = Callable[..., gate.GateVerdict]  # gate.evaluate, same arguments
Promote = Callable[..., str | None]  # registry.promote(client, store, name, version, *, actor, reason)
SetAlias = Callable[..., str | None]  # registry.set_alias(client, store, name, alias, version, *, ...)


@dataclass(frozen=True)
class Release:
    trained: TrainResult
    verdict: gate.GateVerdict
    champion_before: str | None
    promoted: bool


def gate_version(
    settings: Settings, version: str, *, evaluate_fn: Evaluate = gate.evaluate
) -> tuple[gate.GateVerdict, str | None]:
    """Evaluate `version` against the current champion on `version`'s own holdout (with `evaluate_fn`)."""
    client = client_for(settings)
    mv = client.get_model_version(settings.model_name, version)
    holdout = load_run_frame(settings, str(mv.run_id), HOLDOUT_ARTIFACT)
    challenger = load_model(settings, version)
    champion_mv = version_by_alias(client, settings.model_name, CHAMPION)
    champion = champion_threshold = None
    if champion_mv is not None and str(champion_mv.version) != version:
        champion = load_model(settings, str(champion_mv.version))
        champion_threshold = threshold_of(dict(champion_mv.tags or {}))
    signature = getattr(challenger, "feature_names_in_", None)
    verdict = evaluate_fn(
        settings,
        challenger,
        threshold_of(dict(mv.tags or {})),
        holdout,
        champion=champion,
        champion_threshold=champion_threshold or 0.5,
        signature_columns=list(signature) if signature is not None else None,
    )
    return verdict, (str(champion_mv.version) if champion_mv is not None else None)


def train_and_release(
    settings: Settings,
    data: pd.DataFrame,
    *,
    promote: bool,
    actor: str,
    reason: str,
    lineage: dict[str, str] | None = None,
    train_fn: Train = train,
    evaluate_fn: Evaluate = gate.evaluate,
    promote_fn: Promote = registry.promote,
) -> Release:
    """Train a version, gate it, tag it with the verdict, and promote it when asked and it passed.

    `train_fn`, `evaluate_fn` and `promote_fn` default to the reference's `train.train`,
    `gate.evaluate` and `registry.promote`; lab 2's exercises provide the same three, so a flow
    can run with the learner's code.
    """
    trained = train_fn(settings, data, lineage=lineage)
    verdict, champion_before = gate_version(settings, trained.version, evaluate_fn=evaluate_fn)
    client = client_for(settings)
    client.set_model_version_tag(settings.model_name, trained.version, "gate", verdict.summary()[:500])
    promoted = False
    if promote and verdict.passed:
        store = Store(settings.resolved_store_url)
        try:
            promote_fn(client, store, settings.model_name, trained.version, actor=actor, reason=reason)
        finally:
            store.dispose()
        promoted = True
    return Release(trained, verdict, champion_before, promoted)
