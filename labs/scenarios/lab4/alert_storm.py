"""lab4/alert-storm: a drift alarm that cries wolf on clean traffic, against the guarded policy.

    make scenario S=lab4/alert-storm [IMPL=exercises]

Nothing drifts: 500 windows of 500 rows from the very world the champion was trained on, one a
minute (8 h 20 min of traffic). Three rules judge the same windows with the same statistics
(Evidently's defaults, computed by the drift statistics): a naive "alarm when any column
drifts", which hand-rolled monitors use and which pages about every fourth window; Evidently's
dataset-drift default (half of the columns), quiet here but blind to a real shift of one
important feature; and the guarded trigger policy (drift weighted by the champion's feature
importance, K windows in a row, a cooldown), which must stay silent on clean traffic and still
trigger within K windows of a 0.5 SD shift of the model's most important numeric feature.
With IMPL=exercises the drift statistics and the trigger policy are yours
(exercises/lab4/stats.py, policy.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlops_lab.data.generator import features_only, generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.scenarios import Context
from mlops_lab.monitoring.simulate import (
    Stream,
    champion,
    fast_drift,
    shifted,
    stream,
    verdict_of,
    windows_of,
)

WINDOW_ROWS = 500
CLEAN_WINDOWS = 500
SHIFTED_WINDOWS = 30
PER_DAY = 24 * 60  # windows a day at one window a minute


def run(ctx: Context) -> None:
    ctx.module("drift-stats")  # fast_drift resolves the statistics through ctx.choice.resolve
    policy = ctx.module("trigger-policy").TriggerPolicy.from_settings(ctx.settings)
    np.seterr(all="ignore")
    _, reference, importance = champion(ctx.settings)
    ctx.info(
        f"setup: a champion fitted on 20,000 baseline rows; its reference sample ({len(reference):,} rows) "
        "and feature importance, as the monitor loads them"
    )
    ctx.info(
        f"policy: {policy.min_samples} rows, {policy.consecutive_windows} windows in a row, drifted "
        f"importance >= {policy.min_importance_share:.0%}, cooldown {policy.cooldown_s:.0f} s"
    )

    clean = windows_of(features_only(generate("baseline", CLEAN_WINDOWS * WINDOW_ROWS, seed=3)), WINDOW_ROWS)
    ctx.inject(
        f"{len(clean)} windows of {WINDOW_ROWS} clean rows, one a minute: the champion's own world, "
        "no drift at all"
    )
    null = judge(ctx, policy, clean, reference, importance)
    naive, dataset = null.any_column / null.windows, null.dataset_drift / null.windows
    ctx.symptom(
        f"naive 'any column drifted' alarms on {null.any_column} of {null.windows} windows ({naive:.1%}): "
        f"about {naive * PER_DAY:.0f} pages a day at one window a minute"
    )
    flagged = ", ".join(f"{c} {n}" for c, n in sorted(null.columns_flagged.items(), key=lambda kv: -kv[1]))
    ctx.signal(f"columns flagged by sampling noise alone (windows): {flagged or 'none'}")
    ctx.signal(
        f"Evidently's default (dataset drift when >= 50% of the columns drift): {null.dataset_drift} "
        f"windows ({dataset:.1%})"
    )
    ctx.signal(
        f"guarded policy: {len(null.triggers)} retraining triggers; {null.counted} windows counted "
        f"towards one ({null.counted / null.windows:.1%}), never {policy.consecutive_windows} in a row"
    )
    ctx.check(naive >= 0.10, f"the naive rule is a storm on clean traffic: {naive:.1%} of windows (>= 10%)")
    ctx.check(dataset <= 0.02, f"Evidently's dataset default stays quiet on clean traffic: {dataset:.1%}")
    ctx.check(
        len(null.triggers) <= 1,
        f"the guarded policy triggers at most once in {null.windows} clean windows ({len(null.triggers)})",
    )

    # ---- quiet is not enough: the same rules on a real shift of the most important numeric feature
    top = max(SCHEMA.numeric, key=lambda c: importance[c])
    pool = features_only(generate("baseline", SHIFTED_WINDOWS * WINDOW_ROWS, seed=4))
    moved = windows_of(shifted(pool, top, 0.5, reference), WINDOW_ROWS)
    ctx.inject(
        f"then a real shift: {top} ({importance[top]:.0%} of the model's importance) moves by 0.5 of its "
        f"standard deviation for {len(moved)} windows"
    )
    power = judge(ctx, policy, moved, reference, importance)
    k = policy.consecutive_windows
    first = power.first_trigger
    ctx.signal(
        f"naive: {power.any_column}/{power.windows} windows alarmed; Evidently's default: "
        f"{power.dataset_drift}/{power.windows}; guarded: first trigger at window "
        f"{'none' if first is None else first + 1}, {len(power.triggers)} in all (one per cooldown)"
    )
    ctx.check(
        first is not None and first + 1 <= k + 1,
        f"the guarded policy triggers within {k + 1} windows of the shift (window "
        f"{'none' if first is None else first + 1})",
    )
    ctx.check(
        power.dataset_drift == 0,
        f"Evidently's dataset default misses it (1 of {len(SCHEMA.names)} columns is under its 50%): quiet "
        "is not the same as right",
    )
    ctx.mitigate(
        "page on the guarded policy (importance-weighted drift, K windows in a row, a cooldown); keep "
        "per-feature drift (mlops_feature_drift) on a dashboard, never on a pager"
    )


def judge(
    ctx: Context,
    policy: Any,
    windows: list[pd.DataFrame],
    reference: pd.DataFrame,
    importance: dict[str, float],
) -> Stream:
    """Every window through the drift statistics and the policy, one a minute of simulated time."""
    resolve = ctx.choice.resolve
    verdicts = (verdict_of(fast_drift(reference, w, part=resolve), importance) for w in windows)
    result, _ = stream(policy, verdicts, part=resolve)
    return result
