"""Data drift: the one module that talks to Evidently (0.7 API).

    python -m mlops_lab.monitoring.drift     # every scenario vs a baseline reference

`detect_drift` compares a window of production features with the training reference, column
by column, and returns a typed `DriftResult`; `score_drift` does the same for the model's score
distribution, a separate signal that needs no feature schema. Nothing else in the lab imports
Evidently, so an Evidently upgrade touches this file only.

Which test Evidently picks when no method is given (evidently.legacy.calculations.stattests
.registry._get_default_stattest), decided by the size of the *reference*:

  reference <= 1000 rows   numeric: K-S p-value (chi-square or Z-test when <= 5 distinct values)
                           categorical: chi-square p-value (Z-test when binary); threshold 0.05
  reference  > 1000 rows   numeric: Wasserstein distance normed by the reference std
                           (Jensen-Shannon when <= 5 distinct values)
                           categorical: Jensen-Shannon distance; threshold 0.1

So the threshold direction flips with the reference size: a p-value means drift when it is
*below* its threshold, a distance when it is *at or above* it. `ColumnDrift.kind` says which.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlops_lab.data.schema import SCHEMA

StatKind = Literal["p_value", "distance"]

SCORE_COLUMN = "score"


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    drifted: bool  # Evidently's verdict (its per-column test failed), never recomputed here
    method: str  # Evidently's display name, e.g. "K-S p_value", "Wasserstein distance (normed)"
    statistic: float
    threshold: float
    kind: StatKind  # p_value: drift when statistic < threshold; distance: drift when statistic >= threshold

    @property
    def beyond_threshold(self) -> bool:
        """The direction rule applied to statistic and threshold.

        Equals `drifted` except at exact equality: Evidently's K-S and Cramer-von Mises drift
        at p <= threshold and its energy distance at > threshold.
        """
        if self.kind == "p_value":
            return self.statistic < self.threshold
        return self.statistic >= self.threshold

    @property
    def severity(self) -> float:
        """How far past its threshold a drifted column is, from 0 to 1.

        For a distance: (statistic / threshold - 1), capped at 1, so a column counts in full from
        twice its threshold. Sampling noise flags columns just past the threshold (measured on
        500-row baseline windows: 1.0-1.3x), a real half-SD shift lands at about 5x. A p-value
        has no such scale: a drifted p-value column counts in full.
        """
        if not self.drifted:
            return 0.0
        if self.kind == "p_value" or self.threshold <= 0:
            return 1.0
        return float(min(max(self.statistic / self.threshold - 1.0, 0.0), 1.0))

    def describe(self) -> str:
        if self.kind == "p_value":
            op = "<" if self.beyond_threshold else ">="
        else:
            op = ">=" if self.beyond_threshold else "<"
        state = "DRIFT" if self.drifted else "ok"
        return f"{self.column}: {state} ({self.method} {self.statistic:.4g} {op} {self.threshold:g})"


@dataclass(frozen=True)
class DriftResult:
    columns: tuple[ColumnDrift, ...]
    share_drifted: float
    dataset_drift: bool  # share_drifted >= share_threshold
    share_threshold: float
    reference_rows: int
    current_rows: int

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def column(self, name: str) -> ColumnDrift:
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)

    def summary(self) -> str:
        verdict = "DATASET DRIFT" if self.dataset_drift else "no dataset drift"
        drifted = ", ".join(self.drifted_columns) or "none"
        return (
            f"{verdict}: {self.share_drifted:.0%} of {len(self.columns)} columns drifted ({drifted}); "
            f"{self.current_rows} current vs {self.reference_rows} reference rows"
        )


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    share_threshold: float = 0.5,
    method: str | None = None,
    threshold: float | None = None,
    html_path: Path | None = None,
) -> DriftResult:
    """Per-column drift of `current` against `reference`, and whether the dataset drifted.

    `columns` defaults to every schema feature. Column types come from `SCHEMA` (a column outside
    it, such as a score, is numeric if its dtype is), so Evidently never guesses them. `method`
    and `threshold` (an Evidently stattest name such as "psi", "ks", "wasserstein") apply to all
    columns; None keeps Evidently's defaults (see the module docstring). NaNs are dropped by
    Evidently per column; a column with no values at all in either frame is refused, since that
    is a data-quality failure (`SCHEMA.problems` reports it), not a distribution to compare.
    Raises ValueError on an empty frame, missing columns or a numeric column holding non-numbers.
    """
    cols = list(SCHEMA.names if columns is None else columns)
    numeric = _check_inputs(reference, current, cols, share_threshold)

    # Imported here, not at module level: `import evidently` takes ~10 s of CPU, which code that
    # only handles the result types (a CLI, a status page) should not pay.
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, ValueDrift

    definition = DataDefinition(
        numerical_columns=[c for c in cols if c in numeric],
        categorical_columns=[c for c in cols if c not in numeric],
    )
    per_column = [ValueDrift(column=c, method=method, threshold=threshold) for c in cols]
    counter = DriftedColumnsCount(
        columns=cols, drift_share=share_threshold, method=method, threshold=threshold
    )
    # include_tests=True is what attaches the pass/fail verdicts to each metric result.
    snapshot = Report([*per_column, counter], include_tests=True).run(
        Dataset.from_pandas(current[cols], data_definition=definition),  # current comes first
        Dataset.from_pandas(reference[cols], data_definition=definition),
    )
    results = snapshot.metric_results  # MetricId -> result; a metric's id is its fingerprint
    drifts = tuple(_column_drift(results[m.metric_id]) for m in per_column)
    # DriftedColumnsCount's result has .share (a SingleValue) and one test "lt": share < drift_share.
    # Its FAIL is Evidently's dataset-drift verdict.
    counted = results[counter.metric_id]

    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        partial = html_path.with_name(html_path.name + ".partial")
        snapshot.save_html(str(partial))
        os.replace(partial, html_path)  # whoever serves the folder never shows half a report

    return DriftResult(
        columns=drifts,
        share_drifted=float(counted.share.value),
        dataset_drift=_failed(counted.tests),
        share_threshold=share_threshold,
        reference_rows=len(reference),
        current_rows=len(current),
    )


def score_drift(
    reference_scores: npt.ArrayLike,
    current_scores: npt.ArrayLike,
    *,
    method: str | None = None,
    threshold: float | None = None,
) -> ColumnDrift:
    """Drift of the model's score distribution: a signal that needs neither labels nor features."""
    ref = pd.DataFrame({SCORE_COLUMN: np.asarray(reference_scores, dtype=float).ravel()})
    cur = pd.DataFrame({SCORE_COLUMN: np.asarray(current_scores, dtype=float).ravel()})
    result = detect_drift(ref, cur, [SCORE_COLUMN], method=method, threshold=threshold)
    return result.columns[0]


