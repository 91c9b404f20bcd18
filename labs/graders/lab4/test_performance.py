"""Grader of lab 4 / delayed-labels (exercises/lab4/performance.py): performance from late labels.

Real data throughout: windows of 20,000 generated transactions, one a second (about 5.5 hours),
scored by a real model (labs.grading.fit_tiny_model, which flags about 5% of them), and label
arrival times from the label feed, mlops_lab.data.labels.delayed_labels (exponential delays, one
hour on average). The label values are each scenario's own draws (the generator's is_fraud),
the exact truth of these rows: a fraud wave (prior_shift) changes P(fraud | features), which is
why a label feed must be told which world it labels (delayed_labels(..., concept=...)).

First the arithmetic, exact, against truth computed here from the same labels: the rows whose
label arrived, re-deliveries, corrections, other windows' labels, coverage, undefined ratios,
the estimate's expected values. Then the scenarios, each window measured once its labels have
matured (evaluated three hours after its end: about 99% labelled, graded with min_coverage 0.95),
with margins measured with the reference over seeds 0 to 49 (the graded windows use seed 11):

  baseline       the estimate is near realized: |estimate - realized| <= 0.10 for precision and
                 for recall (measured: at most 0.07; the model's top scores run a little high)
  prior_shift    a fraud wave (three times the frauds, same fraud patterns): realized precision
                 rises by more than 0.15 over the baseline window's (measured: 0.20 to 0.31),
                 the estimate by less than 0.05 (measured: 0.00 to 0.03), and realized precision
                 ends more than 0.12 above the estimate (measured: 0.18 to 0.23)
  concept_drift  a new fraud tactic (same features, other labels): the estimate stays within
                 0.04 of the baseline window's (measured: 0.024 at most), while realized
                 precision falls by more than 0.10 and recall by more than 0.15 (measured: at
                 least 0.15 and 0.21), ending more than 0.15 below the estimate (measured: at least 0.21)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_lab.data.generator import generate
from mlops_lab.data.labels import delayed_labels
from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.grading import TinyModel
from mlops_lab.lifecycle.model import scores

ROWS = 20_000  # predictions a window, one a second
NEIGHBOUR = 5_000  # rows of the windows before and after, whose labels share the labels table
MEAN_DELAY_S = 3_600.0  # labels arrive an hour after the prediction, on average
START = datetime(2026, 3, 2, tzinfo=UTC)
SEED = 11  # the graded windows; the margins below hold for every seed from 0 to 49
MATURED = timedelta(hours=3)  # the scenario windows are evaluated this long after their end
MIN_COVERAGE = 0.95  # ...and measured only at this coverage (they reach about 99%)
BASELINE_GAP = 0.10  # |estimate - realized| on baseline, precision and recall
WAVE_RISE = 0.15  # prior_shift: realized precision rises by more than this over baseline's
WAVE_ESTIMATE_RISE = 0.05  # ...the estimated precision by less than this
WAVE_GAP = 0.12  # ...and realized precision ends this far above the estimate
DRIFT_FLAT = 0.04  # concept_drift: the estimate moves by less than this from baseline's
DRIFT_PRECISION_FALL = 0.10  # realized precision falls by more than this
DRIFT_RECALL_FALL = 0.15  # realized recall falls by more than this
DRIFT_GAP = 0.15  # realized precision ends this far below the estimate
EXACT = 1e-9


@dataclass(frozen=True)
class Window:
    """One window of served predictions and its label feed."""

    frame: pd.DataFrame  # request_id, ts, score, flagged, fraud (the scenario's ground truth)
    feed: pd.DataFrame  # request_id, ts (the label's arrival), label: one per prediction

    @property
    def decisions(self) -> pd.DataFrame:
        return self.frame[["request_id", "flagged"]]

    @property
    def end(self) -> datetime:
        return pd.Timestamp(self.frame["ts"].iloc[-1]).to_pydatetime() + timedelta(seconds=1)

    def arrived(self, by: datetime) -> pd.DataFrame:
        """The labels of this window that have arrived by `by`."""
        return self.feed[self.feed["ts"] <= by].reset_index(drop=True)

    def first(self, share: float) -> pd.DataFrame:
        """The first `share` of this window's labels to arrive (the window at that coverage)."""
        return self.feed.sort_values("ts").head(round(share * len(self.feed))).reset_index(drop=True)


