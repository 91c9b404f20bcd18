"""Drift statistics by hand: the numbers Evidently 0.7 reports for one column, with numpy/scipy.

    python -m mlops_lab.monitoring.stats      # each statistic next to Evidently's, on the same data

Evidently is the monitor's engine (monitoring.drift), but a report costs about 0.4 s a window.
Simulating a trigger policy over hundreds of windows and dozens of seeds (monitoring.simulate)
needs the same numbers faster (about 9 ms a window), so they are written here, each the
formula Evidently's legacy stattests use (evidently/legacy/calculations/stattests):

  psi                  sum((ref% - cur%) * ln(ref% / cur%)) over bins; a numeric column with more
                       than 20 distinct reference values is cut into Sturges bins over both samples
                       together, anything else counts each value; an empty bin holds 0.0001
                       (or a millionth of the smallest share, when that is <= 0.0001)
  ks_p_value           the two-sided two-sample Kolmogorov-Smirnov p-value
  wasserstein_normed   the first Wasserstein distance divided by the reference's standard
                       deviation (at least 0.001)
  jensen_shannon       the Jensen-Shannon distance (natural log) of the same shares as psi,
                       empty ones left at zero

NaNs (and +-inf) are dropped first, as Evidently does: missing values never look like drift
here, which is why data quality is a separate alarm.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as scipy_stats
from scipy.spatial import distance

DISTINCT_FOR_BINS = 20  # Evidently bins a numeric column only above this many distinct values


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, numeric: bool = True) -> float:
    """Population stability index of `current` against `reference` (0 when identical)."""
    ref_share, cur_share = _shares(_clean(reference), _clean(current), numeric)
    ref_share, cur_share = _fill_empty(ref_share), _fill_empty(cur_share)
    return float(np.sum((ref_share - cur_share) * np.log(ref_share / cur_share)))


def ks_p_value(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Two-sided two-sample Kolmogorov-Smirnov p-value (drift when below 0.05)."""
    return float(scipy_stats.ks_2samp(_clean(reference), _clean(current))[1])


def wasserstein_normed(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Wasserstein-1 distance in units of the reference's standard deviation (drift from 0.1)."""
    ref, cur = _clean(reference), _clean(current)
    norm = max(float(np.std(ref.astype(float))), 0.001)
    return float(scipy_stats.wasserstein_distance(ref, cur) / norm)


def jensen_shannon(reference: npt.ArrayLike, current: npt.ArrayLike, numeric: bool = False) -> float:
    """Jensen-Shannon distance of the shares, natural log (0 to sqrt(ln 2); drift from 0.1)."""
    ref_share, cur_share = _shares(_clean(reference), _clean(current), numeric)
    return float(distance.jensenshannon(ref_share, cur_share))


def _clean(values: npt.ArrayLike) -> np.ndarray:
    """The values as a plain numpy array, without what Evidently drops: NaN and None, and +-inf in
    a float column (plain arrays: pandas' Arrow-backed strings cost ten times more to count)."""
    array = np.asarray(values)
    if array.dtype.kind == "f":
        array = array[np.isfinite(array)]  # drops NaN and +-inf together
    elif array.dtype.kind == "O":
        array = array[~pd.isna(array)]
    if array.size == 0:
        raise ValueError("a drift statistic needs at least one value that is not missing in each sample")
    return array


def _shares(ref: np.ndarray, cur: np.ndarray, numeric: bool) -> tuple[np.ndarray, np.ndarray]:
    """Share of each bin (a numeric column with many values) or each value seen in either
    sample, in one order for both."""
    if numeric and len(np.unique(ref)) > DISTINCT_FOR_BINS:
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        return np.histogram(ref, edges)[0] / len(ref), np.histogram(cur, edges)[0] / len(cur)
    # Counting with a dict: sorting thousands of strings (np.unique) costs ten times more.
    ref_counts, cur_counts = Counter(ref.tolist()), Counter(cur.tolist())
    keys = sorted(ref_counts.keys() | cur_counts.keys(), key=str)  # one order for both
    ref_share = np.array([ref_counts[k] for k in keys], dtype=float) / len(ref)
    cur_share = np.array([cur_counts[k] for k in keys], dtype=float) / len(cur)
    return ref_share, cur_share


def _fill_empty(share: np.ndarray) -> np.ndarray:
    """An empty bin would make ln(ref/cur) infinite: give it a tiny share, as Evidently does."""
    smallest = float(share[share > 0].min())
    filler = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return np.where(share == 0, filler, share)


def _main() -> None:
    from mlops_lab.data.generator import generate
    from mlops_lab.monitoring.drift import detect_drift

    reference, current = generate("baseline", 5_000, seed=1), generate("covariate_shift", 500, seed=2)
    print("column                  statistic            here      Evidently")
    for method, fn, columns in (
        ("psi", psi, ["amount", "channel"]),
        ("ks", ks_p_value, ["amount", "hour"]),
        ("wasserstein", wasserstein_normed, ["amount", "distance_from_home_km"]),
        ("jensenshannon", jensen_shannon, ["channel", "country"]),
    ):
        for column in columns:
            numeric = pd.api.types.is_numeric_dtype(reference[column])
            args = (reference[column], current[column])
            here = fn(*args, numeric=numeric) if fn in (psi, jensen_shannon) else fn(*args)
            theirs = detect_drift(reference, current, [column], method=method).columns[0].statistic
            print(f"{column:22}  {method:14} {here:12.6g}  {theirs:12.6g}")


if __name__ == "__main__":
    _main()
