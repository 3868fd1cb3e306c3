"""Spend spike detection: a pure, vectorised function of (series, config, now).

`detect_spikes` takes spend per bucket for many series at once, oldest bucket first, the last bucket
being the one that contains `now` (possibly still filling: `now_fraction` says how much of it has
passed). For every series and every watched window length it compares the spend of the window ending at
`now` with two robust baselines built from windows of the same length:

* seasonal: the windows ending at the same time of day on each of the previous `baseline_days` days
  (and a few minutes either side, so a daily job that drifts a little still counts as normal);
* recent: the windows ending in the `recent_minutes` before the current window.

The baseline is the larger of the two medians, so a series that is always busy at 09:00 is compared
with other 09:00s, and a series already busier today is compared with its last hours. The robust score
is `(window - baseline) / scale`, where scale is 1.4826 x the median absolute deviation of those
windows (never below `min_scale_ratio` x baseline). A window fires when it is at least `multiplier` x
its baseline, its robust score is at least `robust_z`, its spend is at least `min_spend_usd`, and
enough baseline windows had spend at all (`min_history_windows`), so a new or silent series never fires.

The configured `window_minutes` window is the one the spec names; `short_windows_minutes` adds shorter
windows checked by the same rule, so a sharp spike fires within minutes rather than only once it has
filled half an hour. Set it to `()` for the 30-minute window alone.

A firing series stays firing (hysteresis) while any of its windows is still at least
`resolve_multiplier` x its baseline and at least half of `min_spend_usd`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

_MAD_TO_SIGMA = 1.4826


class Reason(enum.IntEnum):
    """Why a series is, or is not, firing; ordered from furthest from firing to firing."""

    SHORT_HISTORY = 0
    """Too few baseline windows with any spend: new or silent series never fire."""
    LOW_SPEND = 1
    """Window spend below `min_spend_usd`."""
    BELOW_MULTIPLIER = 2
    """Window spend below `multiplier` x baseline."""
    SCORE_DISAGREES = 3
    """Above the multiplier, but within the series' usual spread (robust score below `robust_z`)."""
    HELD = 4
    """Was firing; no longer meets the rule but has not fallen below the resolve threshold."""
    SPIKE = 5
    """Meets the rule: window, multiplier, robust score and minimum spend all agree."""


