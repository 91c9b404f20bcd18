"""Delayed labels: chargebacks arrive long after the prediction, as in real card fraud.

The label of a served request is drawn from the ground truth of its features, with a
per-request seed (so asking twice gives the same answer) and an exponential delay.

    mlops-lab data labels            # write every label that has "arrived" by now into the store
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from mlops_lab.data.generator import fraud_probability
from mlops_lab.store.db import Store, utcnow


@dataclass(frozen=True)
class DelayedLabel:
    request_id: str
    label: int
    arrives_at: datetime


def _unit_draws(request_ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Two uniform draws per request id, stable across processes and runs."""
    digests = [hashlib.blake2b(rid.encode(), digest_size=16).digest() for rid in request_ids]
    a = np.array([int.from_bytes(d[:8], "little") for d in digests], dtype=np.float64) / 2**64
    b = np.array([int.from_bytes(d[8:], "little") for d in digests], dtype=np.float64) / 2**64
    return a, b


def delayed_labels(
    predictions: pd.DataFrame, mean_delay_s: float, concept: str = "baseline"
) -> Iterator[DelayedLabel]:
    """Yield a label with its arrival time for each prediction row.

    `predictions` needs request_id, ts (datetime) and the schema's features.
    """
    if predictions.empty:
        return
    label_draw, delay_draw = _unit_draws(predictions["request_id"])
    labels = (label_draw < fraud_probability(predictions, concept)).astype(int)
    delays = -np.log1p(-delay_draw) * mean_delay_s  # exponential via the inverse CDF
    for rid, ts, label, delay in zip(
        predictions["request_id"], predictions["ts"], labels, delays, strict=True
    ):
        yield DelayedLabel(
            str(rid), int(label), pd.Timestamp(ts).to_pydatetime() + timedelta(seconds=float(delay))
        )


def deliver_arrived(store: Store, mean_delay_s: float, concept: str = "baseline") -> tuple[int, int]:
    """Store every label whose arrival time has passed. Returns (added, still in flight)."""
    pending = store.unlabeled_predictions()
    now = utcnow().replace(tzinfo=None)
    arrived = [
        {"request_id": lab.request_id, "ts": lab.arrives_at, "label": lab.label}
        for lab in delayed_labels(pending, mean_delay_s, concept)
        if lab.arrives_at.replace(tzinfo=None) <= now
    ]
    return store.insert_labels(arrived), len(pending) - len(arrived)
