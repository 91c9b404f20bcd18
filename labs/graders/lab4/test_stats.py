"""Grader of lab 4 / drift-stats (exercises/lab4/stats.py): Evidently 0.7's drift statistics by hand.

Each statistic must equal the number Evidently 0.7 itself reports for the same column of the same
data (relative tolerance 1e-9). Those numbers are computed live, once per session, with
mlops_lab.monitoring.drift.detect_drift (a real Evidently Report: importing Evidently is most of
this grader's few seconds). The data is the lab's generator: 5,000 baseline rows as the reference
and windows of covariate_shift, unit_bug, irrelevant_drift and missing_values rows. The property
checks need no Evidently: identical samples, a growing shift, symmetry, samples with nothing in
common, and the same shift measured on 100, 1,000 and 10,000 rows. The last check runs
mlops_lab.monitoring.simulate.fast_drift, which the policy simulations and scenarios use, with these
statistics in place of the reference's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_lab.data.generator import generate
from mlops_lab.data.schema import SCHEMA
from mlops_lab.monitoring.simulate import fast_drift, shifted

REL = 1e-9  # the same formulas in float64 agree far closer; any real mistake is far further off
REFERENCE_ROWS = 5_000
BIG_REFERENCE_ROWS = 10_000  # one row is a share of 0.0001: Evidently's filler rule switches

# (case, Evidently method) -> the columns whose statistic Evidently reports for the grader
EVIDENTLY: dict[tuple[str, str], list[str]] = {
    ("covariate_shift", "psi"): ["amount", "hour", "txn_count_24h", "channel", "country"],
    ("covariate_shift", "jensenshannon"): ["amount", "txn_count_24h", "channel", "country"],
    ("covariate_shift", "wasserstein"): ["amount", "txn_count_24h"],
    ("covariate_shift", "ks"): ["amount", "hour"],
    ("unit_bug", "psi"): ["amount"],
    ("unit_bug", "jensenshannon"): ["amount"],
    ("unit_bug", "wasserstein"): ["amount"],
    ("new_categories", "psi"): ["country", "device_os"],
    ("new_categories", "jensenshannon"): ["country", "device_os"],
    ("big_reference", "psi"): ["amount"],
    ("missing_values", "wasserstein"): ["distance_from_home_km", "account_age_days"],
}


@dataclass(frozen=True)
class Case:
    reference: pd.DataFrame
    current: pd.DataFrame
    about: str  # what a message calls the pair


@dataclass(frozen=True)
class Expected:
    cases: dict[str, Case]
    values: dict[tuple[str, str, str], float]  # (case, method, column) -> Evidently's statistic
    default_drifted: list[str]  # the drifted columns of Evidently's default test choice


def build_cases() -> dict[str, Case]:
    reference = generate("baseline", REFERENCE_ROWS, seed=1)
    # irrelevant_drift moves device_os; an app release also renames "other" to a new OS, so one
    # category is only in the reference and one only in the window (and the window of 300 rows
    # has no CN and no RO, two rare countries).
    release = generate("irrelevant_drift", 300, seed=6)
    release["device_os"] = release["device_os"].replace({"other": "harmonyos"})
    missing = generate("missing_values", 500, seed=5)
    missing["device_os"] = missing["device_os"].where(np.arange(len(missing)) % 7 != 0)  # a categorical hole
    return {
        "covariate_shift": Case(
            reference, generate("covariate_shift", 500, seed=2), "5,000 baseline vs 500 covariate_shift rows"
        ),
        "unit_bug": Case(reference, generate("unit_bug", 500, seed=3), "5,000 baseline vs 500 unit_bug rows"),
        "new_categories": Case(
            reference, release, "5,000 baseline vs 300 irrelevant_drift rows, 'other' renamed 'harmonyos'"
        ),
        "big_reference": Case(
            generate("baseline", BIG_REFERENCE_ROWS, seed=1),
            generate("covariate_shift", 500, seed=2),
            "10,000 baseline vs 500 covariate_shift rows",
        ),
        "missing_values": Case(reference, missing, "5,000 baseline vs 500 missing_values rows"),
    }


@pytest.fixture(scope="module")
def expected() -> Expected:
    """Evidently's own numbers, computed once (importing Evidently costs about 5 s)."""
    from mlops_lab.monitoring.drift import detect_drift

    cases = build_cases()
    values: dict[tuple[str, str, str], float] = {}
    for (case, method), columns in EVIDENTLY.items():
        result = detect_drift(cases[case].reference, cases[case].current, columns, method=method)
        for drift in result.columns:
            values[(case, method, drift.column)] = drift.statistic
    shift = cases["covariate_shift"]
    default = detect_drift(shift.reference, shift.current)  # Evidently's own choice of tests
    return Expected(cases, values, default.drifted_columns)


