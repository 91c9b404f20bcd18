"""lab4/irrelevant-drift: a feature the model ignores drifts; it is reported, never a retrain.

    make scenario S=lab4/irrelevant-drift [IMPL=exercises]

A new app release moves device_os (the generator's irrelevant_drift: far more "other", far less
iOS and Android); the ground truth of fraud never reads device_os. The drift statistics flag
the column in every window, and the monitor must say so on its per-feature gauge
(mlops_feature_drift{feature="device_os"} 1, in a real MonitorMetrics registry, read back from
its exposition text as Prometheus scrapes it), while the trigger policy never retrains: the
column carries a few percent of the champion's importance, under the policy's share. The
champion's ranking is measured on the drifted traffic to show that retraining had nothing to fix.
With IMPL=exercises the drift statistics and the trigger policy are yours
(exercises/lab4/stats.py, policy.py).
"""

from __future__ import annotations

import numpy as np
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlops_lab.data.generator import features_only, generate
from mlops_lab.labs.scenarios import Context
from mlops_lab.monitoring.metrics import MonitorMetrics
from mlops_lab.monitoring.simulate import START, STEP, champion, fast_drift, verdict_of, windows_of

WINDOW_ROWS = 500
WINDOWS = 30
COLUMN = "device_os"


def run(ctx: Context) -> None:
    ctx.module("drift-stats")  # fast_drift resolves the statistics through ctx.choice.resolve
    policies = ctx.module("trigger-policy")
    policy = policies.TriggerPolicy.from_settings(ctx.settings)
    state = policies.PolicyState()
    np.seterr(all="ignore")
    fitted, reference, importance = champion(ctx.settings)
    metrics = MonitorMetrics()
    ctx.info(
        f"setup: a champion fitted on 20,000 baseline rows; {COLUMN} carries {importance[COLUMN]:.1%} of its "
        f"importance (the policy counts drift from {policy.min_importance_share:.0%})"
    )

    drifted = generate("irrelevant_drift", WINDOWS * WINDOW_ROWS, seed=5)
    windows = windows_of(features_only(drifted), WINDOW_ROWS)
    shares = drifted[COLUMN].value_counts(normalize=True)
    before = reference[COLUMN].value_counts(normalize=True)
    mix = ", ".join(f"{k} {before.get(k, 0):.0%} -> {shares.get(k, 0):.0%}" for k in shares.index)
    ctx.inject(f"a new app release moves {COLUMN} ({mix}) for {len(windows)} windows of {WINDOW_ROWS} rows")

    flagged, triggers, distances = 0, 0, []
    now = START
    for window in windows:
        verdict = verdict_of(fast_drift(reference, window, part=ctx.choice.resolve), importance)
        decision, state = policy.decide(state, verdict, now)
        # What Monitor._evaluate exports for each window, in the monitor's own metrics class.
        metrics.window(verdict, decision, state.consecutive, now.timestamp())
        if decision.trigger:
            triggers += 1
            metrics.retrain_triggers.inc()
        assert verdict.drift is not None  # the window has every column: drift is computed
        column = verdict.drift.column(COLUMN)
        flagged += column.drifted
        distances.append(column.statistic)
        now += STEP
    ctx.symptom(
        f"{COLUMN} drifted in {flagged} of {len(windows)} windows ({column.method} "
        f"{min(distances):.2f} to {max(distances):.2f}, threshold {column.threshold:g})"
    )
    scraped = scrape(metrics)
    gauge = scraped.get(f'mlops_feature_drift{{feature="{COLUMN}"}}')
    ctx.signal(
        f'scrape of the monitor\'s registry: mlops_feature_drift{{feature="{COLUMN}"}} {gauge}, '
        f"mlops_drift_importance_share {scraped.get('mlops_drift_importance_share', float('nan')):.3f}, "
        f"mlops_drift_detected {scraped.get('mlops_drift_detected')}, "
        f"mlops_retrain_triggers_total {scraped.get('mlops_retrain_triggers_total')}"
    )
    ctx.signal(f"policy, last window: {decision.reason}")
    ctx.check(flagged >= 0.9 * len(windows), f"the drift is reported: {COLUMN} flagged in {flagged} windows")
    ctx.check(gauge == 1.0, f'mlops_feature_drift{{feature="{COLUMN}"}} is 1 on the monitor\'s /metrics')
    ctx.check(
        triggers == 0 and scraped.get("mlops_retrain_triggers_total") == 0.0,
        f"no retrain in {len(windows)} windows (triggers {triggers})",
    )
    ctx.check(
        scraped.get("mlops_drift_detected") == 0.0 and scraped.get("mlops_drift_consecutive_windows") == 0.0,
        "mlops_drift_detected 0 and the policy's count at 0: not drift that matters",
    )

    # Did the model have anything to fix? Its ranking on the drifted traffic, against clean traffic.
    clean, moved = generate("baseline", 60_000, seed=6), generate("irrelevant_drift", 60_000, seed=6)
    a, b = (fitted.metrics_on(f) for f in (clean, moved))
    ctx.info(
        f"the champion on 60,000 rows each: ROC-AUC {a['roc_auc']:.3f} clean vs {b['roc_auc']:.3f} drifted, "
        f"PR-AUC {a['pr_auc']:.3f} vs {b['pr_auc']:.3f}: the ranking did not move"
    )
    ctx.info(
        f"its flagged rate moved a little, {a['flagged_rate']:.1%} -> {b['flagged_rate']:.1%} (the fit gave "
        f"{COLUMN} a sliver of weight): a question for the flag budget's threshold, not a reason to retrain"
    )
    ctx.check(
        abs(a["roc_auc"] - b["roc_auc"]) <= 0.02,
        f"the champion ranks the drifted traffic as well as the clean (ROC-AUC within 0.02: "
        f"{a['roc_auc']:.3f} vs {b['roc_auc']:.3f})",
    )
    ctx.mitigate(
        f"report it (the per-feature gauge, a dashboard panel, the HTML report); no retrain for a feature "
        f"with {importance[COLUMN]:.1%} of the importance; re-check after the next retrain, whose "
        "importance may differ"
    )


def scrape(metrics: MonitorMetrics) -> dict[str, float]:
    """The registry's exposition text, parsed back as a scraper would: series -> value."""
    text = generate_latest(metrics.registry).decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return out