def _check_inputs(
    reference: pd.DataFrame, current: pd.DataFrame, cols: list[str], share_threshold: float
) -> set[str]:
    """Refuse what Evidently would crash on (or silently misread); return the numeric columns."""
    if not 0.0 < share_threshold <= 1.0:
        raise ValueError(f"share_threshold must be in (0, 1], got {share_threshold}")
    if not cols or len(set(cols)) != len(cols):
        raise ValueError(f"columns must be distinct and not empty, got {cols}")
    for which, frame in (("reference", reference), ("current window", current)):
        if len(frame) == 0:
            raise ValueError(f"the {which} is empty: drift needs at least one row")
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"the {which} lacks columns: {', '.join(missing)}")
        empty = [c for c in cols if frame[c].notna().sum() == 0]
        if empty:
            raise ValueError(f"the {which} has no values at all in: {', '.join(empty)}")
    # Schema features have a declared kind; anything else (a score column) goes by its dtype.
    numeric = {
        c
        for c in cols
        if (SCHEMA[c].kind == "numeric" if c in SCHEMA.names else _numeric_dtype(reference[c]))
    }
    for which, frame in (("reference", reference), ("current window", current)):
        wrong = [f"{c} ({frame[c].dtype})" for c in cols if c in numeric and not _numeric_dtype(frame[c])]
        if wrong:
            raise ValueError(f"the {which} has non-numeric values in numeric columns: {', '.join(wrong)}")
    return numeric


def _numeric_dtype(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _column_drift(result: Any) -> ColumnDrift:
    # A ValueDrift result is a SingleValue: .value is the drift score (p-value or distance);
    # .metric_value_location.metric.params holds the column and the method and threshold that
    # Evidently resolved (its defaults when we passed None); .tests holds one MetricTestResult
    # (id "drift") whose status is FAIL when the column drifted.
    params = result.metric_value_location.metric.params
    statistic, limit = float(result.value), float(params["threshold"])
    drifted = _failed(result.tests)
    name = str(params["method"])
    display, kind = _stattests().get(name, (name, None))
    if kind is None:
        # A test this table does not know: exactly one direction agrees with Evidently's verdict.
        kind = "p_value" if drifted == (statistic < limit) else "distance"
    return ColumnDrift(str(params["column"]), drifted, display, statistic, limit, kind)


def _failed(tests: Sequence[Any]) -> bool:
    if not tests:
        raise RuntimeError("Evidently returned no test results (the report needs include_tests=True)")
    errors = [t.description for t in tests if t.status.value == "ERROR"]
    if errors:
        raise RuntimeError(f"Evidently could not run a drift test: {'; '.join(errors)}")
    return any(t.status.value == "FAIL" for t in tests)


@functools.cache
def _stattests() -> dict[str, tuple[str, StatKind]]:
    """Evidently stattest name or display name -> (display name, kind).

    Built from Evidently's own StatTest objects. A params "method" is the display name when
    Evidently chose the test and the short name ("psi") when the caller did.
    """
    from evidently.legacy.calculations import stattests as st

    # Each implementation returns (p_value, p_value < threshold) (K-S and CvM: <=) ...
    p_values = (
        st.anderson_darling_test,
        st.chi_stat_test,
        st.cramer_von_mises,
        st.empirical_mmd,
        st.epps_singleton_test,
        st.fisher_exact_test,
        st.g_test,
        st.ks_stat_test,
        st.mann_whitney_u_stat_test,
        st.t_test,
        st.tvd_test,
        st.z_stat_test,
    )
    # ... or (distance, distance >= threshold) (energy distance: >).
    distances = (
        st.energy_dist_test,
        st.hellinger_stat_test,
        st.jensenshannon_stat_test,
        st.kl_div_stat_test,
        st.psi_stat_test,
        st.wasserstein_stat_test,
    )
    table: dict[str, tuple[str, StatKind]] = {}
    for test in p_values:
        table[test.name] = table[test.display_name] = (test.display_name, "p_value")
    for test in distances:
        table[test.name] = table[test.display_name] = (test.display_name, "distance")
    return table


def _main() -> None:
    from mlops_lab.data.generator import SCENARIOS, generate

    reference = generate("baseline", 5_000, seed=1)
    print("reference: 5000 baseline rows; windows: 1000 rows of each scenario\n")
    for scenario in SCENARIOS:
        try:
            result = detect_drift(reference, generate(scenario, 1_000, seed=2))
        except ValueError as err:
            print(f"{scenario:17} refused: {err}\n")
            continue
        print(f"{scenario:17} {result.summary()}")
        for column in result.columns:
            print(f"{'':19}{column.describe()}")
        print()


if __name__ == "__main__":
    _main()
