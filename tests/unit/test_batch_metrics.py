"""A batch's predictions in the metrics (serving/context.py): counted once per batch, as observing
them one by one counts them (the sum of the scores up to its last bits: added once, not row by row)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlops_lab.serving.context import ServerContext
from mlops_lab.serving.metrics import SCORE_BUCKETS, ServerMetrics


@pytest.mark.parametrize("odd", [[], [math.nan]])
def test_a_batch_is_counted_as_its_rows_one_by_one(odd: list[float]) -> None:
    # On the bucket bounds, between them, at 0 and 1, past the last one, and NaN (in no bucket).
    scores = [*SCORE_BUCKETS, *(b - 1e-9 for b in SCORE_BUCKETS), 0.0, 0.015, 0.5, 1.0, 1.5, *odd]
    decisions = [s >= 0.5 for s in scores]
    one_by_one, at_once = ServerMetrics("canary"), ServerMetrics("canary")
    for score, decision in zip(scores, decisions, strict=True):
        one_by_one.observe_prediction("7", score, decision)
    ctx = ServerContext(None, "canary", None, at_once, None)  # type: ignore[arg-type]
    ctx.observe_predictions("7", scores, decisions)
    ctx.observe_predictions("7", [], [])
    got, expected = samples(at_once), samples(one_by_one)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if key[0].endswith("_sum"):  # added once rather than row by row: the last bits may differ
            assert math.isnan(value) or math.isclose(got[key], value, rel_tol=1e-12), key
        else:
            assert repr(got[key]) == repr(value), key


def samples(metrics: ServerMetrics) -> dict[tuple[str, Any], float]:
    """Every sample's value by name and labels (children come out in the order they were made)."""
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }
