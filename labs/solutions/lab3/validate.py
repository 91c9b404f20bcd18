"""A solution of lab 3's `validation-gate` (exercises/lab3/validate.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab3/validation-gate.toml applied to it (a check must fail on each).

The checks chosen: the schema (nulls aside), nulls relative to the reference, and the median of
the amount against the reference's. Measured over 50 seeds of every scenario, they stop each
broken batch for its own reason and never stop a real change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_lab.data.schema import LABEL, SCHEMA
from mlops_lab.pipeline.validate import (
    REASONS,
    UNIT_COLUMN,
    UNIT_RATIO,
    Problem,
    Reason,
    ValidationReport,
)


def validate_rows(
    rows: pd.DataFrame,
    reference: pd.DataFrame | None,
    *,
    max_null_fraction: float,
    unit_ratio: float = UNIT_RATIO,
    training: pd.DataFrame | None = None,
) -> ValidationReport:
    """Check new production `rows` (the schema's features) against the champion's training
    `reference` sample (None: no champion yet, so only checks that need no reference run).

    `training`, when given, is the combined frame the model would be fitted on: its schema and
    label are checked too (once the new rows themselves passed the schema check).
    """
    problems: list[Problem] = []
    checked: list[Reason] = ["schema_break", "missing_values"]  # these two need no reference

    # schema_break. No rows at all (a retrain before any traffic) has nothing new to check: a
    # DataFrame() would otherwise read as "every column is missing". max_null_fraction=1.0: nulls
    # are judged below, against the reference, not as a break of the schema.
    if len(rows) > 0:
        problems += [schema_problem(text) for text in SCHEMA.problems(rows, max_null_fraction=1.0)]
    if training is not None and not problems:
        problems += [schema_problem(f"training data: {text}") for text in training_problems(training)]

    # missing_values. Relative to the reference: a feature the champion was trained with 15%
    # missing is not broken at 15%, while a join that blanks 15% of a complete column is.
    for name in SCHEMA.names:
        if name not in rows.columns or rows.empty:
            continue  # a missing column is a schema break, reported above
        share = float(rows[name].isna().mean())
        ref_share = null_share(reference, name)
        if share > ref_share + max_null_fraction:
            problems.append(
                Problem(
                    "missing_values",
                    name,
                    f"{name}: {share:.1%} of {len(rows):,} new rows missing vs {ref_share:.1%} in the "
                    f"reference (at most {max_null_fraction:.1%} more allowed)",
                )
            )

    # unit_bug. The median, not the mean: a handful of huge (valid) purchases moves the mean
    # a lot and the median not at all, while cents for dollars move every row, so the median too.
    # Real covariate shift moves it by less than 2x, a unit change by 100x: a ratio of unit_ratio
    # catches the second and leaves room for the first, in both directions.
    if reference is not None and numeric(rows, UNIT_COLUMN) and numeric(reference, UNIT_COLUMN):
        checked.append("unit_bug")
        new = float(rows[UNIT_COLUMN].median())
        old = float(reference[UNIT_COLUMN].median())
        if np.isfinite(new) and np.isfinite(old) and new > 0 and old > 0:  # no rows: no median
            ratio = new / old
            if ratio >= unit_ratio or ratio <= 1 / unit_ratio:
                problems.append(
                    Problem(
                        "unit_bug",
                        UNIT_COLUMN,
                        f"{UNIT_COLUMN}: median {new:,.2f} in {len(rows):,} new rows vs {old:,.2f} in the "
                        f"reference, x{ratio:,.2f} (a unit change such as cents for dollars; "
                        f"limit x{unit_ratio:g})",
                    )
                )

    # The checks above ran in another order than REASONS: the first problem after sorting is the
    # one the run stops for (a schema break hides the rest: their columns may be gone).
    problems.sort(key=lambda p: REASONS.index(p.reason))
    return ValidationReport(len(rows), tuple(problems), tuple(sorted(checked, key=REASONS.index)))


def training_problems(training: pd.DataFrame) -> list[str]:
    """The training frame's schema problems (nulls aside), and its label: missing or null."""
    texts = SCHEMA.problems(training, max_null_fraction=1.0)
    if LABEL not in training.columns:
        texts.append(f"no label column {LABEL!r}")
    elif training[LABEL].isna().any():
        texts.append(f"{LABEL}: {int(training[LABEL].isna().sum()):,} rows without a label")
    return texts


def schema_problem(text: str) -> Problem:
    """SCHEMA.problems writes "column: what is wrong"; a "missing columns: ..." text names several."""
    head = text.removeprefix("training data: ")
    column = head.split(":", 1)[0] if ":" in head and not head.startswith("missing") else None
    return Problem("schema_break", column, text)


def null_share(reference: pd.DataFrame | None, name: str) -> float:
    """How often the reference misses `name` (0 without a reference: nothing was ever missing)."""
    if reference is None or name not in reference.columns or reference.empty:
        return 0.0
    return float(reference[name].isna().mean())


def numeric(frame: pd.DataFrame, column: str) -> bool:
    # Text in the amount column is a schema break; a median of it means nothing.
    return column in frame.columns and pd.api.types.is_numeric_dtype(frame[column])
