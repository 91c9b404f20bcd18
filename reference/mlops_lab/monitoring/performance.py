"""Realized performance from labels that arrive late, and the label-free estimate meanwhile.

    python -m mlops_lab.monitoring.performance    # realized vs estimated on three scenarios, ~4 s

A fraud label is a chargeback: it arrives days to weeks after the prediction, sometimes twice,
sometimes corrected. Two views of a window of predictions:

  realized   precision and recall on the rows whose label has arrived, joined by request_id,
             one label per request (the latest delivery); not measured (None) until at least
             `min_coverage` of the window is labelled, because the first labels of a window are
             a small sample, and in a real card network a biased one (chargebacks of frauds
             come first; "not fraud" is only known once the dispute window has closed).
  estimate   what calibrated scores predict with no label at all: E[label | score] = score, so
             the expected frauds among the flagged rows are the sum of their scores. It is
             there from the first minute, and it is right only while P(label | features) is
             the one the model learned: a fraud wave (prior shift) or a new fraud tactic
             (concept drift) changes exactly that, and only realized numbers show it.

The monitor (monitoring.window, monitoring.service) reports both; `_main` shows where they part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd


@dataclass(frozen=True)
class Realized:
    """Precision and recall on the labelled part of a window (None where undefined)."""

    labelled: int  # rows of the window whose label has arrived
    coverage: float  # labelled share of the window's predictions
    positives: int  # labelled rows that are frauds
    flagged: int  # labelled rows the model flagged
    precision: float | None  # None when no labelled row was flagged
    recall: float | None  # None when no labelled row is a fraud


@dataclass(frozen=True)
class Estimate:
    """What calibrated scores predict without labels: E[label | score] = score."""

    positive_rate: float  # mean score: the expected fraud rate of the window
    flagged_rate: float
    precision: float | None  # mean score of the flagged rows; None when none was flagged
    recall: float | None  # expected frauds among flagged / expected frauds; None when no score mass


def latest_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """One label per request_id: request_id and label of its latest delivery.

    `labels` has request_id, label and, when known, ts (the arrival time); without ts the later
    row is the later delivery. A re-delivery that agrees changes nothing; one that disagrees is a
    correction, and the correction wins: a chargeback can be reversed when the merchant proves
    the purchase (representment), and a transaction first reported clean can be disputed weeks
    later. The later message is what the bank knows now.
    """
    if "ts" in labels.columns:
        # A stable sort keeps deliveries with the same ts in their row order. The store returns
        # rows in no promised order, so the frame's order alone is not the arrival order.
        labels = labels.sort_values("ts", kind="stable")
    return labels.drop_duplicates("request_id", keep="last")[["request_id", "label"]]


def realized(
    decisions: pd.DataFrame, labels: pd.DataFrame | None, *, min_coverage: float = 0.0
) -> Realized | None:
    """Realized precision/recall of a window: `decisions` (request_id, flagged: one row per
    prediction of the window) against the `labels` that have arrived (request_id, label, maybe
    ts; re-delivered, and for other windows too).

    None when no prediction of the window is labelled, or fewer than `min_coverage` of them:
    an unmatured window is not measured.
    """
    if labels is None or labels.empty or decisions.empty:
        return None
    # An inner join: a row whose label has not arrived is unknown, not a legitimate purchase
    # (counting it as one would inflate precision's misses and deflate recall's). Labels of
    # other windows find no partner and drop out.
    joined = decisions[["request_id", "flagged"]].merge(latest_labels(labels), on="request_id", how="inner")
    coverage = len(joined) / len(decisions)  # over the window's predictions, not over the labels
    if joined.empty or coverage < min_coverage:
        return None
    truth = joined["label"].to_numpy(dtype=int) == 1
    hit = joined["flagged"].to_numpy(dtype=bool)
    tp, n_flagged, n_pos = int((truth & hit).sum()), int(hit.sum()), int(truth.sum())
    return Realized(
        labelled=len(joined),
        coverage=coverage,
        positives=n_pos,
        flagged=n_flagged,
        precision=tp / n_flagged if n_flagged else None,
        recall=tp / n_pos if n_pos else None,
    )


def estimate(scores: npt.ArrayLike, flagged: npt.ArrayLike) -> Estimate:
    """The label-free estimate of a window from its calibrated scores and what was flagged.

    Raises ValueError for an empty window or arrays of different lengths.
    """
    score = np.asarray(scores, dtype=float)
    hit = np.asarray(flagged, dtype=bool)
    if score.size == 0 or score.shape != hit.shape:
        raise ValueError(f"expected as many flags as scores, at least one; got {hit.size} and {score.size}")
    # Each row is a fraud with probability score: expected frauds are sums of scores.
    expected_frauds = float(score.sum())
    caught = float(score[hit].sum())
    return Estimate(
        positive_rate=float(score.mean()),
        flagged_rate=float(hit.mean()),
        precision=caught / int(hit.sum()) if hit.any() else None,
        recall=caught / expected_frauds if expected_frauds > 0 else None,
    )


def _main() -> None:
    from datetime import UTC, datetime, timedelta

    from mlops_lab.data.generator import generate
    from mlops_lab.data.labels import delayed_labels
    from mlops_lab.data.schema import SCHEMA
    from mlops_lab.lifecycle.model import Hyperparams, budget_threshold, build_pipeline, scores

    train = generate("baseline", 20_000, seed=1)
    model = build_pipeline(Hyperparams()).fit(train[SCHEMA.names], train[SCHEMA.label])
    threshold = budget_threshold(scores(model, train[SCHEMA.names]), 0.05)
    start, rows, mean_delay_s = datetime(2026, 1, 1, tzinfo=UTC), 20_000, 3_600.0

    def show(p: float | None) -> str:
        return "  n/a" if p is None else f"{p:5.3f}"

    print(f"{rows} predictions a window, one a second; labels arrive after {mean_delay_s:.0f} s on average")
    print(f"{'scenario':14} {'labels at':>10} {'coverage':>9} {'realized P / R':>15} {'estimate P / R':>15}")
    for scenario in ("baseline", "prior_shift", "concept_drift"):
        window = generate(scenario, rows, seed=2)
        window["request_id"] = [f"{scenario}-{i}" for i in range(rows)]
        window["ts"] = [start + timedelta(seconds=i) for i in range(rows)]
        window["flagged"] = scores(model, window[SCHEMA.names]) >= threshold
        # Arrival times from the label feed; the values are the scenario's own draws (is_fraud),
        # the exact truth of these rows (delayed_labels with concept=scenario would redraw them
        # from the same P(label | features)).
        arrives = [label.arrives_at for label in delayed_labels(window, mean_delay_s)]
        feed = pd.DataFrame(
            {"request_id": window["request_id"], "ts": arrives, "label": window[SCHEMA.label]}
        )
        guess = estimate(scores(model, window[SCHEMA.names]), window["flagged"])
        end = start + timedelta(seconds=rows)
        for after in (timedelta(0), timedelta(hours=2), timedelta(hours=6)):
            got = realized(window, feed[feed["ts"] <= end + after])
            measured = f"{show(got.precision)} / {show(got.recall)}" if got else "    -"
            print(
                f"{scenario:14} {'+' + str(after):>10} {(got.coverage if got else 0.0):9.0%} "
                f"{measured:>15} {show(guess.precision)} / {show(guess.recall)}"
            )


if __name__ == "__main__":
    _main()