def numeric(column: str) -> bool:
    return SCHEMA[column].kind == "numeric"


STATISTICS: dict[str, Callable[[ModuleType], Callable[..., Any]]] = {
    "psi": lambda impl: impl.psi,
    "jensenshannon": lambda impl: impl.jensen_shannon,
    "wasserstein": lambda impl: impl.wasserstein_normed,
    "ks": lambda impl: impl.ks_p_value,
}
NAMES = {
    "psi": "PSI",
    "jensenshannon": "Jensen-Shannon",
    "wasserstein": "normed Wasserstein",
    "ks": "K-S p-value",
}


def statistic(impl: ModuleType, method: str, reference: Any, current: Any, column: str) -> float:
    """The learner's statistic, called as fast_drift calls it (numeric= for the binned ones)."""
    fn = STATISTICS[method](impl)
    if method in ("psi", "jensenshannon"):
        return float(fn(reference, current, numeric=numeric(column)))
    return float(fn(reference, current))


def matches(impl: ModuleType, expected: Expected, case: str, method: str, columns: list[str]) -> None:
    pair = expected.cases[case]
    wrong = []
    for column in columns:
        theirs = expected.values[(case, method, column)]
        got = statistic(impl, method, pair.reference[column], pair.current[column], column)
        if not math.isclose(got, theirs, rel_tol=REL):
            wrong.append(f"{column}: expected Evidently's {theirs:.10g}, got {got:.10g}")
    assert not wrong, f"{NAMES[method]} on {pair.about}: " + "; ".join(wrong)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


# ---------------------------------------------------------------- equal to Evidently's numbers
def test_psi_binned(impl: ModuleType, expected: Expected) -> None:
    """PSI of a numeric column with many values equals Evidently's (Sturges bins)

    A numeric column with more than DISTINCT_FOR_BINS (20) distinct reference values is cut into
    bins: np.histogram_bin_edges(both samples together, bins="sturges"), then np.histogram of each
    sample with those edges, divided by its length. PSI = sum((ref - cur) * ln(ref / cur)).
    """
    matches(impl, expected, "covariate_shift", "psi", ["amount", "hour"])


def test_psi_few_values(impl: ModuleType, expected: Expected) -> None:
    """PSI of a numeric column with few values (txn_count_24h: 11) counts each value, as Evidently does

    At most 20 distinct reference values: no bins, each value is its own category (its share of the
    sample), exactly like a categorical column.
    """
    matches(impl, expected, "covariate_shift", "psi", ["txn_count_24h"])


def test_psi_categorical(impl: ModuleType, expected: Expected) -> None:
    """PSI of categorical columns equals Evidently's

    The share of each value in each sample (value_counts() / len), over the values seen in either
    sample, in one order for both.
    """
    matches(impl, expected, "covariate_shift", "psi", ["channel", "country"])


def test_psi_empty_bins(impl: ModuleType, expected: Expected) -> None:
    """PSI with a bin or category present in only one sample equals Evidently's (the empty-bin fill)

    An empty bin would make ln(ref / cur) infinite. Evidently gives each empty bin 0.0001, or a
    millionth of the smallest non-zero share of that sample when that share is <= 0.0001 (a
    reference of 10,000 rows reaches it with one row in a bin). Fill each sample on its own,
    and count a value seen only in the current window.
    """
    matches(impl, expected, "unit_bug", "psi", ["amount"])
    matches(impl, expected, "new_categories", "psi", ["country", "device_os"])
    matches(impl, expected, "big_reference", "psi", ["amount"])