@dataclass(frozen=True)
class Expected:
    labelled: int
    coverage: float
    positives: int
    flagged: int
    precision: float | None
    recall: float | None


@pytest.fixture(scope="module")
def window(tiny_model: TinyModel) -> Callable[..., Window]:
    """window(scenario, seed, start, rows): each built once (about 0.3 s for ROWS rows)."""
    cache: dict[tuple[str, int, datetime, int], Window] = {}

    def get(
        scenario: str = "baseline", seed: int = SEED, start: datetime = START, rows: int = ROWS
    ) -> Window:
        key = (scenario, seed, start, rows)
        if key not in cache:
            cache[key] = make_window(tiny_model, scenario, seed, start, rows)
        return cache[key]

    return get


def make_window(tiny: TinyModel, scenario: str, seed: int, start: datetime, rows: int = ROWS) -> Window:
    data = generate(scenario, rows, seed=seed)
    features = data[SCHEMA.names]
    served = pd.DataFrame(
        {
            "request_id": [f"{scenario}-{seed}-{i:05d}" for i in range(rows)],
            "ts": pd.date_range(start, periods=rows, freq="s"),
        }
    )
    score = scores(tiny.pipeline, features)
    frame = served.assign(score=score, flagged=score >= tiny.threshold, fraud=data[SCHEMA.label].to_numpy())
    arrives = [
        label.arrives_at for label in delayed_labels(pd.concat([served, features], axis=1), MEAN_DELAY_S)
    ]
    feed = pd.DataFrame({"request_id": frame["request_id"], "ts": arrives, "label": frame["fraud"]})
    return Window(frame, feed)


# ---------------------------------------------------------------- the grader's own truth
def truth(w: Window, labels: pd.DataFrame, flagged: np.ndarray | None = None) -> Expected:
    """Precision and recall of `w` on the labels given, the slow obvious way: deliveries in
    arrival order, the last one of each request wins, only this window's requests count."""
    latest: dict[str, int] = {}
    for rid, label in zip(
        *(labels.sort_values("ts", kind="stable")[c] for c in ("request_id", "label")), strict=True
    ):
        latest[str(rid)] = int(label)
    hit = w.frame["flagged"].to_numpy() if flagged is None else flagged
    known = np.array([rid in latest for rid in w.frame["request_id"]])
    fraud = np.array([latest.get(rid, 0) == 1 for rid in w.frame["request_id"]])[known]
    hit = hit[known]
    tp = int((fraud & hit).sum())
    return Expected(
        labelled=int(known.sum()),
        coverage=float(known.mean()),
        positives=int(fraud.sum()),
        flagged=int(hit.sum()),
        precision=tp / hit.sum() if hit.any() else None,
        recall=tp / fraud.sum() if fraud.any() else None,
    )


def fields(x: Any) -> dict[str, Any]:
    names = ("labelled", "coverage", "positives", "flagged", "precision", "recall")
    return {n: getattr(x, n, "<missing>") for n in names}


def assert_realized(got: Any, want: Expected, what: str) -> None:
    assert got is not None, f"expected {what} measured as {fields(want)}, got None"
    have = fields(got)
    for name, value in fields(want).items():
        ok = (
            have[name] is None
            if value is None
            else have[name] is not None and have[name] == pytest.approx(value, rel=EXACT, abs=EXACT)
        )
        assert ok, f"expected {what} with {name} {value}, got {have[name]} (in full: {have})"


def redelivered(labels: pd.DataFrame, share: float, later: timedelta, flip: bool, seed: int) -> pd.DataFrame:
    """A second delivery of `share` of the labels, `later` after the first (flipped: a correction)."""
    again = labels.sample(frac=share, random_state=seed)
    return again.assign(ts=again["ts"] + later, label=1 - again["label"] if flip else again["label"])


