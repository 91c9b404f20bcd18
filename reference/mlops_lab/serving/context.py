"""What a route handler works with: the holder, the settings, and the server's written plumbing.

    python -c "import mlops_lab.serving.context as c; help(c.ServerContext)"

`create_app` builds one `ServerContext` per app and hands it to the handlers
(`mlops_lab.serving.handlers`, or lab 1's exercises/lab1/handlers.py). Scoring with its latency
measured and logging a prediction (metrics, the bounded queue of the prediction log) happen here,
so a handler only decides what the client and the orchestrator see. A batch request is logged
as one block (`log_batch`): one submit to the writer, all its rows or none.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops_lab.serving.holder import LoadedModel, ModelHolder
from mlops_lab.serving.metrics import ServerMetrics
from mlops_lab.settings import Settings, Variant
from mlops_lab.store.block import PredictionBlock
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

    def log_batch(
        self,
        model: LoadedModel,
        request_ids: Sequence[str],
        features: Mapping[str, Sequence[Any]],
        scores: Sequence[float],
        latency_ms: float,
    ) -> PredictionBlock | None:
        """Queue a scored batch for the log, all of its rows in one submit. Returns the block
        (its decisions apply the model's threshold), or None when the log's queue has no room
        for all of them: nothing was taken (the drop is counted) and nothing may be acknowledged.
        Its predictions are counted in the metrics once taken."""
        threshold = model.threshold
        block = PredictionBlock(
            request_ids=request_ids,
            ts=utcnow(),
            variant=self.variant,
            model_version=model.version,
            features=features,
            scores=scores,
            decisions=[s >= threshold for s in scores],
            latency_ms=latency_ms,
        )
        if not self.writer.submit_batch(block):
            self.count_drop()
            return None
        self.observe_predictions(model.version, block.scores, block.decisions)
        return block

    def observe_predictions(self, version: str, scores: Sequence[float], decisions: Sequence[bool]) -> None:
        """What `metrics.observe_prediction` counts for each of them, counted once per batch."""
        positives = sum(decisions)
        for decision, n in ((True, positives), (False, len(decisions) - positives)):
            if n:
                self.metrics.predictions.labels(self.variant, version, str(decision).lower()).inc(n)
        histogram = self.metrics.score.labels(self.variant, version)
        bounds = getattr(histogram, "_upper_bounds", None)
        buckets = getattr(histogram, "_buckets", None)
        total = getattr(histogram, "_sum", None)
        if bounds is None or buckets is None or total is None:  # not the client library this was written for
            for score in scores:
                histogram.observe(score)
            return
        # Histogram.observe adds the value to the sum and 1 to the first bucket whose bound is
        # >= the value; a batch adds its sum once and each bucket's count once (prometheus_client
        # has no public call for that, and 1,000 observe() calls cost ~1 us a row).
        values = np.asarray(scores, dtype=float)
        total.inc(float(values.sum()))
        counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(buckets))
        for i, n in enumerate(counts[: len(buckets)].tolist()):  # past the last bound: NaN, like observe
            if n:
                buckets[i].inc(n)

    @staticmethod
    def batch_request_ids(given: Sequence[str | None]) -> list[str]:
        """The batch's request ids: a row's own, else 32 hex digits as uuid4().hex has: the time
        (ns, 16 digits), 8 random ones, the row's index (8). Ids that follow each other append to
        the log's unique index, where 1,000 random uuid4 ids cost SQLite ~5x as much to insert
        (measured with 100,000 rows logged), and the one uuid4 call per batch spares 1,000."""
        if all(rid is not None for rid in given):
            return list(given)  # type: ignore[arg-type]
        prefix = f"{time.time_ns():016x}{uuid.uuid4().hex[:8]}"
        return [rid if rid is not None else f"{prefix}{i:08x}" for i, rid in enumerate(given)]

    def count_drop(self) -> None:
        """One request refused because the prediction log was full (mlops_store_drops_total)."""
        self.metrics.store_drops.labels(self.variant).inc()

    @staticmethod
    def answer(row: dict[str, Any]) -> dict[str, Any]:
        """What the client gets back for a logged row: request_id, model_version, score, decision, variant."""
        return {k: row[k] for k in ANSWER_FIELDS}
