"""lab4/concept-drift: fraudsters change tactics; only the delayed labels can tell.

    make scenario S=lab4/concept-drift [IMPL=exercises]

A stream of windows, one a minute of simulated time, 500 predictions each: first the champion's
world, then the generator's concept_drift (card testing: small amounts at high velocity on young
accounts), whose inputs are distributed exactly as before. Labels (chargebacks) arrive after an
exponential delay, some of them twice. What the monitor sees, window by window:
  - feature drift: nothing (the inputs did not move), so the trigger policy never fires;
  - the label-free estimate: nothing (calibrated scores predict the old world's precision);
  - realized precision and recall on the newest 5,000 predictions whose label has arrived:
    they fall, but only once the new world's labels come in.
The time to detect is measured in windows (simulated minutes) against the label delay. Then the
action: a rollback to the previous version is as blind as the champion (both learnt the old
world); a retrain on the fresh labels is what helps. With IMPL=exercises the realized and
estimated performance are yours (exercises/lab4/performance.py), and the drift statistics too
(exercises/lab4/stats.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from mlops_lab.data.generator import generate
from mlops_lab.data.labels import delayed_labels
from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.scenarios import Context
from mlops_lab.lifecycle import model as fraud_model
from mlops_lab.lifecycle.train import Fitted, fit
from mlops_lab.monitoring.policy import PolicyState, TriggerPolicy
from mlops_lab.monitoring.simulate import START, STEP, champion, fast_drift, verdict_of

WINDOW_ROWS = 500
BEFORE, AFTER = 20, 40  # windows of the old world, then of the new one
MEAN_DELAY = timedelta(minutes=10)  # days to weeks for real chargebacks; minutes here
TRAILING = 5_000  # the monitor's realized view: its newest labelled predictions (10 windows)
REDELIVERED = 0.2  # share of labels the feed delivers a second time, a few minutes later
# The page MLOpsRealizedPerformanceDrop (reference/observability/rules/ml.yml): realized precision
# under 0.8x the champion's holdout precision, on at least 200 labelled rows.
DROP, MIN_LABELLED = 0.8, 200
FOR = 10  # its `for: 10m`, in windows of a minute


def run(ctx: Context) -> None:
    perf = ctx.module("delayed-labels")
    ctx.module("drift-stats")  # fast_drift resolves the statistics through ctx.choice.resolve
    np.seterr(all="ignore")
    s = ctx.settings
    fitted, reference, importance = champion(s)
    expected = fitted.metrics["precision"]
    # The policy is not this scenario's exercise: the reference plays it (lab4/alert-storm runs yours).
    policy, state = TriggerPolicy.from_settings(s), PolicyState()
    ctx.info(
        f"setup: a champion fitted on 20,000 baseline rows, holdout precision {expected:.3f}, recall "
        f"{fitted.metrics['recall']:.3f}; the page fires under {DROP:g}x that precision on >= "
        f"{MIN_LABELLED} labels"
    )

    served = stream_rows(fitted)
    feed = label_feed(served)  # first deliveries in row order, then the second ones
    served["first_label"] = feed["ts"].to_numpy()[: len(served)]  # when the monitor can count the row
    ctx.info(
        f"{BEFORE} windows of the old world, then {AFTER} of the new, one a minute; labels arrive "
        f"{MEAN_DELAY.total_seconds() / 60:.0f} min after the prediction on average, {REDELIVERED:.0%} of "
        f"them twice ({len(feed):,} deliveries for {len(served):,} predictions)"
    )

    views: list[View] = []
    for w in range(BEFORE + AFTER):
        now = START + (w + 1) * STEP  # the end of window w: what has arrived by then
        if w == BEFORE:
            ctx.inject(
                f"window {w + 1} ({START + w * STEP:%H:%M}): fraudsters switch to card testing "
                "(concept_drift); the inputs keep their distribution"
            )
        window = served[served["window"] == w]
        verdict = verdict_of(fast_drift(reference, window[SCHEMA.names], part=ctx.choice.resolve), importance)
        decision, state = policy.decide(state, verdict, now)
        guess = perf.estimate(window["score"].to_numpy(), window["flagged"].to_numpy())
        seen = realized_view(perf, served, feed, now)
        dropped = (
            seen is not None
            and seen.labelled >= MIN_LABELLED
            and seen.precision is not None
            and seen.precision < DROP * expected
        )
        views.append(View(w, verdict.drifted_importance, decision.trigger, guess.precision, seen, dropped))

    before, after = views[:BEFORE], views[BEFORE:]
    last = views[-1].realized
    ctx.symptom(
        f"the review team's hit rate falls: realized precision {fmt(last.precision if last else None)}, "
        f"recall {fmt(last.recall if last else None)} at the end of the stream, against {expected:.3f} and "
        f"{fitted.metrics['recall']:.3f} offline"
    )
    triggers = sum(v.trigger for v in views)
    ctx.signal(
        f"feature drift: drifted importance median {np.median([v.drifted_importance for v in after]):.1%} "
        f"after the change; {triggers} retraining triggers: the inputs did not move"
    )
    est_before = float(np.mean([v.estimate for v in before if v.estimate is not None]))
    est_after = float(np.mean([v.estimate for v in after if v.estimate is not None]))
    ctx.signal(
        f"label-free estimate of precision: {est_before:.3f} before, {est_after:.3f} after: it assumes "
        "the old world's P(fraud | features), the very thing that changed"
    )
    for v in before:
        if v.dropped and v.realized is not None:
            ctx.info(
                f"window {v.number + 1}, before the change: realized precision "
                f"{fmt(v.realized.precision)} on only {v.realized.labelled:,} labels (noise): the condition "
                "holds, the alert is pending; "
                f"its `for` ({FOR} windows) keeps that from paging"
            )
    began, paged = first_page([v.dropped for v in views])
    if paged is not None and began is not None and paged >= BEFORE:
        seen = views[paged].realized
        ctx.signal(
            f"realized precision under {DROP:g} x {expected:.3f} from window {began + 1}; window "
            f"{paged + 1}: it has held for {FOR} windows, the page fires (precision "
            f"{fmt(seen.precision if seen else None)} on {seen.labelled if seen else 0:,} labelled "
            "predictions)"
        )
    ctx.check(triggers == 0, f"feature drift is silent: the trigger policy never fires ({triggers} triggers)")
    ctx.check(
        abs(est_after - est_before) < 0.03,
        f"the label-free estimate is silent (precision {est_before:.3f} -> {est_after:.3f}, within 0.03)",
    )
    ctx.check(
        paged is None or paged >= BEFORE, "no page before the change (the condition never held for its `for`)"
    )
    ctx.check(
        paged is not None and began is not None and began > BEFORE,
        "realized precision falls only after the change, once its labels arrive, and pages "
        + (f"({paged - BEFORE + 1} windows after it)" if paged is not None else "(not within the stream)"),
    )
    assert paged is not None and began is not None
    to_condition, to_page = (began - BEFORE + 1), (paged - BEFORE + 1)
    delay_min = MEAN_DELAY.total_seconds() / 60
    ctx.info(
        f"time to detect: the condition after {to_condition} windows = {to_condition * 60} s simulated "
        f"({to_condition / delay_min:.1f}x the mean label delay), the page after {to_page} windows = "
        f"{to_page * 60} s simulated"
    )

    # ---- the action: rollback or retrain?
    previous = fit(s, generate("baseline", 20_000, seed=0))  # the version before the champion
    end = START + (BEFORE + AFTER) * STEP
    arrived = set(feed.loc[feed["ts"] <= end, "request_id"])
    fresh = served[(served["window"] >= BEFORE) & served["request_id"].isin(arrived)]
    retrained = fit(s, fresh[[*SCHEMA.names, SCHEMA.label]].reset_index(drop=True))
    future = generate("concept_drift", 60_000, seed=21)
    auc = {
        name: model.metrics_on(future)
        for name, model in (("champion", fitted), ("rollback", previous), ("retrained", retrained))
    }
    ctx.signal(
        "on 60,000 rows of the new world: "
        + "; ".join(
            f"{name} ROC-AUC {m['roc_auc']:.3f}, PR-AUC {m['pr_auc']:.3f}, recall {m['recall']:.3f}"
            for name, m in auc.items()
        )
        + f" (retrained on the {len(fresh):,} post-change predictions labelled so far)"
    )
    ctx.check(
        auc["rollback"]["roc_auc"] < 0.6,
        f"a rollback is as blind as the champion: the previous version ranks the new fraud at "
        f"ROC-AUC {auc['rollback']['roc_auc']:.3f}",
    )
    ctx.check(
        auc["retrained"]["roc_auc"] >= auc["rollback"]["roc_auc"] + 0.1,
        f"a retrain on fresh labels ranks it better (ROC-AUC {auc['retrained']['roc_auc']:.3f})",
    )
    ctx.mitigate(
        "retrain on the freshest labelled data (mlops-lab retrain), through the gate and a canary; not a "
        "rollback, which serves another model of the old world; and shorten the label delay where you can"
    )


class View(NamedTuple):  # not a dataclass: a scenario module is loaded by path, not imported
    """What the monitor knew at the end of one window."""

    number: int
    drifted_importance: float
    trigger: bool
    estimate: float | None  # label-free precision of the window
    realized: Any  # the trailing realized view (performance.Realized), None before any label
    dropped: bool  # the page's condition holds


def first_page(dropped: list[bool]) -> tuple[int | None, int | None]:
    """(window where the condition began, window where the page fires): the rule's `for` fires
    once the condition has held FOR more evaluations in a row; one evaluation without it resets."""
    held = 0
    for number, now in enumerate(dropped):
        held = held + 1 if now else 0
        if held > FOR:
            return number - FOR, number
    return None, None


def stream_rows(fitted: Fitted) -> pd.DataFrame:
    """The served predictions: request_id, ts, window, features, score, flagged and the truth."""
    old = generate("baseline", BEFORE * WINDOW_ROWS, seed=2)
    new = generate("concept_drift", AFTER * WINDOW_ROWS, seed=3)
    served = pd.concat([old, new], ignore_index=True)
    n = len(served)
    served["request_id"] = [f"req-{i}" for i in range(n)]
    served["window"] = np.arange(n) // WINDOW_ROWS
    served["ts"] = [START + STEP * (i / WINDOW_ROWS) for i in range(n)]
    served["score"] = fraud_model.scores(fitted.pipeline, served[SCHEMA.names])
    served["flagged"] = served["score"] >= fitted.threshold
    return served


def label_feed(served: pd.DataFrame) -> pd.DataFrame:
    """Every label delivery: request_id, label, ts (arrival). Arrival times from the lab's label
    feed (an exponential delay per request); values from each row's own ground truth, old world or
    new; a share delivered again a few minutes later (the same verdict, sent twice)."""
    arrives = [label.arrives_at for label in delayed_labels(served, MEAN_DELAY.total_seconds())]
    feed = pd.DataFrame({"request_id": served["request_id"], "label": served[SCHEMA.label], "ts": arrives})
    again = feed.sample(frac=REDELIVERED, random_state=4).copy()
    again["ts"] = again["ts"] + timedelta(minutes=5)
    return pd.concat([feed, again], ignore_index=True)


def realized_view(perf: Any, served: pd.DataFrame, feed: pd.DataFrame, now: datetime) -> Any:
    """The monitor's trailing view at `now`: the newest TRAILING predictions whose label has
    arrived, measured with the learner's (or the reference's) `realized` on every delivery so far."""
    labels = feed[feed["ts"] <= now]
    done = served[served["first_label"] <= now].tail(TRAILING)
    if done.empty:
        return None
    return perf.realized(
        done[["request_id", "flagged"]], labels[labels["request_id"].isin(done["request_id"])]
    )


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
