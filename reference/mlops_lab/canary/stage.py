"""Recording a candidate's canary expectation and staging it as @challenger.

    python -m mlops_lab.canary.stage 3     # record v3's expectation on baseline traffic, stage it

The evaluate step of the pipeline calls `record_expectation` on recent production rows; a
hand-trained candidate goes through the same function before `stage`. Both models score the
*same* rows as the candidate's offline world sees them: that is the point. A candidate whose
offline data differs from what serving sends (a unit change in the warehouse export, a
feature computed differently online) looks as expected offline and shows its skew only in
the canary, which is what the judge compares against.
"""

from __future__ import annotations

import importlib

import pandas as pd

from mlops_lab.canary.controller import EXPECTATION, EXPECTATION_TAG
from mlops_lab.canary.judgement import Expectation
from mlops_lab.data.schema import SCHEMA
from mlops_lab.errors import UserError
from mlops_lab.lifecycle import registry
from mlops_lab.lifecycle.model import scores
from mlops_lab.lifecycle.tracking import CHALLENGER, CHAMPION, client_for, version_by_alias
from mlops_lab.lifecycle.train import load_model, threshold_of
from mlops_lab.parts import Part
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store


def record_expectation(
    settings: Settings,
    version: str,
    features: pd.DataFrame,
    candidate_features: pd.DataFrame | None = None,
    part: Part = importlib.import_module,
) -> Expectation:
    """Score the same rows with @champion and `version`; store the expectation as a version tag.

    `candidate_features` are those rows as the candidate's offline pipeline presents them, when
    that differs from `features` (the default: it does not). A candidate whose offline pipeline
    converts a unit the serving path does not looks as expected here and skewed online. `part`
    says whose `expectation_from_scores` measures it (a learner's lab 5 code, in the scenarios).
    """
    client = client_for(settings)
    name = settings.model_name
    champion = version_by_alias(client, name, CHAMPION)
    if champion is None:
        raise UserError(f"no @{CHAMPION} to compare v{version} with")
    candidate = client.get_model_version(name, version)
    offline = features if candidate_features is None else candidate_features
    if len(offline) != len(features):
        raise ValueError("candidate_features must hold the same rows as features")
    expectation = part(EXPECTATION).expectation_from_scores(
        scores(load_model(settings, str(champion.version)), features[SCHEMA.names]),
        scores(load_model(settings, version), offline[SCHEMA.names]),
        threshold_of(dict(champion.tags or {})),
        threshold_of(dict(candidate.tags or {})),
    )
    client.set_model_version_tag(name, version, EXPECTATION_TAG, expectation.to_json())
    return expectation


def load_expectation(settings: Settings, version: str) -> Expectation | None:
    tags = client_for(settings).get_model_version(settings.model_name, version).tags or {}
    text = tags.get(EXPECTATION_TAG)
    return Expectation.from_json(text) if text else None


def stage(settings: Settings, version: str, *, actor: str, reason: str) -> str | None:
    """Point @challenger at `version` (audited); the controller rolls it out from there."""
    store = Store(settings.resolved_store_url)
    try:
        return registry.set_alias(
            client_for(settings),
            store,
            settings.model_name,
            CHALLENGER,
            version,
            actor=actor,
            reason=reason,
            action="stage",
        )
    finally:
        store.dispose()


def _main() -> None:
    import sys

    from mlops_lab.data.generator import features_only, generate
    from mlops_lab.settings import get_settings

    s = get_settings()
    version = sys.argv[1]
    print(
        record_expectation(s, version, features_only(generate("baseline", 2_000, seed=s.seed + 5))).describe()
    )
    stage(s, version, actor=registry.default_actor(), reason="manual stage")
    print(f"@challenger -> v{version}")


if __name__ == "__main__":
    _main()
