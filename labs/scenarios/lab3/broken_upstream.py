"""lab3/broken-upstream: a broken upstream reaches the retraining pipeline.

    make scenario S=lab3/broken-upstream [IMPL=exercises]

Two nightly runs, each over its day's data window. On the first day a producer starts sending
`amount` in cents; on the second, after that fix, a failed upstream join blanks two features.
Both batches drift, so a drift monitor would happily ask for a retrain, and a model trained on
them would learn the bug while the gate, whose holdout carries the same bug, would not notice.
The validate step must stop each run before train, with the reason and the column and numbers
that explain it; no version is registered and @champion stays. With IMPL=exercises the
validation gate and the data window are yours (exercises/lab3/validate.py, window.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlops_lab.data.schema import SCHEMA
from mlops_lab.labs.scenarios import Context
from mlops_lab.labs.testbed import log_traffic, versions
from mlops_lab.lifecycle.tracking import CHAMPION, client_for, version_by_alias
from mlops_lab.pipeline import run as pipeline_run
from mlops_lab.pipeline.rundir import PipelineResult

ROWS = 600
HOUR = timedelta(hours=1)  # predictions from 01:00 to 23:00 of their day, each labelled an hour later


def run(ctx: Context) -> None:
    ctx.module("validation-gate")  # resolved through ctx.choice.resolve by the runs below
    v1 = ctx.pipeline_home()
    s = ctx.settings
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    before = versions(s)

    day = today - timedelta(days=2)
    cents = log_traffic(s, "unit_bug", ROWS, seed=5, at=day + HOUR, span=22 * HOUR, label_delay=HOUR)
    ctx.inject(f"{day:%Y-%m-%d}: the producer sends amount in cents ({ROWS} labelled predictions)")
    ctx.symptom(f"median amount served that day: {cents['amount'].median():,.2f}")
    first = nightly(ctx, day)
    ctx.check(
        (first.status, first.step, first.stop_reason) == ("stopped", "validate", "unit_bug"),
        "the run stopped at validate with unit_bug",
    )
    ctx.check(
        "amount" in (first.detail or "") and "median" in (first.detail or ""),
        "the detail names amount and its medians",
    )
    ctx.check(first.done == ("extract",) and first.version is None, "nothing after extract ran: no training")

    day = today - timedelta(days=1)
    blanked = log_traffic(s, "missing_values", ROWS, seed=6, at=day + HOUR, span=22 * HOUR, label_delay=HOUR)
    columns = [c for c in SCHEMA.names if blanked[c].isna().mean() > 0.05]
    shares = ", ".join(f"{c} {blanked[c].isna().mean():.0%}" for c in columns)
    ctx.inject(f"{day:%Y-%m-%d}: the cents are fixed; a failed upstream join blanks {', '.join(columns)}")
    ctx.symptom(f"missing in that day's rows: {shares}")
    second = nightly(ctx, day)
    ctx.check(
        (second.status, second.step, second.stop_reason) == ("stopped", "validate", "missing_values"),
        "the run stopped at validate with missing_values",
    )
    ctx.check(
        bool(columns) and all(c in (second.detail or "") for c in columns) and "%" in (second.detail or ""),
        f"the detail names {' and '.join(columns)} with their shares",
    )
    ctx.check(
        second.done == ("extract",) and second.version is None, "nothing after extract ran: no training"
    )

    after = versions(s)
    ctx.check(
        after == before, f"no version registered by either run (versions {', '.join('v' + v for v in after)})"
    )
    champion = version_by_alias(client_for(s), s.model_name, CHAMPION)
    ctx.check(champion is not None and str(champion.version) == v1, f"@champion untouched: v{v1}")
    ctx.mitigate(
        "fix the producer, then re-run the days' windows; never retrain on a bug the gate cannot see"
    )


def nightly(ctx: Context, day: datetime) -> PipelineResult:
    """The nightly run over [day, day + 1 day), as its data window."""
    window = {"window_start": day.isoformat(), "window_end": (day + timedelta(days=1)).isoformat()}
    result = pipeline_run.retrain(
        ctx.settings,
        f"nightly {day:%Y-%m-%d}",
        in_process=True,
        run_id=f"nightly-{day:%Y%m%d}",
        params=window,
        part=ctx.choice.resolve,
    )
    ctx.signal(result.summary())
    return result