def test_jensen_shannon(impl: ModuleType, expected: Expected) -> None:
    """Jensen-Shannon distance equals Evidently's for binned, few-valued and categorical columns

    The same shares as PSI, then scipy.spatial.distance.jensenshannon(ref, cur): natural log, the
    default base.
    """
    matches(
        impl, expected, "covariate_shift", "jensenshannon", ["amount", "txn_count_24h", "channel", "country"]
    )


def test_jensen_shannon_one_sample_only(impl: ModuleType, expected: Expected) -> None:
    """Jensen-Shannon with a bin or category present in only one sample equals Evidently's

    Evidently does not fill empty bins for Jensen-Shannon (get_binned_data(..., feel_zeroes=False)):
    the mixture of the two is never zero where either share is not. A category new in the window
    still counts.
    """
    matches(impl, expected, "unit_bug", "jensenshannon", ["amount"])
    matches(impl, expected, "new_categories", "jensenshannon", ["country", "device_os"])


def test_wasserstein(impl: ModuleType, expected: Expected) -> None:
    """normed Wasserstein equals Evidently's (the distance over the reference's SD)

    scipy.stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001). np.std is the population
    SD (ddof=0); pandas' .std() is the sample SD (ddof=1) and gives a different number.
    """
    matches(impl, expected, "covariate_shift", "wasserstein", ["amount", "txn_count_24h"])
    matches(impl, expected, "unit_bug", "wasserstein", ["amount"])


def test_ks(impl: ModuleType, expected: Expected) -> None:
    """K-S p-value equals Evidently's

    scipy.stats.ks_2samp(ref, cur) with its defaults (two-sided); the p-value, not the statistic.
    """
    matches(impl, expected, "covariate_shift", "ks", ["amount", "hour"])


def test_missing_values_dropped(impl: ModuleType, expected: Expected) -> None:
    """missing values are dropped: each statistic equals the one on the values that are there

    Drop NaN/None from each sample first (Evidently does): a failed join is a data-quality alarm,
    never drift. The shares are of the values present, so divide by their count.
    """
    matches(impl, expected, "missing_values", "wasserstein", ["distance_from_home_km", "account_age_days"])
    pair = expected.cases["missing_values"]
    wrong = []
    for column in ("distance_from_home_km", "account_age_days", "device_os"):
        holes, present = pair.current[column], pair.current[column].dropna()
        ref = pair.reference[column]
        assert holes.isna().any(), f"the grader's window should have missing {column}"
        methods = STATISTICS if numeric(column) else ("psi", "jensenshannon")
        for method in methods:
            for side, (a, b, c, d) in {
                "window": (ref, holes, ref, present),
                "reference": (holes, ref, present, ref),
            }.items():
                got, want = statistic(impl, method, a, b, column), statistic(impl, method, c, d, column)
                if not close(got, want):
                    wrong.append(
                        f"{NAMES[method]} of {column}, missing values in the {side}: expected {want:.10g} "
                        f"(the statistic without them), got {got:.10g}"
                    )
    assert not wrong, "; ".join(wrong)


def test_all_missing_refused(impl: ModuleType) -> None:
    """a sample with no value at all is refused with ValueError, for every statistic

    After dropping the missing values nothing is left to compare: raise ValueError (a statistic of
    nothing would be nan or 0, and 0 reads as "no drift").
    """
    values = generate("baseline", 200, seed=9)
    cases = {
        "amount": (values["amount"], pd.Series([np.nan] * 50)),
        "channel": (values["channel"], pd.Series([None] * 50, dtype=object)),
    }
    for column, (present, nothing) in cases.items():
        methods = STATISTICS if numeric(column) else ("psi", "jensenshannon")
        for method in methods:
            for which, (a, b) in {"reference": (nothing, present), "window": (present, nothing)}.items():
                try:
                    got = statistic(impl, method, a, b, column)
                except ValueError:
                    continue
                pytest.fail(
                    f"expected ValueError from {NAMES[method]} for an all-missing {which} ({column}), "
                    f"got {got!r}",
                    pytrace=False,
                )


