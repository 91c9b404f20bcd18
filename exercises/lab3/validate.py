"""Lab 3, exercise `validation-gate`: refuse to learn a broken upstream.

    make lab-3        grade it          make hint-3      one more hint
    Reference: reference/mlops_lab/pipeline/validate.py     Docs: docs/labs/lab-3-orchestration.md

A drift monitor cannot tell "the world changed" from "a producer broke": both move the feature
distributions. Retraining on the second teaches the model the bug, and the evaluation gate does
not notice (its holdout carries the same bug). The pipeline's validate step calls your
`validate_rows` on the new production rows before anything trains, and stops the run on its
first problem's reason.

This exercise is open-ended: choose the checks. The grader measures the outcome over 50 seeds of
the data generator's scenarios: every broken batch (unit_bug, missing_values, schema_break) must
be stopped with that reason, and the real changes (baseline, covariate_shift, prior_shift,
concept_drift, irrelevant_drift) must pass, with no false stop at all.

What it works with:

    Problem(reason, column, detail)      one problem; reason is one of REASONS
    ValidationReport(rows, problems, checked)   .passed, .reason (the first problem's)
    REASONS = ("schema_break", "unit_bug", "missing_values"): report problems in this order
    SCHEMA (mlops_lab.data.schema): SCHEMA.names, SCHEMA.features (name, kind, minimum, ...),
    SCHEMA.problems(frame, max_null_fraction=...) -> texts (a missing column, text in a numeric
    column, an unknown category, ...), LABEL ("is_fraud")
    python -m mlops_lab.data.generator --help     the scenarios, and what each one changes
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_lab.data.schema import LABEL, SCHEMA
from mlops_lab.pipeline.validate import (
    REASONS,
    UNIT_COLUMN,
    UNIT_RATIO,
    PipelineStopped,
    Problem,
    Reason,
    ValidationFailed,
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
    # TODO(lab-3): a ValidationReport of the problems you find, sorted in REASONS order, and
    #  `checked`, the names of the checks that ran.
    #  - schema_break: the rows' own schema problems (nulls aside: judge those relative to the
    #    reference), then, if none, the training frame's, including a missing or null label.
    #  - unit_bug: a value that moved by orders of magnitude while its distribution kept its
    #    shape (cents for dollars in UNIT_COLUMN): a ratio of unit_ratio or more, either way.
    #  - missing_values: a feature missing in more than max_null_fraction more of the rows than
    #    in the reference (a feature the reference already misses as often is not broken).
    #  Every problem's detail names the column and the numbers a person needs.
    #  No rows at all is not a problem (a retrain before any traffic): pass with rows=0.
    #  Think about: which real changes look like a broken upstream to a naive check, and what
    #  separates them (prior_shift, covariate_shift)?
    raise NotImplementedError("TODO(lab-3): the validation gate")