@dataclass(frozen=True)
class DetectionConfig:
    """Spike detection settings; the first four mirror the `detection:` config block."""

    window_minutes: int = 30
    baseline_days: int = 7
    multiplier: float = 3.0
    min_spend_usd: float = 1.0
    min_history_windows: int = 6
    """Baseline windows (seasonal + recent) that must have had spend for a series to alert."""
    robust_z: float = 4.0
    """Robust score (deviations of 1.4826 x MAD above the baseline) a window must reach."""
    bucket_seconds: int = 300
    short_windows_minutes: tuple[int, ...] = (5, 15)
    recent_minutes: int = 180
    seasonal_spread_minutes: int = 30
    min_scale_ratio: float = 0.1
    """Floor of the robust scale, as a fraction of the baseline (a perfectly regular series has MAD 0)."""
    min_baseline_days: int = 3
    """Previous days with activity needed for the seasonal baseline; fewer: the recent windows alone."""
    max_level_change: float = 4.0
    """Bound on how far today's level may rescale a previous day's window, either way."""
    resolve_multiplier: float = 1.5
    tail_aware: bool = False
    seasonal_mode: str = "smooth"

    def __post_init__(self) -> None:
        """Reject settings that cannot describe whole buckets."""
        problems = []
        for minutes in (self.window_minutes, *self.short_windows_minutes, self.recent_minutes):
            if minutes <= 0 or (minutes * 60) % self.bucket_seconds:
                problems.append(f"{minutes} min is not a positive multiple of {self.bucket_seconds} s buckets")
        if (self.seasonal_spread_minutes * 60) % self.bucket_seconds or self.seasonal_spread_minutes < 0:
            problems.append("seasonal_spread_minutes must be a non-negative multiple of the bucket")
        if 86400 % self.bucket_seconds:
            problems.append("bucket_seconds must divide a day")
        if self.baseline_days < 1:
            problems.append("baseline_days must be at least 1")
        if self.resolve_multiplier > self.multiplier:
            problems.append("resolve_multiplier must not exceed multiplier")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def windows_minutes(self) -> tuple[int, ...]:
        """Every window length checked, shortest first, the configured window last."""
        return (*sorted(m for m in set(self.short_windows_minutes) if m < self.window_minutes), self.window_minutes)

    @property
    def buckets_needed(self) -> int:
        """How many trailing buckets (including the current one) a full baseline reads."""
        per_day = 86400 // self.bucket_seconds
        spread = self.seasonal_spread_minutes * 60 // self.bucket_seconds
        longest = self.window_minutes * 60 // self.bucket_seconds
        recent = (self.recent_minutes * 60 // self.bucket_seconds) + 2 * longest
        return max(self.baseline_days * per_day + spread + longest, recent) + 1


@dataclass(frozen=True)
class BucketLayout:
    """Which buckets to load for a detection pass at `now`."""

    first_bucket_start: int
    """Epoch seconds of the oldest bucket."""
    n_buckets: int
    now_fraction: float
    """How much of the last bucket (the one containing `now`) has passed, in (0, 1]."""


def bucket_layout(now: float, config: DetectionConfig) -> BucketLayout:
    """The bucket range `detect_spikes` needs at `now` (epoch seconds): load exactly these columns."""
    size = config.bucket_seconds
    last_start = math.ceil(now / size) * size - size
    n = config.buckets_needed
    return BucketLayout(last_start - (n - 1) * size, n, (now - last_start) / size)


@dataclass(frozen=True)
class SpikeResult:
    """Per-series outcome of one pass; every array has shape (n_series,).

    The figures are those of the window that came closest to firing (ties: the longest window).
    """

    window_spend: FloatArray
    baseline: FloatArray
    ratio: FloatArray
    """window / baseline; inf when the baseline is 0 and the window is not."""
    score: FloatArray
    """Robust score (window - baseline) / scale; inf when the scale is 0 and the window exceeds the baseline."""
    is_spike: BoolArray
    """Firing after this pass (new spikes and held ones)."""
    reason: npt.NDArray[np.int8]
    """A `Reason` per series."""
    window_minutes: IntArray


def detect_spikes(
    values: npt.ArrayLike,
    config: DetectionConfig | None = None,
    *,
    now_fraction: float = 1.0,
    previously_firing: npt.ArrayLike | None = None,
) -> SpikeResult:
    """Find spend spikes in `values` (n_series, n_buckets), spend per bucket, last bucket containing now.

    `now_fraction` is how much of the last bucket has passed ((now - its start) / bucket_seconds); the
    older buckets are complete. Extra old columns are ignored; fewer than `config.buckets_needed` only
    shortens the baseline. `previously_firing` (n_series,) bool turns on hysteresis.
    """
    cfg = config or DetectionConfig()
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"values must be 2-D (n_series, n_buckets), got shape {v.shape}")
    if not 0.0 < now_fraction <= 1.0:
        raise ValueError("now_fraction must be in (0, 1]")
    n_series = v.shape[0]
    prev = (
        np.zeros(n_series, dtype=bool)
        if previously_firing is None
        else np.asarray(previously_firing, dtype=bool).reshape(n_series)
    )

    best_rank = np.full(n_series, -1, dtype=np.int8)
    out_window = np.zeros(n_series)
    out_base = np.zeros(n_series)
    out_ratio = np.zeros(n_series)
    out_score = np.zeros(n_series)
    out_minutes = np.zeros(n_series, dtype=np.int64)
    fire = np.zeros(n_series, dtype=bool)
    keep = np.zeros(n_series, dtype=bool)

    for minutes in cfg.windows_minutes:
        window, base, ratio, score, rank = _check_window(v, minutes, now_fraction, cfg)
        fire |= rank == Reason.SPIKE
        keep |= (window >= cfg.resolve_multiplier * base) & (window >= 0.5 * cfg.min_spend_usd)
        better = rank >= best_rank  # windows come shortest first, so ties go to the longer one
        best_rank = np.where(better, rank, best_rank)
        out_window = np.where(better, window, out_window)
        out_base = np.where(better, base, out_base)
        out_ratio = np.where(better, ratio, out_ratio)
        out_score = np.where(better, score, out_score)
        out_minutes = np.where(better, minutes, out_minutes)

    held = prev & ~fire & keep
    reason = np.where(held, np.int8(Reason.HELD), best_rank).astype(np.int8)
    return SpikeResult(out_window, out_base, out_ratio, out_score, fire | held, reason, out_minutes)