# ---------------------------------------------------------------- properties
def test_identical_samples(impl: ModuleType, expected: Expected) -> None:
    """identical samples: every distance is 0 and the K-S p-value is 1 (a constant column too)

    A constant column has SD 0: the 0.001 floor of the norm keeps the normed Wasserstein a
    number (0 / 0.001), not nan.
    """
    reference = expected.cases["covariate_shift"].reference
    samples = {c: reference[c] for c in ("amount", "txn_count_24h", "channel")}
    samples["constant"] = pd.Series(np.full(300, 4.0))
    wrong = []
    for column, sample in samples.items():
        kind = "amount" if column == "constant" else column  # a constant numeric column
        methods = STATISTICS if numeric(kind) else ("psi", "jensenshannon")
        for method in methods:
            got = statistic(impl, method, sample, sample.copy(), kind)
            want = 1.0 if method == "ks" else 0.0
            if not close(got, want):
                wrong.append(f"{NAMES[method]} of {column} against itself: expected {want:g}, got {got!r}")
    assert not wrong, "; ".join(wrong)


SHIFTS = (0.1, 0.25, 0.5, 1.0)  # in reference SDs


def test_grows_with_shift(impl: ModuleType, expected: Expected) -> None:
    """each distance grows (and the K-S p-value falls) as a column moves 0.1, 0.25, 0.5, 1 SD

    The same 500 baseline rows of account_age_days moved further each time: a distance that does
    not grow with the move is measuring something else. (Held on each of 200 seeds.)
    """
    reference = expected.cases["covariate_shift"].reference
    window = generate("baseline", 500, seed=1001)
    column = "account_age_days"
    wrong = []
    for method in STATISTICS:
        seen = [
            statistic(
                impl, method, reference[column], shifted(window, column, sds, reference)[column], column
            )
            for sds in SHIFTS
        ]
        ordered = all((b < a) if method == "ks" else (b > a) for a, b in itertools.pairwise(seen))
        if not ordered:
            direction = "falling" if method == "ks" else "growing"
            shown = ", ".join(f"{s:g} SD: {v:.4g}" for s, v in zip(SHIFTS, seen, strict=True))
            wrong.append(f"{NAMES[method]}: expected {direction} values, got {shown}")
    assert not wrong, "; ".join(wrong)


def test_symmetry(impl: ModuleType, expected: Expected) -> None:
    """PSI, Jensen-Shannon and the K-S p-value are symmetric; the normed Wasserstein is not

    Swapping the samples changes nothing for the first three. The Wasserstein distance itself is
    symmetric, but it is divided by the SD of whichever sample is the reference: after a unit bug
    (amounts x100) the same pair reads 50 from the dollars' side and 0.6 from the cents' side.
    """
    pair = expected.cases["covariate_shift"]
    wrong = []
    for method, column in (
        ("psi", "amount"),
        ("psi", "country"),
        ("jensenshannon", "amount"),
        ("jensenshannon", "country"),
        ("ks", "amount"),
    ):
        a, b = pair.reference[column], pair.current[column]
        forth, back = statistic(impl, method, a, b, column), statistic(impl, method, b, a, column)
        if not close(forth, back):
            wrong.append(
                f"{NAMES[method]} of {column}: expected the same both ways, got {forth:.10g} and {back:.10g}"
            )
    bug = expected.cases["unit_bug"]
    a, b = bug.reference["amount"].to_numpy(dtype=float), bug.current["amount"].to_numpy(dtype=float)
    forth, back = impl.wasserstein_normed(a, b), impl.wasserstein_normed(b, a)
    if not close(forth * np.std(a), back * np.std(b)) or forth < 10 * back:
        wrong.append(
            f"normed Wasserstein of amount in dollars vs cents: expected {forth * np.std(a) / np.std(b):.4g} "
            f"from the cents' side (the same distance over the cents' SD), got {back:.4g} "
            f"(and {forth:.4g} from the dollars' side)"
        )
    assert not wrong, "; ".join(wrong)


