"""lab4/unit-change: amount arrives in cents; drift says "retrain", data quality says "a bug".

    make scenario S=lab4/unit-change [IMPL=exercises]

A producer starts sending `amount` in cents (the generator's unit_bug: x100, labels unchanged).
What each signal of the system says:
  - drift: amount moves by dozens of standard deviations, and it carries enough of the
    champion's importance: a policy that looked at drift alone would retrain after K windows;
  - data quality: the schema cannot see it (cents are valid numbers under its maximum), but the
    monitor's unit check does (a median x100 the reference's): mlops_data_quality_alarm is 1 and
    MLOpsDataQualityAlarm pages, and the trigger policy holds while the alarm lasts;
  - the retraining pipeline's validation gate (lab 3) would stop a retrain anyway, with unit_bug
    and the two medians: a second line of defence.
Then why retraining fixes nothing, measured: a model refitted on cents learns the cents, and the
day the producer is fixed it flags almost nothing. The fix is the producer (or a conversion at
the boundary), after which the champion is right again. With IMPL=exercises the drift
statistics, the trigger policy and lab 3's validation gate are yours (exercises/lab4/stats.py,
policy.py, exercises/lab3/validate.py).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.scenarios import Context
from mlops_lab.lifecycle.train import fit
from mlops_lab.monitoring.metrics import MonitorMetrics
from mlops_lab.monitoring.simulate import START, STEP, champion, fast_drift, verdict_of, windows_of
from mlops_lab.monitoring.window import unit_changes

WINDOW_ROWS = 500
WINDOWS = 6
COLUMN = "amount"


def run(ctx: Context) -> None:
    ctx.module("drift-stats")  # fast_drift resolves the statistics through ctx.choice.resolve
    policies = ctx.module("trigger-policy")
    policy, state = policies.TriggerPolicy.from_settings(ctx.settings), policies.PolicyState()
    gate = ctx.module("validation-gate")
    np.seterr(all="ignore")
    s = ctx.settings
    fitted, reference, importance = champion(s)
    metrics = MonitorMetrics()
    ctx.info(
        f"setup: a champion fitted on 20,000 baseline rows: precision {fitted.metrics['precision']:.3f}, "
        f"recall {fitted.metrics['recall']:.3f}, flagging {fitted.metrics['flagged_rate']:.1%} (the budget "
        f"{s.flag_budget:.0%}); {COLUMN} carries {importance[COLUMN]:.0%} of its importance"
    )

    cents = features_only(generate("unit_bug", WINDOWS * WINDOW_ROWS, seed=9))
    windows = windows_of(cents, WINDOW_ROWS)
    ctx.inject(
        f"the producer sends {COLUMN} in cents: median {cents[COLUMN].median():,.0f} instead of "
        f"{reference[COLUMN].median():,.2f}, {WINDOWS} windows of {WINDOW_ROWS} rows"
    )
    served = generate("unit_bug", 60_000, seed=10)
    hit = fitted.metrics_on(served)
    ctx.symptom(
        f"the champion now flags {hit['flagged_rate']:.1%} of transactions "
        f"({hit['flagged_rate'] / s.flag_budget:.0f}x the review team's budget) at precision "
        f"{hit['precision']:.3f}: a hundred times the amount looks like fraud"
    )

    triggers, drift_alone, now = [], [], START
    blind = policies.PolicyState()  # the same policy fed the drift without the alarms
    for number, window in enumerate(windows, start=1):
        drift = fast_drift(reference, window, part=ctx.choice.resolve)
        schema_only = tuple(SCHEMA.problems(window, max_null_fraction=s.monitor_max_null_fraction))
        # What the monitor's evaluate_window reports: the schema's problems and the unit check.
        problems = (*schema_only, *unit_changes(reference, window))
        verdict = replace(verdict_of(drift, importance), data_quality=problems)
        decision, state = policy.decide(state, verdict, now)
        metrics.window(verdict, decision, state.consecutive, now.timestamp())
        triggers += [number] if decision.trigger else []
        alone, blind = policy.decide(blind, replace(verdict, data_quality=()), now)
        drift_alone += [number] if alone.trigger else []
        now += STEP
    moved = drift.column(COLUMN)
    ctx.signal(f"drift, last window: {moved.describe()}; drifted columns {', '.join(drift.drifted_columns)}")
    ctx.check(moved.drifted and moved.severity == 1.0, f"{COLUMN} drifts far past its threshold")
    k = policy.consecutive_windows
    ctx.check(
        bool(drift_alone) and drift_alone[0] == k,
        f"drift alone would retrain after {k} windows (window {drift_alone[:1]}): cents look like real drift",
    )
    ctx.check(not schema_only, "the schema sees nothing: cents are valid numbers under its maximum")
    quality = metrics.registry.get_sample_value("mlops_data_quality_alarm")
    ctx.signal(f"data quality: {'; '.join(problems)}; mlops_data_quality_alarm {quality:g}")
    ctx.check(quality == 1 and any(COLUMN in p for p in problems), f"the unit check names {COLUMN}: an alarm")
    ctx.signal(f"the trigger policy: {decision.reason}")
    ctx.check(
        not triggers, f"with the alarm the policy holds: no retrain in {WINDOWS} windows (got {triggers})"
    )

    # ---- the second line of defence: a retrain started by hand stops at lab 3's validate step
    rows = pd.concat(windows[:k], ignore_index=True)
    report = gate.validate_rows(rows, reference[SCHEMA.names], max_null_fraction=s.monitor_max_null_fraction)
    ctx.signal(f"a retrain on those {len(rows):,} rows, started anyway: validate says {report.summary()}")
    ctx.check(report.reason == "unit_bug", f"the gate stops the run with unit_bug (got {report.reason})")
    ctx.check(
        any(p.column == COLUMN and "median" in p.detail for p in report.problems),
        f"its detail names {COLUMN} and the two medians",
    )

    # ---- what a retrain on the cents would have done
    learnt = fit(s, generate("unit_bug", 20_000, seed=11))
    dollars = generate("baseline", 60_000, seed=12)
    on_cents = learnt.metrics
    after_fix, as_is = learnt.metrics_on(dollars), fitted.metrics_on(dollars)
    ctx.info(
        f"a model refitted on 20,000 cents rows: recall {on_cents['recall']:.3f} on cents (it learnt "
        f"them); the day the producer is fixed it flags {after_fix['flagged_rate']:.1%} and catches "
        f"{after_fix['recall']:.1%} of fraud, where the champion flags {as_is['flagged_rate']:.1%} and "
        f"catches {as_is['recall']:.1%}"
    )
    ctx.check(
        after_fix["recall"] < 0.5 * as_is["recall"],
        f"retraining fixes nothing: the refitted model loses over half the recall once dollars return "
        f"({after_fix['recall']:.3f} vs {as_is['recall']:.3f})",
    )
    fixed = served.copy()
    fixed[COLUMN] = fixed[COLUMN] / 100
    back = fitted.metrics_on(fixed)
    ctx.mitigate(
        f"fix the producer (or convert at the boundary): the champion on the same traffic in dollars flags "
        f"{back['flagged_rate']:.1%} at precision {back['precision']:.3f} again; no retrain"
    )
    ctx.check(
        abs(back["flagged_rate"] - s.flag_budget) < 0.01,
        f"in dollars the champion is back on its budget ({back['flagged_rate']:.1%} flagged)",
    )
