"""A solution of lab 4's `drift-stats` (exercises/lab4/stats.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab4/drift-stats.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from mlops_lab.monitoring.stats import DISTINCT_FOR_BINS

MIN_NORM = 0.001  # Evidently's floor for the reference's SD: a constant column would divide by 0
TINY_SHARE = 0.0001  # Evidently's share for an empty bin (unless a real share is that small)


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, numeric: bool = True) -> float:
    """Population stability index of `current` against `reference` (0 when identical)."""
    ref_share, cur_share = shares(clean(reference), clean(current), numeric)
    # ln(ref / cur) of an empty bin is infinite, whichever side is empty: fill both first.
    ref_share, cur_share = fill_empty(ref_share), fill_empty(cur_share)
    return float(np.sum((ref_share - cur_share) * np.log(ref_share / cur_share)))


def ks_p_value(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Two-sided two-sample Kolmogorov-Smirnov p-value (drift when below 0.05)."""
    # ks_2samp's defaults are Evidently's: two-sided, exact for samples up to 10,000 rows.
    result = stats.ks_2samp(clean(reference), clean(current))
    # The p-value, not the statistic D: Evidently's threshold (0.05) is for the p-value.
    return float(result.pvalue)


def wasserstein_normed(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Wasserstein-1 distance in units of the reference's standard deviation (drift from 0.1)."""
    ref, cur = clean(reference), clean(current)
    # np.std is the population SD (ddof=0), Evidently's; pandas' ref.std() would be ddof=1.
    # The reference's SD, not the current's: the reference is what "normal" means.
    sd = float(np.std(ref.to_numpy(dtype=float)))
    norm = max(sd, MIN_NORM)
    return float(stats.wasserstein_distance(ref, cur) / norm)


def jensen_shannon(reference: npt.ArrayLike, current: npt.ArrayLike, numeric: bool = False) -> float:
    """Jensen-Shannon distance of the shares, natural log (0 to sqrt(ln 2); drift from 0.1)."""
    p, q = shares(clean(reference), clean(current), numeric)
    # No filling here: the mixture (p + q) / 2 is never 0 where p or q is not, so an empty bin is
    # fine. scipy's default base is e, which is what Evidently reports (base 2 would top at 1).
    return float(distance.jensenshannon(p, q))


def clean(values: npt.ArrayLike) -> pd.Series:
    """The values that can be compared: NaN and +-inf dropped, as Evidently drops them."""
    series = pd.Series(values).replace([np.inf, -np.inf], np.nan).dropna()
    # Comparing nothing with something would produce a number that means nothing (or nan).
    if series.empty:
        raise ValueError("a drift statistic needs at least one value that is not missing in each sample")
    return series


def shares(ref: pd.Series, cur: pd.Series, numeric: bool) -> tuple[np.ndarray, np.ndarray]:
    """Share of each bin or value, in one order for both samples."""
    if numeric and ref.nunique() > DISTINCT_FOR_BINS:
        # One set of edges for both samples, from both: a current value beyond the reference's
        # range still lands in a bin (edges from the reference alone would drop it silently).
        edges = np.histogram_bin_edges(np.concatenate([ref.to_numpy(), cur.to_numpy()]), bins="sturges")
        ref_counts = np.histogram(ref, bins=edges)[0]
        cur_counts = np.histogram(cur, bins=edges)[0]
    else:
        # Every value seen in either sample: a category new in production must count.
        values = list(set(ref.unique()) | set(cur.unique()))
        ref_counts = ref.value_counts().reindex(values, fill_value=0).to_numpy()
        cur_counts = cur.value_counts().reindex(values, fill_value=0).to_numpy()
    return ref_counts / len(ref), cur_counts / len(cur)


def fill_empty(share: np.ndarray) -> np.ndarray:
    """`share` with each empty bin given a tiny share, Evidently's rule."""
    smallest = float(share[share > 0].min())
    # 0.0001, unless a real bin is already that small: then a millionth of it, so a filled bin
    # stays far below every real one. A reference of 10,000 rows or more can reach it.
    filler = smallest / 10**6 if smallest <= TINY_SHARE else TINY_SHARE
    return np.where(share == 0, filler, share)
