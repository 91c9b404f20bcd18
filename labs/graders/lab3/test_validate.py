"""Grader of lab 3 / validation-gate (exercises/lab3/validate.py): refuse a broken upstream, never real drift.

First the contract the pipeline relies on: the reference's ValidationReport, problems in REASONS
order, details naming columns, no rows, no reference, nulls the reference has, the training frame.
Then, the exercise being open-ended, measured behaviour: 50 seeds of every data generator scenario
(2,000 rows each, generated once for the module) against a baseline reference (features only, as
the champion's training sample is) with the pipeline's default max_null_fraction. A broken batch
must be stopped with its own reason on every seed; a real change must pass on every seed.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_lab.data.generator import generate
from mlops_lab.data.schema import LABEL, SCHEMA
from mlops_lab.pipeline.validate import REASONS, Problem, ValidationReport
from mlops_lab.settings import Settings

SEEDS = range(100, 150)
ROWS = 2_000
MAX_NULLS = Settings.model_fields["monitor_max_null_fraction"].default  # what the pipeline passes
BROKEN = ("unit_bug", "missing_values", "schema_break")  # each the reason it must be stopped with
REAL = ("baseline", "covariate_shift", "prior_shift", "concept_drift", "irrelevant_drift")
WHAT = {
    "baseline": "the same world as the reference",
    "covariate_shift": "amounts about 1.8x larger, more online and foreign spend",
    "prior_shift": "three times the fraud, the same features per class",
    "concept_drift": "the same features, a new fraud pattern",
    "irrelevant_drift": "another device mix",
}
NULLABLE = ("distance_from_home_km", "account_age_days")


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate("baseline", 5_000, seed=1)[SCHEMA.names]


@pytest.fixture(scope="module")
def batches() -> dict[str, list[pd.DataFrame]]:
    """50 batches of every scenario, generated once (about 3 s)."""
    return {s: [generate(s, ROWS, seed=seed) for seed in SEEDS] for s in (*BROKEN, *REAL)}


def check(impl: ModuleType, rows: pd.DataFrame, reference: pd.DataFrame | None, **kwargs: Any) -> Any:
    """The implementation's report on a copy of `rows` (so that no check changes another's data)."""
    return impl.validate_rows(rows.copy(), reference, max_null_fraction=MAX_NULLS, **kwargs)


def summary(report: Any) -> str:
    return str(report.summary()) if hasattr(report, "summary") else repr(report)


def reasons(report: Any) -> list[str]:
    return [p.reason for p in report.problems]


def stopped_as(impl: ModuleType, frames: list[pd.DataFrame], reference: pd.DataFrame, want: str) -> None:
    """Every frame is stopped with the reason `want`; the message counts and shows the first miss."""
    misses = []
    for seed, rows in zip(SEEDS, frames, strict=True):
        report = check(impl, rows, reference)
        if report.reason != want:
            misses.append((seed, report))
    if misses:
        seed, report = misses[0]
        pytest.fail(
            f"expected {len(frames)}/{len(frames)} stopped as {want}, got {len(frames) - len(misses)}/"
            f"{len(frames)}; first miss seed {seed}: {summary(report)}",
            pytrace=False,
        )


def passes(impl: ModuleType, scenario: str, frames: list[pd.DataFrame], reference: pd.DataFrame) -> None:
    """No frame is stopped; the message counts the false stops and shows the first."""
    stops = []
    for seed, rows in zip(SEEDS, frames, strict=True):
        report = check(impl, rows, reference)
        if not report.passed:
            stops.append((seed, report))
    if stops:
        seed, report = stops[0]
        pytest.fail(
            f"expected {len(frames)}/{len(frames)} {scenario} batches ({WHAT[scenario]}) to pass, got "
            f"{len(frames) - len(stops)}/{len(frames)}; first false stop seed {seed}: {summary(report)}",
            pytrace=False,
        )


def blank(frame: pd.DataFrame, columns: tuple[str, ...], every: int = 20, first: int = 3) -> pd.DataFrame:
    """`frame` with exactly first/every of the rows of each column missing (3/20: 15%)."""
    out = frame.copy()
    hit = (np.arange(len(out)) % every) < first
    for col in columns:
        out[col] = out[col].astype(float).mask(hit)
    return out


# ---------------------------------------------------------------- the contract the pipeline relies on
def test_report_type(
    impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame
) -> None:
    """the report is a ValidationReport of Problems (the classes of mlops_lab.pipeline.validate)

    The pipeline's validate step turns it into ValidationFailed.from_report(report).
    """
    for scenario in ("baseline", "unit_bug"):
        report = check(impl, batches[scenario][0], reference)
        assert isinstance(report, ValidationReport), (
            f"expected a ValidationReport, got {type(report).__name__}"
        )
        wrong = [type(p).__name__ for p in report.problems if not isinstance(p, Problem)]
        assert not wrong, f"expected the problems to be Problem instances, got {wrong}"
        assert report.rows == ROWS, f"expected rows={ROWS} (the rows checked), got {report.rows}"


def test_reasons_in_order(
    impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame
) -> None:
    """problems come in REASONS order (schema_break, unit_bug, missing_values), whatever order found in

    report.reason is the first problem's: a batch with several problems is stopped for the one
    that hides the others. problems.sort(key=lambda p: REASONS.index(p.reason)).
    """
    rows = blank(batches["unit_bug"][0], NULLABLE)  # cents and a failed join
    report = check(impl, rows, reference)
    got = reasons(report)
    assert {"unit_bug", "missing_values"} <= set(got), (
        f"expected a unit_bug and a missing_values problem (cents, and 15% nulls), got {summary(report)}"
    )
    assert got == sorted(got, key=REASONS.index), f"expected the problems in REASONS order, got {got}"
    rows = rows.copy()
    rows["merchant_category"] = rows["merchant_category"].replace("gambling", "crypto")  # unknown category
    got = reasons(check(impl, rows, reference))
    assert got and got[0] == "schema_break", f"expected schema_break first (an unknown category), got {got}"
    assert got == sorted(got, key=REASONS.index), f"expected the problems in REASONS order, got {got}"


def test_details_name_columns(
    impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame
) -> None:
    """each problem's detail names the column(s) it is about

    The person paged at 3 a.m. needs the column and the numbers, not just "unit_bug".
    """
    want = {
        "unit_bug": ("amount",),
        "missing_values": NULLABLE,
        "schema_break": ("amount", "hour"),
    }
    for scenario, columns in want.items():
        report = check(impl, batches[scenario][0], reference)
        details = " | ".join(p.detail for p in report.problems if p.reason == scenario)
        unnamed = [c for c in columns if c not in details]
        assert not unnamed, f"expected the {scenario} details to name {list(columns)}, got {details!r}"


def test_no_rows(impl: ModuleType, reference: pd.DataFrame) -> None:
    """no rows at all passes with rows=0 (a retrain before any traffic)

    DataFrame() has no columns at all: that is not a renamed column, and there is no median to take.
    """
    for rows in (pd.DataFrame(), generate("baseline", 0, seed=1)[SCHEMA.names]):
        report = check(impl, rows, reference)
        assert report.passed and report.rows == 0, (
            f"expected a pass with rows=0 for {len(rows.columns)} columns and no row, "
            f"got rows={report.rows}, {summary(report)}"
        )


def test_no_reference(impl: ModuleType, batches: dict[str, list[pd.DataFrame]]) -> None:
    """without a reference (the first model), schema breaks and missing values are stopped, good data passes

    reference is None until there is a champion: the schema needs no reference, and nulls are
    then judged against none at all.
    """
    for scenario, want in (("schema_break", "schema_break"), ("missing_values", "missing_values")):
        report = check(impl, batches[scenario][0], None)
        assert report.reason == want, f"expected {want} without a reference, got {summary(report)}"
    report = check(impl, batches["baseline"][0], None)
    assert report.passed, f"expected a baseline batch to pass without a reference, got {summary(report)}"


def test_nulls_the_reference_has(impl: ModuleType, batches: dict[str, list[pd.DataFrame]]) -> None:
    """nulls the reference already has at the same rate pass, in the rows and in the training frame

    Judge nulls relative to the reference: rows[col].isna().mean() > reference[col].isna().mean()
    + max_null_fraction. A feature the model was trained with 15% missing is not broken at 15%.
    """
    reference = blank(generate("baseline", 5_000, seed=1)[SCHEMA.names], NULLABLE)
    rows = blank(batches["baseline"][0], NULLABLE)
    training = rows[[*SCHEMA.names, LABEL]]
    report = check(impl, rows, reference, training=training)
    assert report.passed, (
        f"expected 15% nulls to pass against a reference with 15% nulls, got {summary(report)}"
    )
    clean = generate("baseline", 5_000, seed=1)[SCHEMA.names]
    report = check(impl, rows, clean)
    assert report.reason == "missing_values", (
        f"expected missing_values for 15% nulls against a reference without nulls, got {summary(report)}"
    )


def test_training_label(
    impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame
) -> None:
    """a training frame without its label, or with rows without a label, is a schema_break

    Check `training` too once the rows pass: LABEL missing from its columns, or
    training[LABEL].isna().any(), means the model would be fitted on nothing or on NaN.
    """
    rows = batches["baseline"][0]
    training = rows[[*SCHEMA.names, LABEL]].copy()
    report = check(impl, rows, reference, training=training)
    assert report.passed, f"expected a good training frame to pass, got {summary(report)}"
    report = check(impl, rows, reference, training=training.drop(columns=[LABEL]))
    assert report.reason == "schema_break", (
        f"expected schema_break for a training frame without {LABEL}, got {summary(report)}"
    )
    unlabelled = training.copy()
    unlabelled[LABEL] = unlabelled[LABEL].astype(float).mask(np.arange(len(unlabelled)) % 50 == 0)
    report = check(impl, rows, reference, training=unlabelled)
    assert report.reason == "schema_break", (
        f"expected schema_break for a training frame with 2% of rows without a label, got {summary(report)}"
    )


def test_checked(impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame) -> None:
    """`checked` lists the checks that ran: all three with a reference, no unit_bug without one

    A PASS should say what was checked: a unit check that could not run (no reference, no
    champion yet) must not be listed as if it had passed.
    """
    report = check(impl, batches["baseline"][0], reference)
    missing = [r for r in REASONS if r not in report.checked]
    assert not missing, (
        f"expected checked to list {list(REASONS)} with a reference, got {list(report.checked)}"
    )
    report = check(impl, batches["baseline"][0], None)
    got = list(report.checked)
    assert "unit_bug" not in got and {"schema_break", "missing_values"} <= set(got), (
        f"expected checked to list schema_break and missing_values, not unit_bug, without a reference, "
        f"got {got}"
    )


# ---------------------------------------------------------------- 50 seeds: broken batches are stopped
def test_unit_bug_stopped(
    impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame
) -> None:
    """every unit_bug batch (amounts in cents) is stopped as unit_bug, on all 50 seeds

    Compare a typical value (the median of UNIT_COLUMN) of the rows with the reference's: cents
    are 100x dollars, real covariate shift moves it by less than 2x.
    """
    stopped_as(impl, batches["unit_bug"], reference, "unit_bug")


def test_missing_values_stopped(
    impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame
) -> None:
    """every missing_values batch (a failed join blanks a feature) is stopped as missing_values, all 50 seeds

    SCHEMA.problems(rows) counts nulls as schema problems unless max_null_fraction=1.0: judge the
    nulls yourself, against the reference's, and report them as missing_values.
    """
    stopped_as(impl, batches["missing_values"], reference, "missing_values")


def test_schema_break_stopped(
    impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame
) -> None:
    """every schema_break batch (a renamed column, text for numbers) is stopped as schema_break, all 50 seeds

    SCHEMA.problems(rows, max_null_fraction=1.0) lists the breaks; checks that need a column must
    not crash when it is gone.
    """
    stopped_as(impl, batches["schema_break"], reference, "schema_break")


# ---------------------------------------------------------------- 50 seeds: real changes pass
def test_baseline_passes(
    impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame
) -> None:
    """every baseline batch passes, on all 50 seeds (no false stop)"""
    passes(impl, "baseline", batches["baseline"], reference)


def test_covariate_shift_passes(
    impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame
) -> None:
    """every covariate_shift batch passes, on all 50 seeds: drift is a reason to retrain, not to stop

    Its median amount moves by about 1.8x: a unit check must leave room for real drift.
    """
    passes(impl, "covariate_shift", batches["covariate_shift"], reference)


def test_prior_shift_passes(
    impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame
) -> None:
    """every prior_shift batch passes, on all 50 seeds

    Three times the fraud with the same features per class: no feature check should fire on it.
    """
    passes(impl, "prior_shift", batches["prior_shift"], reference)


def test_concept_drift_passes(
    impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame
) -> None:
    """every concept_drift batch passes, on all 50 seeds"""
    passes(impl, "concept_drift", batches["concept_drift"], reference)


def test_irrelevant_drift_passes(
    impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame
) -> None:
    """every irrelevant_drift batch passes, on all 50 seeds"""
    passes(impl, "irrelevant_drift", batches["irrelevant_drift"], reference)


def test_unit_change_downwards(
    impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame
) -> None:
    """amounts 100x smaller than the reference's are a unit_bug too, on all 50 seeds

    A unit change goes either way (dollars where the reference had cents, hundreds for units):
    a ratio of unit_ratio or more, or of 1/unit_ratio or less.
    """
    frames = []
    for rows in batches["baseline"]:
        smaller = rows.copy()
        smaller["amount"] = smaller["amount"] / 100
        frames.append(smaller)
    stopped_as(impl, frames, reference, "unit_bug")


def test_outliers_are_not_a_unit_change(
    impl: ModuleType, batches: dict[str, list[pd.DataFrame]], reference: pd.DataFrame
) -> None:
    """a few very large, valid amounts (1% of rows at 900,000) are not a unit change, on all 50 seeds

    A unit change moves every row; a handful of huge purchases moves the mean by x70 and the
    median not at all: judge a typical value, not the mean.
    """
    frames = []
    for rows in batches["baseline"]:
        whales = rows.copy()
        whales.loc[whales.index[:: len(whales) // 20], "amount"] = 900_000.0
        frames.append(whales)
    stops = [
        (seed, r)
        for seed, rows in zip(SEEDS, frames, strict=True)
        if not (r := check(impl, rows, reference)).passed
    ]
    if stops:
        seed, report = stops[0]
        pytest.fail(
            f"expected {len(frames)}/{len(frames)} batches with 1% of amounts at 900,000 to pass, got "
            f"{len(frames) - len(stops)}/{len(frames)}; first false stop seed {seed}: {summary(report)}",
            pytrace=False,
        )
