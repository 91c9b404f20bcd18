"""The drift adapter against real Evidently on generated scenarios (no mocks).

Windows are 1000 rows against a 5000-row baseline reference, the shape the monitor uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_lab.data.generator import generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.monitoring.drift import DriftResult, detect_drift, score_drift

WINDOW = 1_000
IMPORTANT = ("amount", "channel", "country")


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate("baseline", 5_000, seed=1)


def window(scenario: str, n: int = WINDOW, seed: int = 7) -> pd.DataFrame:
    return generate(scenario, n, seed=seed)


def assert_consistent(result: DriftResult) -> None:
    """Evidently's verdicts, its dataset share and the stated threshold direction all agree."""
    assert [c.column for c in result.columns] == SCHEMA.names
    assert result.share_drifted == pytest.approx(len(result.drifted_columns) / len(result.columns))
    assert result.dataset_drift == (result.share_drifted >= result.share_threshold)
    for c in result.columns:
        assert c.drifted == c.beyond_threshold, c.describe()
        if c.kind == "p_value":
            assert c.drifted == (c.statistic < c.threshold), c.describe()
        else:
            assert c.drifted == (c.statistic >= c.threshold), c.describe()


def test_baseline_against_baseline_is_quiet(reference: pd.DataFrame) -> None:
    result = detect_drift(reference, window("baseline"))
    assert_consistent(result)
    assert not result.dataset_drift
    assert len(result.drifted_columns) <= 1, result.summary()
    assert (result.reference_rows, result.current_rows) == (5_000, WINDOW)
    # A reference over 1000 rows gets Evidently's distance defaults.
    assert {c.kind for c in result.columns} == {"distance"}


def test_covariate_shift_moves_the_features_that_matter(reference: pd.DataFrame) -> None:
    result = detect_drift(reference, window("covariate_shift"))
    assert_consistent(result)
    assert set(IMPORTANT) <= set(result.drifted_columns), result.summary()
    assert result.dataset_drift


def test_unit_bug_drifts_amount(reference: pd.DataFrame) -> None:
    result = detect_drift(reference, window("unit_bug"))
    assert_consistent(result)
    assert "amount" in result.drifted_columns
    assert result.column("amount").statistic > 10 * result.column("amount").threshold  # x100 is huge


def test_irrelevant_drift_is_only_device_os(reference: pd.DataFrame) -> None:
    result = detect_drift(reference, window("irrelevant_drift"))
    assert_consistent(result)
    assert "device_os" in result.drifted_columns
    assert not set(IMPORTANT) & set(result.drifted_columns), result.summary()


def test_missing_values_do_not_crash(reference: pd.DataFrame) -> None:
    current = window("missing_values")
    assert current["distance_from_home_km"].isna().any()
    result = detect_drift(reference, current)
    assert_consistent(result)
    assert result.current_rows == WINDOW


def test_p_values_and_distances_keep_their_directions(reference: pd.DataFrame) -> None:
    current = window("covariate_shift")
    # A reference of <= 1000 rows makes Evidently pick p-value tests (K-S, chi-square)...
    small = detect_drift(reference.head(800), current)
    assert_consistent(small)
    assert {c.kind for c in small.columns} == {"p_value"}
    assert {c.method for c in small.columns} == {"K-S p_value", "chi-square p_value"}
    assert {c.threshold for c in small.columns} == {0.05}
    # ... and both directions occur: drifted columns sit below the threshold, quiet ones above.
    assert small.column("amount").drifted and small.column("amount").statistic < 0.05
    assert not small.column("hour").drifted and small.column("hour").statistic >= 0.05
    # An explicit method overrides the default; PSI is a distance, drift at or above 0.1.
    psi = detect_drift(reference.head(800), current, ["amount", "hour"], method="psi")
    assert [(c.method, c.kind) for c in psi.columns] == [("PSI", "distance")] * 2
    assert psi.column("amount").drifted and psi.column("amount").statistic >= 0.1
    assert not psi.column("hour").drifted and psi.column("hour").statistic < 0.1


def test_score_drift_sees_a_shifted_score_distribution() -> None:
    rng = np.random.default_rng(0)
    reference_scores = rng.beta(1, 30, size=5_000)
    same = score_drift(reference_scores, reference_scores[:WINDOW])
    assert not same.drifted, same.describe()
    shifted = score_drift(reference_scores, rng.beta(2, 15, size=WINDOW))
    assert shifted.drifted, shifted.describe()
    assert (shifted.column, shifted.kind) == ("score", "distance")
    # Few reference scores: a K-S p-value, same verdicts.
    small = score_drift(reference_scores[:500], rng.beta(2, 15, size=WINDOW))
    assert small.drifted and small.kind == "p_value" and small.statistic < small.threshold


def test_html_report_is_written(reference: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "reports" / "window-1.html"
    detect_drift(reference.head(2_000), window("unit_bug", n=500), ["amount", "channel"], html_path=path)
    html = path.read_text(encoding="utf-8")
    assert len(html) > 1_000 and "<html" in html.lower()
    assert [p.name for p in path.parent.iterdir()] == ["window-1.html"]  # no partial file left


@pytest.mark.parametrize(
    ("current", "columns", "message"),
    [
        (generate("baseline", 0), None, "current window is empty"),
        (generate("schema_break", 50), None, "lacks columns: amount"),
        (generate("schema_break", 50), ["hour"], r"non-numeric values in numeric columns: hour"),
        (generate("baseline", 50).assign(device_os=None), None, "no values at all in: device_os"),
    ],
)
def test_bad_windows_are_refused_clearly(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        detect_drift(reference, current, columns)
