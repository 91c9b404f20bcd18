"""lab4/missing-values: a failed upstream join blanks two features; drift sees nothing, quality does.

    make scenario S=lab4/missing-values [IMPL=exercises]

An upstream join starts failing: 15% of the rows arrive without distance_from_home_km and
account_age_days (the generator's missing_values). The drift statistics drop missing values
first, as Evidently does, and the values that remain come from the same distribution: the drift
signal stays quiet. The model scores the rows anyway (it imputes the training median), so
nothing errors either. Only the data-quality check sees it: the monitor's window verdict carries
the problems, the trigger policy passes them through as alarms (never a retrain), and the
monitor's metrics registry sets mlops_data_quality_alarm to 1, which pages
(MLOpsDataQualityAlarm). With IMPL=exercises the drift statistics are yours
(exercises/lab4/stats.py).
"""

from __future__ import annotations

from dataclasses import replace
from statistics import median

import numpy as np

from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.scenarios import Context
from mlops_lab.monitoring.metrics import MonitorMetrics
from mlops_lab.monitoring.policy import PolicyState, TriggerPolicy
from mlops_lab.monitoring.simulate import START, STEP, champion, fast_drift, verdict_of, windows_of

WINDOW_ROWS = 500
WINDOWS = 20
BLANKED = ("distance_from_home_km", "account_age_days")


def run(ctx: Context) -> None:
    stats = ctx.module("drift-stats")
    np.seterr(all="ignore")
    fitted, reference, importance = champion(ctx.settings)
    # The policy is not this scenario's exercise: the reference plays it (lab4/alert-storm runs yours).
    policy, state, metrics = TriggerPolicy.from_settings(ctx.settings), PolicyState(), MonitorMetrics()
    allowed = ctx.settings.monitor_max_null_fraction
    ctx.info(
        f"setup: a champion fitted on 20,000 baseline rows; the monitor allows {allowed:.0%} missing values"
    )

    broken = features_only(generate("missing_values", WINDOWS * WINDOW_ROWS, seed=7))
    windows = windows_of(broken, WINDOW_ROWS)
    shares = ", ".join(f"{c} {broken[c].isna().mean():.0%}" for c in BLANKED)
    ctx.inject(f"a failed upstream join: {WINDOWS} windows arrive with values missing ({shares})")

    statistic: dict[str, list[float]] = {c: [] for c in BLANKED}
    flagged: dict[str, int] = dict.fromkeys(BLANKED, 0)
    alarms: set[str] = set()
    triggers = 0
    now = START
    for window in windows:
        drift = fast_drift(reference, window, part=ctx.choice.resolve)
        for c in BLANKED:
            statistic[c].append(drift.column(c).statistic)
            flagged[c] += drift.column(c).drifted
        # The data-quality half of the monitor's verdict, exactly as evaluate_window computes it.
        problems = tuple(SCHEMA.problems(window, max_null_fraction=allowed))
        verdict = replace(verdict_of(drift, importance), data_quality=problems)
        decision, state = policy.decide(state, verdict, now)
        metrics.window(verdict, decision, state.consecutive, now.timestamp())
        triggers += decision.trigger
        alarms |= {a.split(":")[0] for a in decision.alarms}
        now += STEP

    clean, blank = generate("baseline", 60_000, seed=8), generate("missing_values", 60_000, seed=8)
    a, b = (fitted.metrics_on(f) for f in (clean, blank))
    ctx.symptom(
        f"no error anywhere: the model imputes the median and scores every row (recall "
        f"{a['recall']:.3f} on clean rows, {b['recall']:.3f} on these; precision {a['precision']:.3f} "
        f"vs {b['precision']:.3f})"
    )
    method = drift.column(BLANKED[0]).method
    seen = "; ".join(
        f"{c}: median {median(statistic[c]):.3f}, flagged in {flagged[c]}/{WINDOWS} windows" for c in BLANKED
    )
    seen += " (the noise level of clean traffic: lab4/alert-storm)"
    ctx.signal(f"drift statistics ({method}, threshold 0.1) on the blanked columns: {seen}")
    ref_col, cur_col = reference[BLANKED[0]], broken[BLANKED[0]]
    with_nan = float(stats.wasserstein_normed(ref_col, cur_col))
    without = float(stats.wasserstein_normed(ref_col, cur_col.dropna()))
    ctx.signal(
        f"stats.wasserstein_normed on all {len(cur_col):,} rows of {BLANKED[0]}, "
        f"{int(cur_col.isna().sum()):,} of them NaN: {with_nan:.4f}; with the NaNs removed first: "
        f"{without:.4f}: they never reach the statistic"
    )
    ctx.check(
        all(median(statistic[c]) < 0.1 for c in BLANKED),
        "the drift statistics see nothing: the blanked columns' median statistic stays under its threshold",
    )
    ctx.check(
        abs(with_nan - without) < 1e-9, "missing values are dropped by the statistic, not counted as values"
    )
    gauge = metrics.registry.get_sample_value("mlops_data_quality_alarm")
    ctx.signal(f"data quality: {'; '.join(decision.alarms)}; mlops_data_quality_alarm {gauge}")
    ctx.signal(f"policy, last window: {decision.reason} (alarms passed through: {', '.join(sorted(alarms))})")
    ctx.check(set(BLANKED) <= alarms, f"the data-quality alarm names {' and '.join(BLANKED)}")
    ctx.check(
        gauge == 1.0, "mlops_data_quality_alarm is 1 on the monitor's /metrics (MLOpsDataQualityAlarm pages)"
    )
    ctx.check(triggers == 0, f"no retrain: data quality is an alarm, never a trigger ({triggers} triggers)")
    ctx.mitigate(
        "page the owner of the join (MLOpsDataQualityAlarm), fix or roll back the producer; never retrain "
        "on it (lab 3's validation gate stops such a run with missing_values)"
    )