def shuffled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The rows in no particular order, as a database returns them without ORDER BY."""
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


# ---------------------------------------------------------------- realized: the arithmetic
def test_arrived_labels_only(impl: ModuleType, window: Callable[..., Window]) -> None:
    """realized precision and recall are computed on the rows whose label has arrived

    Join the labels to the window's decisions on request_id and keep only the rows that found a
    label (an inner join): a prediction whose chargeback has not come yet is unknown, not a
    legitimate purchase. labelled counts those rows; coverage is labelled / the window's rows.
    """
    w = window()
    labels = w.arrived(w.end)  # evaluated when the window closes: about 82% labelled
    assert_realized(impl.realized(w.decisions, labels), truth(w, labels), "the window at its end")


def test_redelivered_labels_count_once(impl: ModuleType, window: Callable[..., Window]) -> None:
    """a label delivered twice counts once

    Label feeds re-deliver (a retry, a replay): keep one label per request_id before joining
    (drop_duplicates on request_id), or every duplicate counts its prediction twice.
    """
    w = window()
    labels = w.arrived(w.end)
    twice = shuffled(pd.concat([labels, redelivered(labels, 0.3, timedelta(days=1), False, 1)]), 2)
    assert_realized(
        impl.realized(w.decisions, twice), truth(w, labels), "the window with 30% of its labels twice"
    )


def test_correction_wins(impl: ModuleType, window: Callable[..., Window]) -> None:
    """a corrected label wins: the latest delivery (by arrival time) counts

    A chargeback can be reversed, and a clean transaction disputed weeks later: the later message
    is what is known now. The ts column is the arrival time and the rows come in no particular
    order: sort by ts (a stable sort) and keep the last delivery of each request_id.
    """
    w = window()
    labels = w.arrived(w.end)
    fixes = redelivered(labels, 0.05, timedelta(days=2), True, 3)
    feed = shuffled(pd.concat([labels, fixes]), 4)
    latest = impl.latest_labels(feed)
    want = dict(zip(labels["request_id"], labels["label"], strict=True)) | dict(
        zip(fixes["request_id"], fixes["label"], strict=True)
    )
    assert isinstance(latest, pd.DataFrame), f"expected latest_labels to return a DataFrame, got {latest!r}"
    got = dict(zip(latest["request_id"], latest["label"].astype(int), strict=True))
    assert len(latest) == len(want), f"expected {len(want)} labels (one per request), got {len(latest)} rows"
    wrong = sorted(rid for rid in want if got.get(rid) != want[rid])
    assert not wrong, (
        f"expected the latest delivery of each label, got an earlier one (or none) for {len(wrong)} "
        f"of the {len(fixes)} corrected requests (e.g. {wrong[0]}: expected {want[wrong[0]]}, "
        f"got {got.get(wrong[0])})"
    )
    assert_realized(
        impl.realized(w.decisions, feed), truth(w, feed), "the window with 5% of its labels corrected"
    )


def test_other_windows_ignored(impl: ModuleType, window: Callable[..., Window]) -> None:
    """labels of other windows' predictions are ignored, in the counts and in the coverage

    The labels table holds every window's labels. Only those whose request_id is one of this
    window's predictions count, and coverage is the labelled share of this window's predictions,
    not the number of labels received divided by anything.
    """
    w = window()
    before = window(seed=SEED + 1, start=START - timedelta(seconds=NEIGHBOUR), rows=NEIGHBOUR)
    after = window(seed=SEED + 2, start=w.end, rows=NEIGHBOUR)
    labels = w.arrived(w.end)
    table = shuffled(pd.concat([before.feed, labels, after.first(0.2)]), 5)
    assert_realized(
        impl.realized(w.decisions, table),
        truth(w, labels),
        "the window with the previous window's and the next window's labels in the table",
    )


def test_unmatured_window_not_measured(impl: ModuleType, window: Callable[..., Window]) -> None:
    """a window at 30% label coverage is not measured with min_coverage 0.9; at 95% it is

    coverage = labelled rows / the window's predictions; below min_coverage return None. The
    first labels of a window are a small sample, and in a real card network a biased one
    (chargebacks of frauds come first; "not fraud" is known only when the dispute window closes).
    """
    w = window()
    early, late = w.first(0.30), w.first(0.95)
    got = impl.realized(w.decisions, early, min_coverage=0.9)
    assert got is None, f"expected None (30% labelled, min_coverage 0.9), got {fields(got)}"
    assert_realized(impl.realized(w.decisions, early), truth(w, early), "the window at 30% (min_coverage 0)")
    assert_realized(
        impl.realized(w.decisions, late, min_coverage=0.9),
        truth(w, late),
        "the window at 95% (min_coverage 0.9)",
    )


def test_nothing_flagged(impl: ModuleType, window: Callable[..., Window]) -> None:
    """nothing flagged: precision is None (undefined), recall is 0

    Precision is frauds caught / rows flagged: with no flagged row it is undefined, which is
    None, neither 0 nor a ZeroDivisionError. Recall is still defined: 0 of the frauds caught.
    """
    w = window()
    labels = w.arrived(w.end)
    none = np.zeros(ROWS, dtype=bool)  # a threshold above every score
    decisions = w.decisions.assign(flagged=none)
    assert_realized(impl.realized(decisions, labels), truth(w, labels, none), "a window with nothing flagged")


def test_no_fraud_labelled(impl: ModuleType, window: Callable[..., Window]) -> None:
    """no fraud among the labelled rows: recall is None (undefined), precision is 0

    Recall is frauds caught / frauds: with no labelled fraud it is undefined (None). Precision
    is defined: every flagged labelled row was a legitimate purchase.
    """
    w = window()
    labels = w.arrived(w.end)
    legit = labels[labels["label"] == 0].reset_index(drop=True)
    assert_realized(
        impl.realized(w.decisions, legit), truth(w, legit), "a window whose frauds are unlabelled"
    )


def test_no_labels(impl: ModuleType, window: Callable[..., Window]) -> None:
    """no label of the window yet: None (no labels, an empty table, only other windows' labels)

    Nothing labelled means nothing measured: return None, never a Realized of 0 rows, which a
    dashboard would draw as a number.
    """
    w = window()
    other = window(seed=SEED + 1, start=START - timedelta(seconds=NEIGHBOUR), rows=NEIGHBOUR).feed
    for what, labels in (
        ("None", None),
        ("an empty labels table", pd.DataFrame({"request_id": [], "ts": [], "label": []})),
        ("only another window's labels", other),
    ):
        got = impl.realized(w.decisions, labels)
        assert got is None, f"expected None for {what}, got {fields(got)}"


# ---------------------------------------------------------------- the estimate
def test_estimate_expected_values(impl: ModuleType, window: Callable[..., Window]) -> None:
    """the estimate is the expected values of calibrated scores (E[fraud | score] = score)

    A row with score 0.3 is a fraud 30% of the time, so expected frauds are sums of scores:
    positive_rate = mean score, flagged_rate = share flagged, precision = sum of the flagged
    rows' scores / rows flagged, recall = sum of the flagged rows' scores / sum of all scores.
    """
    w = window()
    score, hit = w.frame["score"].to_numpy(), w.frame["flagged"].to_numpy()
    got = impl.estimate(score, hit)
    want = {
        "positive_rate": score.mean(),
        "flagged_rate": hit.mean(),
        "precision": score[hit].sum() / hit.sum(),
        "recall": score[hit].sum() / score.sum(),
    }
    for name, value in want.items():
        have = getattr(got, name, "<missing>")
        assert have is not None and have == pytest.approx(value, rel=1e-9), (
            f"expected the estimate's {name} {value:.6f}, got {have}"
        )


def test_estimate_undefined(impl: ModuleType, window: Callable[..., Window]) -> None:
    """the estimate with nothing flagged has precision None; with no score mass, recall None

    No flagged row: the expected precision is undefined (None) and the expected recall is 0.
    Scores that are all 0 expect no fraud at all: recall is undefined (None).
    """
    score = window().frame["score"].to_numpy()
    got = impl.estimate(score, np.zeros(ROWS, dtype=bool))
    have = (got.precision, got.recall, got.flagged_rate)
    assert have == (None, 0.0, 0.0), (
        f"expected (precision, recall, flagged_rate) (None, 0.0, 0.0), got {have}"
    )
    got = impl.estimate(np.zeros(ROWS), np.ones(ROWS, dtype=bool))
    have = (got.recall, got.positive_rate)
    assert have == (None, 0.0), (
        f"expected (recall, positive_rate) (None, 0.0) for all-zero scores, got {have}"
    )


# ---------------------------------------------------------------- where the two part ways
@dataclass(frozen=True)
class Seen:
    realized: Any
    estimate: Any


def seen(impl: ModuleType, w: Window) -> Seen:
    """What the monitor reports for a window evaluated once its labels have matured."""
    got = impl.realized(w.decisions, w.arrived(w.end + MATURED), min_coverage=MIN_COVERAGE)
    assert got is not None, "expected the window measured (about 99% labelled), got None"
    guess = impl.estimate(w.frame["score"].to_numpy(), w.frame["flagged"].to_numpy())
    return Seen(got, guess)


def test_baseline_estimate_near_realized(impl: ModuleType, window: Callable[..., Window]) -> None:
    """on baseline traffic the estimate is near realized precision and recall

    The world is the one the model learned: calibrated scores predict what the labels will say.
    If the estimate is far off here, one of the two is computed wrong (check the denominators).
    """
    base = seen(impl, window())
    for name in ("precision", "recall"):
        r, e = getattr(base.realized, name), getattr(base.estimate, name)
        assert r is not None and e is not None and abs(e - r) <= BASELINE_GAP, (
            f"expected the estimated {name} within {BASELINE_GAP} of the realized one on baseline, "
            f"got estimated {e} and realized {r}"
        )


def test_prior_shift_estimate_misses_the_wave(impl: ModuleType, window: Callable[..., Window]) -> None:
    """a fraud wave: realized precision jumps, the estimate barely moves

    prior_shift has three times the frauds with the same fraud patterns: P(fraud | features)
    rose, and the scores cannot know it (they were calibrated on the old fraud rate). Only the
    realized numbers show the wave; both must come from your functions.
    """
    base, wave = seen(impl, window()), seen(impl, window("prior_shift"))
    rise = wave.realized.precision - base.realized.precision
    assert rise > WAVE_RISE, (
        f"expected realized precision to rise by more than {WAVE_RISE} in the fraud wave, got "
        f"{base.realized.precision:.3f} -> {wave.realized.precision:.3f}"
    )
    moved = wave.estimate.precision - base.estimate.precision
    assert abs(moved) < WAVE_ESTIMATE_RISE, (
        f"expected the estimated precision to move by less than {WAVE_ESTIMATE_RISE} (the scores "
        f"do not know the fraud rate rose), got {base.estimate.precision:.3f} -> "
        f"{wave.estimate.precision:.3f}"
    )
    gap = wave.realized.precision - wave.estimate.precision
    assert gap > WAVE_GAP, (
        f"expected realized precision more than {WAVE_GAP} above the estimate in the wave, got "
        f"realized {wave.realized.precision:.3f} and estimated {wave.estimate.precision:.3f}"
    )


def test_concept_drift_estimate_stays_flat(impl: ModuleType, window: Callable[..., Window]) -> None:
    """a new fraud tactic: the estimate stays flat while realized precision and recall fall

    concept_drift has the same features and other labels: the scores, and so the estimate, do
    not move, because nothing the model sees moved. Only labels reveal it, which is why the
    monitor needs them despite the delay.
    """
    base, drift = seen(impl, window()), seen(impl, window("concept_drift"))
    for name in ("precision", "recall"):
        b, d = getattr(base.estimate, name), getattr(drift.estimate, name)
        assert abs(d - b) < DRIFT_FLAT, (
            f"expected the estimated {name} within {DRIFT_FLAT} of baseline's under concept drift, "
            f"got {b:.3f} -> {d:.3f}"
        )
    for name, fall in (("precision", DRIFT_PRECISION_FALL), ("recall", DRIFT_RECALL_FALL)):
        b, d = getattr(base.realized, name), getattr(drift.realized, name)
        assert d is not None and b - d > fall, (
            f"expected realized {name} to fall by more than {fall} under concept drift, got {b:.3f} -> {d}"
        )
    gap = drift.estimate.precision - drift.realized.precision
    assert gap > DRIFT_GAP, (
        f"expected the estimated precision more than {DRIFT_GAP} above the realized one, got "
        f"estimated {drift.estimate.precision:.3f} and realized {drift.realized.precision:.3f}"
    )
