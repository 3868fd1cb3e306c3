"""Row-wise robust statistics for the spike detector: medians, MADs and window sums over many series.

Every function takes one row per series and works on all rows at once (no Python loop over series),
which is what keeps 10k series x 30 days inside the detector's time budget (docs/detection.md).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


def ratio_or(num: FloatArray, den: FloatArray, when_zero: float) -> FloatArray:
    """Num / den where den > 0; where den is 0: `when_zero` if num > 0, else 0. No warnings."""
    out = np.where(num > 0, when_zero, 0.0)
    np.divide(num, den, out=out, where=den > 0)
    return out


def window_sums(v: FloatArray, ends: IntArray, wb: int, f: float) -> FloatArray:
    """Spend of the `wb`-bucket windows ending `f` into each bucket of `ends`, (n_series, len(ends)).

    The last bucket holds only what has happened so far and counts whole. Any older window's newest
    bucket counts `f` of itself and its oldest reaches `1 - f` into one more bucket (spend taken as
    even within a bucket). Only non-negative weights, so a silent window sums to exactly 0.
    """
    offsets = np.arange(wb + 1)
    idx = ends[:, None] - offsets[None, :]
    weights = np.ones((ends.size, wb + 1))
    weights[:, 0] = np.where(ends == v.shape[1] - 1, 1.0, f)
    weights[:, wb] = 1.0 - f
    return np.einsum("swk,wk->sw", v[:, idx], weights)


def median_mad(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Row-wise median and median absolute deviation; zeros when there are no columns."""
    if x.shape[1] == 0:
        return np.zeros(x.shape[0]), np.zeros(x.shape[0])
    med = row_median(x)
    return med, row_median(np.abs(x - med[:, None]))


def row_median(x: FloatArray) -> FloatArray:
    """Median of each row (np.partition: several times faster than np.median on many short rows)."""
    k = x.shape[1]
    if k == 0:
        return np.zeros(x.shape[0])
    if k % 2:
        return np.partition(x, k // 2, axis=1)[:, k // 2]
    part = np.partition(x, (k // 2 - 1, k // 2), axis=1)
    return 0.5 * (part[:, k // 2 - 1] + part[:, k // 2])


def masked_median_mad(x: FloatArray, mask: BoolArray) -> tuple[FloatArray, FloatArray, IntArray]:
    """Row-wise median and MAD over the entries where `mask` holds, and how many there were."""
    count = mask.sum(axis=1)
    med = sorted_median(np.sort(np.where(mask, x, np.inf), axis=1), count)
    dev = np.sort(np.where(mask, np.abs(x - med[:, None]), np.inf), axis=1)
    return med, sorted_median(dev, count), count


def sorted_median(sorted_rows: FloatArray, count: IntArray) -> FloatArray:
    """Median of the first `count` entries of each (ascending) row; 0 where count is 0."""
    if sorted_rows.shape[1] == 0:
        return np.zeros(sorted_rows.shape[0])
    rows = np.arange(sorted_rows.shape[0])
    top = np.maximum(count - 1, 0)
    med = 0.5 * (sorted_rows[rows, top // 2] + sorted_rows[rows, (top + 1) // 2])
    return np.where(count > 0, med, 0.0)
