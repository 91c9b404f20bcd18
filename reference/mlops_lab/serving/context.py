"""What a route handler works with: the holder, the settings, and the server's written plumbing.

    python -c "import mlops_lab.serving.context as c; help(c.ServerContext)"

`create_app` builds one `ServerContext` per app and hands it to the handlers
(`mlops_lab.serving.handlers`, or lab 1's exercises/lab1/handlers.py). Scoring with its latency
measured and logging a prediction (metrics, the bounded queue of the prediction log) happen here,
so a handler only decides what the client and the orchestrator see.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mlops_lab.serving.holder import LoadedModel, ModelHolder
from mlops_lab.serving.metrics import ServerMetrics
from mlops_lab.settings import Settings, Variant
from mlops_lab.store.db import utcnow
from mlops_lab.store.writer import BatchWriter

ANSWER_FIELDS = ("request_id", "model_version", "score", "decision", "variant")


@dataclass(frozen=True)
class ServerContext:
    settings: Settings
    variant: Variant
    holder: ModelHolder  # holder.current: the model to score with (None until one is loaded)
    metrics: ServerMetrics
    writer: BatchWriter

    def score(self, model: LoadedModel, features: dict[str, Any]) -> tuple[float, float]:
        """(score, latency in ms) of one row, scored by `model`."""
        start = time.perf_counter()
        score = model.score_one(features)
        if self.settings.inject_latency_ms:
            # the lab1/slow-model scenario: a slow model blocks the worker
            time.sleep(self.settings.inject_latency_ms / 1000)
        return score, (time.perf_counter() - start) * 1000

    def row(
        self, model: LoadedModel, request_id: str, features: dict[str, Any], score: float, latency_ms: float
    ) -> dict[str, Any]:
        """The prediction log's row for one scored request (the decision applies the model's
        threshold); the prediction is counted in the metrics."""
        decision = score >= model.threshold
        self.metrics.observe_prediction(model.version, score, decision)
        return {
            "request_id": request_id,
            "ts": utcnow(),
            "variant": self.variant,
            "model_version": model.version,
            "features": features,
            "score": score,
            "decision": decision,
            "latency_ms": latency_ms,
        }

    def log_prediction(
        self, model: LoadedModel, request_id: str, features: dict[str, Any], score: float, latency_ms: float
    ) -> dict[str, Any] | None:
        """Queue the prediction for the log. Returns its row, or None when the log's bounded
        queue is full: the row was not taken (the drop is counted) and must not be acknowledged."""
        row = self.row(model, request_id, features, score, latency_ms)
        if not self.writer.submit(row):
            self.count_drop()
            return None
        return row

    def count_drop(self) -> None:
        """One request refused because the prediction log was full (mlops_store_drops_total)."""
        self.metrics.store_drops.labels(self.variant).inc()

    @staticmethod
    def answer(row: dict[str, Any]) -> dict[str, Any]:
        """What the client gets back for a logged row: request_id, model_version, score, decision, variant."""
        return {k: row[k] for k in ANSWER_FIELDS}