def _check_window(
    v: FloatArray, minutes: int, f: float, cfg: DetectionConfig
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, npt.NDArray[np.int8]]:
    """Window spend, baseline, ratio, robust score and rank (a `Reason`) for one window length."""
    n = v.shape[0]
    size = cfg.bucket_seconds
    wb = minutes * 60 // size
    last = v.shape[1] - 1
    per_day = 86400 // size
    spread = cfg.seasonal_spread_minutes * 60 // size
    lead = cfg.recent_minutes * 60 // size

    shifts = np.arange(-spread, spread + 1)
    days = np.arange(1, cfg.baseline_days + 1)
    days = days[last - days * per_day - max(spread, lead) - wb >= 0]  # days the array reaches back to
    seasonal_ends = (last - days[:, None] * per_day + shifts[None, :]).ravel()
    recent_ends = last - wb - np.arange(lead)
    recent_ends = recent_ends[recent_ends - wb >= 0]

    ends = np.concatenate(([last], seasonal_ends, recent_ends))
    sums = _window_sums(v, ends, wb, f)
    window = sums[:, 0]
    # Per previous day, the busiest window within +-spread of this time: a daily job that starts a few
    # minutes early today is still compared with its own runs.
    seasonal = sums[:, 1 : 1 + seasonal_ends.size].reshape(n, days.size, shifts.size).max(axis=2)
    if cfg.seasonal_mode == "smooth" and days.size:
        span = wb + 2 * spread
        seasonal = _window_sums(v, last - days * per_day + spread, span, f) * (wb / span)
    recent = sums[:, 1 + seasonal_ends.size :]

    # Scale each previous day by how today's last hours compare with that day's same hours, so a quiet
    # Saturday or a busier week is compared with its own level.
    lead_ends = np.concatenate(([last - wb], last - wb - days * per_day))
    lead_ends = lead_ends[lead_ends - lead >= 0]
    if lead_ends.size == days.size + 1 and days.size:
        leads = _window_sums(v, lead_ends, lead, f)
        today, before = leads[:, :1], leads[:, 1:]
        eps = 0.1 * _row_median(before)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.where(before + eps > 0, (today + eps) / (before + eps), 1.0)
        level = np.clip(level, 1.0 / cfg.max_level_change, cfg.max_level_change)
        active = (before + seasonal) > 0
    else:
        level = np.ones_like(seasonal)
        active = seasonal > 0
    analog = seasonal * level

    seasonal_med, seasonal_mad, n_days = _masked_median_mad(analog, active)
    recent_med, recent_mad = _median_mad(recent, n)
    use_seasonal = n_days >= cfg.min_baseline_days
    base = np.where(use_seasonal, seasonal_med, recent_med)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_recent = np.where(recent_med > 0, recent_mad / recent_med, 0.0)
        rel_seasonal = np.where(seasonal_med > 0, seasonal_mad / seasonal_med, 0.0)
        rel_spread = np.where(use_seasonal, np.maximum(rel_seasonal, rel_recent), rel_recent)
        if cfg.tail_aware and recent.shape[1] >= 10:
            k = int(0.9 * (recent.shape[1] - 1))
            q90 = np.partition(recent, k, axis=1)[:, k]
            rel_tail = np.where(recent_med > 0, (q90 / recent_med - 1.0) / (1.2816 * _MAD_TO_SIGMA), 0.0)
            rel_spread = np.maximum(rel_spread, rel_tail)
    scale = base * np.maximum(_MAD_TO_SIGMA * rel_spread, cfg.min_scale_ratio)
    scale = np.where(base > 0, scale, _MAD_TO_SIGMA * np.where(use_seasonal, seasonal_mad, recent_mad))

    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(base > 0, window / base, np.where(window > 0, np.inf, 0.0))
        score = np.where(scale > 0, (window - base) / scale, np.where(window > base, np.inf, 0.0))

    history = np.count_nonzero(seasonal > 0, axis=1) + np.count_nonzero(recent > 0, axis=1)
    rank = np.full(n, Reason.SPIKE, dtype=np.int8)
    rank[score < cfg.robust_z] = Reason.SCORE_DISAGREES
    rank[ratio < cfg.multiplier] = Reason.BELOW_MULTIPLIER
    rank[window < cfg.min_spend_usd] = Reason.LOW_SPEND
    rank[history < cfg.min_history_windows] = Reason.SHORT_HISTORY
    return window, base, ratio, score, rank


