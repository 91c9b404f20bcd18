"""Data validation for the retraining pipeline: refuse to learn a broken upstream.

    python -m mlops_lab.pipeline.validate     # checks each generated scenario against a baseline reference

A drift monitor cannot tell "the world changed" from "a producer broke": both move the
feature distributions. Retraining on the second would teach the model the bug, and the
evaluation gate would not notice (the holdout carries the same bug). So before training, the
new production rows are checked against the champion's training reference:

  schema_break     the rows break the schema (`SCHEMA.problems`: a renamed column, text in a
                   numeric column, an unknown category); checked first, the others need the columns
  unit_bug         the median amount moved by a factor of `unit_ratio` or more (20: cents are 100x
                   dollars, a real covariate shift moves it by less than 2x)
  missing_values   a feature is missing in more than `max_null_fraction` more of the rows than in
                   the reference (a failed upstream join blanks a column)

`validate_rows` is pure (frames in, a typed report out), so tests and the labs call it directly;
the pipeline's validate step raises `ValidationFailed` from the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from mlops_lab.data.schema import LABEL, SCHEMA

Reason = Literal["schema_break", "unit_bug", "missing_values"]
# Reported in this order: a schema break hides the others (the columns they need may be gone).
REASONS: tuple[Reason, ...] = ("schema_break", "unit_bug", "missing_values")

# A median amount this many times larger (or smaller) than the reference's is a unit change, not
# drift: cents are 100x dollars, the covariate_shift scenario moves the median by about 1.8x.
UNIT_RATIO = 20.0
UNIT_COLUMN = "amount"


@dataclass(frozen=True)
class Problem:
    reason: Reason
    column: str | None
    detail: str  # names the column and the numbers

    def describe(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class ValidationReport:
    rows: int  # production rows checked
    problems: tuple[Problem, ...]
    checked: tuple[str, ...]  # the checks that ran (unit_bug needs a reference and an amount column)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> Reason | None:
        """The first problem's reason, in REASONS order (None when the rows passed)."""
        return self.problems[0].reason if self.problems else None

    def summary(self) -> str:
        if self.passed:
            return f"PASS ({self.rows:,} rows; checked {', '.join(self.checked)})"
        return "FAIL (" + "; ".join(p.describe() for p in self.problems) + ")"


class PipelineStopped(Exception):
    """A step decided the run must not go on (bad data, a failed gate): an outcome, not a crash."""

    def __init__(self, step: str, reason: str, detail: str) -> None:
        super().__init__(f"{step} stopped the run ({reason}): {detail}")
        self.step = step
        self.reason = reason
        self.detail = detail


class ValidationFailed(PipelineStopped):
    """The new data is broken; `reason` is one of REASONS, the message names columns and numbers."""

    def __init__(self, reason: str, detail: str, report: ValidationReport | None = None) -> None:
        super().__init__("validate", reason, detail)
        self.report = report

    @classmethod
    def from_report(cls, report: ValidationReport) -> ValidationFailed:
        assert report.reason is not None, "a passing report is not a failure"
        return cls(report.reason, "; ".join(p.detail for p in report.problems), report)


def validate_rows(
    rows: pd.DataFrame,
    reference: pd.DataFrame | None,
    *,
    max_null_fraction: float,
    unit_ratio: float = UNIT_RATIO,
    training: pd.DataFrame | None = None,
) -> ValidationReport:
    """Check new production `rows` (the schema's features) against the champion's training
    `reference` sample (None: no champion yet, so only the schema and absolute null checks run).

    `training`, when given, is the combined frame the model would be fitted on: its schema and
    label are checked too (once the new rows themselves passed the schema check).
    """
    problems: list[Problem] = []
    checked = ["schema_break"]
    # Nulls are judged below, relative to the reference: the schema check only sees the rest.
    if len(rows):  # no production rows yet (a retrain before traffic): nothing new to check
        problems += [_schema_problem(text) for text in SCHEMA.problems(rows, max_null_fraction=1.0)]
    if training is not None and not problems:
        texts = SCHEMA.problems(training, max_null_fraction=1.0)
        if LABEL not in training.columns:
            texts.append(f"missing label column {LABEL}")
        elif training[LABEL].isna().any():
            texts.append(f"{LABEL}: {int(training[LABEL].isna().sum()):,} rows without a label")
        problems += [_schema_problem(text, prefix="training data: ") for text in texts]

    # --8<-- [start:unit_bug]
    if reference is not None and _numeric(rows, UNIT_COLUMN) and _numeric(reference, UNIT_COLUMN):
        checked.append("unit_bug")
        new_median = float(np.nanmedian(rows[UNIT_COLUMN].to_numpy(dtype=float))) if len(rows) else 0.0
        ref_median = float(np.nanmedian(reference[UNIT_COLUMN].to_numpy(dtype=float)))
        if len(rows) and new_median > 0 and ref_median > 0:
            ratio = new_median / ref_median
            if ratio >= unit_ratio or ratio <= 1 / unit_ratio:
                problems.append(
                    Problem(
                        "unit_bug",
                        UNIT_COLUMN,
                        f"{UNIT_COLUMN}: median {new_median:,.2f} in {len(rows):,} new rows vs "
                        f"{ref_median:,.2f} in the champion's reference (x{ratio:,.1f}; a unit change "
                        f"such as cents for dollars, limit x{unit_ratio:g})",
                    )
                )
    # --8<-- [end:unit_bug]

    checked.append("missing_values")
    for feat in SCHEMA.features:
        if feat.name not in rows.columns or not len(rows):
            continue
        share = float(rows[feat.name].isna().mean())
        ref_share = 0.0
        if reference is not None and feat.name in reference.columns and len(reference):
            ref_share = float(reference[feat.name].isna().mean())
        if share > ref_share + max_null_fraction:
            problems.append(
                Problem(
                    "missing_values",
                    feat.name,
                    f"{feat.name}: {share:.1%} missing in {len(rows):,} new rows vs {ref_share:.1%} in "
                    f"the champion's reference (allowed {max_null_fraction:.1%} more)",
                )
            )
    problems.sort(key=lambda p: REASONS.index(p.reason))
    return ValidationReport(len(rows), tuple(problems), tuple(checked))


def _schema_problem(text: str, prefix: str = "") -> Problem:
    column = text.split(":", 1)[0] if ":" in text and not text.startswith("missing") else None
    return Problem("schema_break", column, prefix + text)


def _numeric(frame: pd.DataFrame, column: str) -> bool:
    return column in frame.columns and pd.api.types.is_numeric_dtype(frame[column])


def _main() -> None:
    from mlops_lab.data.generator import SCENARIOS, generate

    reference = generate("baseline", 5_000, seed=1)[SCHEMA.names]
    for scenario in SCENARIOS:
        report = validate_rows(generate(scenario, 2_000, seed=2), reference, max_null_fraction=0.01)
        print(f"{scenario:18} {report.summary()}")


if __name__ == "__main__":
    _main()
