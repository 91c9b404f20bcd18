"""Lab 4, exercise `drift-stats`: PSI, K-S, normed Wasserstein and Jensen-Shannon by hand.

    make lab-4        grade it          make hint-4      one more hint
    Reference: reference/mlops_lab/monitoring/stats.py     Docs: docs/labs/lab-4-observability.md

The monitor asks Evidently 0.7 whether a window of production features drifted from the training
reference. One report costs about half a second; simulating a trigger policy over hundreds of
windows and dozens of seeds (mlops_lab.monitoring.simulate) needs the same numbers a hundred times
faster. So you write them with numpy and scipy, each the formula of Evidently's own stattests
(.venv/lib/python3.11/site-packages/evidently/legacy/calculations/stattests/), equal to the numbers
Evidently reports to nine digits. You write:

  psi                  population stability index over bins or values, empty bins filled
  ks_p_value           the two-sided two-sample Kolmogorov-Smirnov p-value
  wasserstein_normed   the Wasserstein-1 distance in units of the reference's standard deviation
  jensen_shannon       the Jensen-Shannon distance (natural log) of the same shares as psi
  clean, shares, fill_empty   the helpers they share (or structure it your own way: only the four
                       statistics are graded)

Once they pass, `fast_drift` (what the policy simulations and the lab's scenarios run) uses yours.

What they work with:

    reference, current   whatever pd.Series() accepts: a Series (perhaps with NaN or None), an
                         array, a list; numbers, or strings for a categorical column
    numeric              (psi, jensen_shannon) whether the column is numeric, so it may be binned
    DISTINCT_FOR_BINS    20: Evidently bins a numeric column only above this many distinct values
    np.histogram_bin_edges, np.histogram, np.std, scipy.stats.ks_2samp,
    scipy.stats.wasserstein_distance, scipy.spatial.distance.jensenshannon

Which test Evidently picks when told nothing (mlops_lab.monitoring.drift explains): the K-S p-value
for a numeric column when the reference has at most 1,000 rows, distances (normed Wasserstein,
Jensen-Shannon; drift from 0.1) above that. The grader shows you why.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from mlops_lab.monitoring.stats import DISTINCT_FOR_BINS


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, numeric: bool = True) -> float:
    """Population stability index of `current` against `reference` (0 when identical)."""
    # TODO(lab-4): the shares of both cleaned samples (shares()), each passed through
    #  fill_empty(), then sum((ref - cur) * ln(ref / cur)) over the bins, as a float.
    #  Think about: PSI is read against rules of thumb (0.1 "some", 0.25 "major" shift); why does
    #  Evidently's PSI of amount for the same window double when the reference reaches 10,000 rows?
    raise NotImplementedError("TODO(lab-4): population stability index")


def ks_p_value(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Two-sided two-sample Kolmogorov-Smirnov p-value (drift when below 0.05)."""
    # TODO(lab-4): scipy.stats.ks_2samp of the two cleaned samples, with its defaults (two-sided);
    #  return the p-value, not the statistic.
    #  Think about: the same small shift measured on 100 rows and on 10,000 rows: which of the two
    #  p-values says "drift", and did the shift get any bigger?
    raise NotImplementedError("TODO(lab-4): Kolmogorov-Smirnov p-value")


def wasserstein_normed(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Wasserstein-1 distance in units of the reference's standard deviation (drift from 0.1)."""
    # TODO(lab-4): scipy.stats.wasserstein_distance of the cleaned samples, divided by the
    #  reference's standard deviation as np.std computes it (not pandas' .std(): a different
    #  ddof), and never by less than 0.001 (a constant reference has SD 0).
    #  Think about: swap the samples after a unit bug (amounts x100): is it the same number?
    raise NotImplementedError("TODO(lab-4): normed Wasserstein distance")


def jensen_shannon(reference: npt.ArrayLike, current: npt.ArrayLike, numeric: bool = False) -> float:
    """Jensen-Shannon distance of the shares, natural log (0 to sqrt(ln 2); drift from 0.1)."""
    # TODO(lab-4): scipy.spatial.distance.jensenshannon of the two samples' shares (shares()),
    #  WITHOUT fill_empty: Evidently fills empty bins for PSI only. Mind the log's base.
    #  Think about: why does an empty bin break PSI but not Jensen-Shannon?
    raise NotImplementedError("TODO(lab-4): Jensen-Shannon distance")


def clean(values: npt.ArrayLike) -> pd.Series:
    """The values that can be compared: missing ones dropped, as Evidently drops them."""
    # TODO(lab-4): a pd.Series of `values` without NaN/None (Evidently also drops +-inf: a
    #  .replace([np.inf, -np.inf], np.nan) first does it). Raise ValueError when nothing is left.
    #  Think about: a failed join blanks 15% of a column: should the drift monitor alarm?
    raise NotImplementedError("TODO(lab-4): drop the missing values")


def shares(ref: pd.Series, cur: pd.Series, numeric: bool) -> tuple[np.ndarray, np.ndarray]:
    """Share of each bin (a numeric column with many values) or each value seen in either
    sample, in one order for both."""
    # TODO(lab-4): two arrays of the same length, each summing to 1.
    #  - numeric and more than DISTINCT_FOR_BINS distinct values in ref: the edges of Sturges bins
    #    over both samples together (np.histogram_bin_edges(..., bins="sturges")); each sample's
    #    np.histogram counts with those edges, divided by its length.
    #  - anything else (categories, or a numeric column with few values): each value seen in
    #    either sample is a bin; its count in each sample (0 when absent) over that sample's length.
    #  Think about: what happens to a value the reference never saw, with bins cut from the
    #  reference alone, or with only the reference's categories?
    raise NotImplementedError("TODO(lab-4): the shares of each bin or value")


def fill_empty(share: np.ndarray) -> np.ndarray:
    """`share` with each empty bin (0) given a tiny share, Evidently's rule (PSI only)."""
    # TODO(lab-4): replace the zeros by 0.0001, or, when the smallest non-zero share is <= 0.0001,
    #  by that smallest share / 10**6. Each sample is filled with its own smallest share.
    #  Think about: ln(0.2 / 0.0001) = 7.6 while ln(0.2 / 1e-10) = 21.4: how much of a PSI can
    #  come from a single empty bin?
    raise NotImplementedError("TODO(lab-4): fill the empty bins")