def _masked_median_mad(x: FloatArray, mask: npt.NDArray[np.bool_]) -> tuple[FloatArray, FloatArray, IntArray]:
    """Row-wise median and MAD over the entries where `mask` holds, and how many there were."""
    count = mask.sum(axis=1)
    if x.shape[1] == 0:
        zeros = np.zeros(x.shape[0])
        return zeros, zeros.copy(), count
    med = _sorted_median(np.sort(np.where(mask, x, np.inf), axis=1), count)
    dev = np.sort(np.where(mask, np.abs(x - med[:, None]), np.inf), axis=1)
    return med, _sorted_median(dev, count), count


def _sorted_median(sorted_rows: FloatArray, count: IntArray) -> FloatArray:
    rows = np.arange(sorted_rows.shape[0])
    lo = np.maximum(count - 1, 0) // 2
    hi = np.maximum(count, 1) // 2
    hi = np.minimum(hi, np.maximum(count - 1, 0))
    if sorted_rows.shape[1] == 0:
        return np.zeros(sorted_rows.shape[0])
    med = 0.5 * (sorted_rows[rows, lo] + sorted_rows[rows, hi])
    return np.where(count > 0, med, 0.0)


def _window_sums(v: FloatArray, ends: IntArray, wb: int, f: float) -> FloatArray:
    """Spend in the `wb`-bucket windows ending `now_fraction` into bucket `ends` (n_series, len(ends)).

    The last bucket holds only what has happened so far, so it counts whole; every older window's
    newest bucket counts `f` of itself and its oldest reaches `1 - f` into one more bucket (spend spread
    evenly within a bucket). Only non-negative weights: silent windows sum to exactly 0.
    """
    offsets = np.arange(wb + 1)
    idx = ends[:, None] - offsets[None, :]
    weights = np.ones((ends.size, wb + 1))
    weights[:, 0] = np.where(ends == v.shape[1] - 1, 1.0, f)
    weights[:, wb] = 1.0 - f
    return np.einsum("swk,wk->sw", v[:, idx], weights)


def _median_mad(x: FloatArray, n_series: int) -> tuple[FloatArray, FloatArray]:
    """Row-wise median and median absolute deviation; zeros when there are no columns."""
    if x.shape[1] == 0:
        return np.zeros(n_series), np.zeros(n_series)
    med = _row_median(x)
    return med, _row_median(np.abs(x - med[:, None]))


def _row_median(x: FloatArray) -> FloatArray:
    """Median of each row (np.partition: several times faster than np.median on many short rows)."""
    k = x.shape[1]
    if k % 2:
        return np.partition(x, k // 2, axis=1)[:, k // 2]
    part = np.partition(x, (k // 2 - 1, k // 2), axis=1)
    return 0.5 * (part[:, k // 2 - 1] + part[:, k // 2])