def test_nothing_in_common(impl: ModuleType, expected: Expected) -> None:
    """samples with no value in common: Jensen-Shannon is sqrt(ln 2), its maximum; PSI is large but finite

    Natural log: the Jensen-Shannon distance of disjoint samples is sqrt(ln 2) = 0.8326 (base 2
    would give 1). PSI stays a number only because of the empty-bin fill.
    """
    reference = expected.cases["covariate_shift"].reference["device_os"]
    window = expected.cases["new_categories"].current["device_os"]
    ref, cur = reference[reference.isin(["ios", "android"])], window[window.isin(["web", "harmonyos"])]
    js = statistic(impl, "jensenshannon", ref, cur, "device_os")
    assert close(js, math.sqrt(math.log(2))), (
        f"Jensen-Shannon of samples with nothing in common: expected sqrt(ln 2) = "
        f"{math.sqrt(math.log(2)):.6f}, got {js!r}"
    )
    value = statistic(impl, "psi", ref, cur, "device_os")
    assert math.isfinite(value) and value > 10, (
        f"PSI of samples with nothing in common: expected a large finite number (about 17), got {value!r}"
    )


def test_p_value_is_not_size(impl: ModuleType) -> None:
    """the same 0.1 SD shift: the K-S p-value falls towards 0 with more rows, the normed Wasserstein stays 0.1

    A p-value measures the evidence that the samples differ, and evidence grows with rows: 100 rows
    moved by 0.1 SD look like no drift (p > 0.1), 10,000 like certain drift (p < 1e-6), while the
    size of the move (the distance) is 0.1 SD each time. That is why Evidently switches to
    distances above 1,000 reference rows.
    """
    big = generate("baseline", 10_000, seed=1)
    column, p_values, distances = "account_age_days", [], []
    for rows in (100, 1_000, 10_000):
        reference = big.iloc[:rows]
        moved = shifted(reference, column, 0.1, reference)
        p_values.append(float(impl.ks_p_value(reference[column], moved[column])))
        distances.append(float(impl.wasserstein_normed(reference[column], moved[column])))
    shown = f"p-values {', '.join(f'{p:.3g}' for p in p_values)} and distances " + ", ".join(
        f"{d:.4f}" for d in distances
    )
    assert p_values[0] > 0.1 and p_values[0] > p_values[1] > p_values[2] and p_values[2] < 1e-6, (
        f"expected K-S p-values falling from above 0.1 (100 rows) to below 1e-6 (10,000 rows), got {shown}"
    )
    assert all(0.095 < d < 0.105 for d in distances), (
        f"expected a normed Wasserstein of about 0.1 at 100, 1,000 and 10,000 rows, got {shown}"
    )


# ---------------------------------------------------------------- the seam
def test_fast_drift_matches_evidently(impl: ModuleType, expected: Expected) -> None:
    """fast_drift with these statistics flags the same columns as Evidently's defaults

    mlops_lab.monitoring.simulate.fast_drift (what the policy simulations and scenarios run) calls
    wasserstein_normed(ref, cur) for numeric columns and jensen_shannon(ref, cur, numeric=...) for
    the others, on Series whose NaNs are already dropped.
    """
    pair = expected.cases["covariate_shift"]
    asked: list[str] = []

    def part(name: str) -> ModuleType:
        asked.append(name)
        return impl

    result = fast_drift(pair.reference, pair.current, part=part)
    assert asked, "expected fast_drift to ask for mlops_lab.monitoring.stats"
    assert result.drifted_columns == expected.default_drifted, (
        f"drifted columns of {pair.about}: expected Evidently's {expected.default_drifted}, "
        f"got {result.drifted_columns} ({'; '.join(c.describe() for c in result.columns)})"
    )
