"""End-of-period spend projection: a pure, vectorised function of (series, config, now).

The projection is `spent so far + level x shape mass of the time left`:

* shape: how spend usually spreads over the hours of the week, learnt from the series' own trailing
  history (`history_days`): the mean spend per bucket for each local hour of day, times a factor for
  each day of the week once there are two weeks of history, shrunk towards flat while history is short;
* level: the spend of the recent trailing window (`level_window`, by default one period, between 3 hours
  and 7 days) divided by the shape mass of that same window, i.e. the recent rate with the hour-of-week
  effects taken out.

So at 06:00 a daily budget is not extrapolated from a quiet night, and a monthly budget knows how many
weekends are left. With under `min_history_days` of history there is no shape and the projection is the
recent rate x the time left ("recent_rate"). On a flat series both reduce to the straight line.

Arrays: `bucket_starts` (n_buckets,) epoch seconds, ascending, evenly `bucket_seconds` apart; `values`
(n_series, n_buckets) spend per bucket covering the history and the current period up to `now` (the last
bucket may be the one still filling). Period bounds are assumed to fall on bucket boundaries, which
holds for 5-minute buckets because every real UTC offset is a multiple of 15 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from alerting.periods import zone

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_DAY = 86400
_SLOTS = 168  # hours of the week, Monday 00:00 local first


@dataclass(frozen=True)
class ProjectionConfig:
    """Projection settings."""

    bucket_seconds: int = 300
    history_days: int = 28
    """Trailing history the shape is learnt from."""
    min_history_days: float = 2.0
    """Less history than this (since a series' first spend): no shape, recent rate only."""
    weekly_min_days: float = 14.0
    """Day-of-week factors need this much history; below it every day has the same shape."""
    level_window_seconds: int | None = None
    """Trailing window the level is measured over; default one period, clamped to 3 hours..7 days."""
    min_rate_window_seconds: int = 3600
    """A series younger than this is still measured over this long (no projecting a first burst)."""
    shape_prior_days: float = 1.0
    """Shrinks the shape towards flat by prior / (prior + days of history)."""
    band_z: float = 1.28
    """Width of the low..high band in standard deviations of past levels (1.28: about 80 %)."""
    min_elapsed_fraction: float = 0.05
    """Forecast alerts stay quiet in the first part of a period."""


@dataclass(frozen=True)
class ProjectionResult:
    """One series' projection."""

    projected: float
    low: float
    high: float
    spent: float
    method: str
    """"shape", "recent_rate", "complete" (period over) or "no_end" (`total` budgets)."""


@dataclass(frozen=True)
class ProjectionBatch:
    """Projections for many series; arrays of shape (n_series,)."""

    projected: FloatArray
    low: FloatArray
    high: FloatArray
    spent: FloatArray
    method: npt.NDArray[np.str_]

    def __len__(self) -> int:
        """Number of series."""
        return int(self.projected.shape[0])

    def __getitem__(self, i: int) -> ProjectionResult:
        """The projection of series `i`."""
        return ProjectionResult(
            float(self.projected[i]), float(self.low[i]), float(self.high[i]), float(self.spent[i]), str(self.method[i])
        )


def should_alert_forecast(
    result: ProjectionResult, limit: float, elapsed_fraction: float, cfg: ProjectionConfig | None = None
) -> bool:
    """Whether a forecast-overrun alert is due: projected > limit, but never early in the period."""
    cfg = cfg or ProjectionConfig()
    return elapsed_fraction >= cfg.min_elapsed_fraction and result.projected > limit


def project_period_end(
    bucket_starts: npt.ArrayLike,
    values: npt.ArrayLike,
    period_start: datetime,
    period_end: datetime | None,
    now: datetime,
    *,
    tz: str = "UTC",
    config: ProjectionConfig | None = None,
) -> ProjectionResult:
    """Projected spend at `period_end` for one series; `values` has shape (n_buckets,)."""
    row = np.asarray(values, dtype=np.float64).reshape(1, -1)
    return project_many(bucket_starts, row, period_start, period_end, now, tz=tz, config=config)[0]


def project_many(
    bucket_starts: npt.ArrayLike,
    values: npt.ArrayLike,
    period_start: datetime,
    period_end: datetime | None,
    now: datetime,
    *,
    tz: str = "UTC",
    config: ProjectionConfig | None = None,
) -> ProjectionBatch:
    """Projected spend at `period_end` for every row of `values` (n_series, n_buckets), sharing one period."""
    cfg = config or ProjectionConfig()
    size = cfg.bucket_seconds
    starts = np.asarray(bucket_starts, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or starts.ndim != 1 or v.shape[1] != starts.size:
        raise ValueError(f"values {v.shape} must be (n_series, {starts.size}) for {starts.size} bucket starts")
    if starts.size > 1 and np.any(np.diff(starts) != size):
        raise ValueError(f"bucket_starts must be contiguous, {size} s apart")
    n = v.shape[0]
    t_now = now.timestamp()
    t_start = period_start.timestamp()
    seen = starts < t_now
    n_seen = int(np.count_nonzero(seen))
    spent = v[:, int(np.searchsorted(starts, t_start)) : n_seen].sum(axis=1)

    def batch(projected: FloatArray, low: FloatArray, high: FloatArray, method: npt.NDArray[np.str_]) -> ProjectionBatch:
        return ProjectionBatch(projected, low, high, spent, method)

    if period_end is None or t_now >= period_end.timestamp():
        method = "no_end" if period_end is None else "complete"
        return batch(spent, spent.copy(), spent.copy(), np.full(n, method))
    if starts.size == 0 or not seen.any():
        return batch(spent, spent.copy(), spent.copy(), np.full(n, "recent_rate"))
    t_end = period_end.timestamp()

    # Only buckets up to the one containing `now`; the last may be partly observed.
    last = n_seen - 1
    starts, v = starts[:n_seen], v[:, :n_seen]
    observed = np.minimum(size, t_now - starts) / size  # 1 for complete buckets

    nonzero = v > 0
    has_spend = nonzero.any(axis=1)
    first = np.where(has_spend, nonzero.argmax(axis=1), last)
    history_days = np.where(has_spend, (t_now - starts[first]) / _DAY, 0.0)

    period_len = t_end - t_start
    level_len = cfg.level_window_seconds or int(min(max(period_len, 3 * 3600), 7 * _DAY))
    window_from = int(np.searchsorted(starts, t_now - level_len))
    level_from = np.maximum(window_from, first)

    # Recent rate: spend over the level window (no earlier than first spend, at least min_rate_window).
    level_spend = v[:, window_from:].sum(axis=1)  # buckets before a series' first spend are 0
    duration = np.maximum(t_now - starts[level_from], cfg.min_rate_window_seconds) / size
    remaining = (t_end - t_now) / size
    flat_rem = _safe_div(level_spend, duration) * remaining

    # Shape: hour-of-week weights per series, from complete buckets of the trailing history.
    slots = _week_slots(starts, tz)
    complete = observed >= 1.0
    hist = complete & (starts >= t_now - cfg.history_days * _DAY)
    weights = _shape_weights(v, slots, hist, first, history_days, cfg)

    onehot_cum = _slot_prefix_counts(slots, observed)
    level_counts = onehot_cum[-1][None, :] - onehot_cum[level_from]
    level_mass = np.einsum("ns,ns->n", weights, level_counts)
    future_counts = _future_slot_counts(starts[-1] + size, t_end, t_now, starts[-1], tz, size)
    rem_mass = weights @ future_counts
    shape_rem = _safe_div(level_spend, level_mass) * rem_mass

    use_shape = (history_days >= cfg.min_history_days) & (level_mass > 0)
    expected = np.where(use_shape, shape_rem, flat_rem)
    spread = _level_spread(v, starts, t_now, level_len, weights, onehot_cum, first)
    spread = np.where(use_shape, spread, 1.0)
    projected = spent + expected
    low = spent + expected * np.maximum(0.0, 1.0 - cfg.band_z * spread)
    high = spent + expected * (1.0 + cfg.band_z * spread)
    return batch(projected, low, high, np.where(use_shape, "shape", "recent_rate"))


def _safe_div(a: FloatArray, b: FloatArray) -> FloatArray:
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape))
    np.divide(a, b, out=out, where=b > 0)
    return out


def _shape_weights(
    v: FloatArray,
    slots: IntArray,
    hist: npt.NDArray[np.bool_],
    first: IntArray,
    history_days: FloatArray,
    cfg: ProjectionConfig,
) -> FloatArray:
    """Relative spend per bucket in each hour-of-week slot, (n_series, 168), mean 1 where known."""
    n = v.shape[0]
    idx = np.nonzero(hist)[0]  # one contiguous range
    if idx.size == 0:
        return np.ones((n, _SLOTS))
    # Sum runs of consecutive buckets in the same slot first: a matmul over ~hours, not buckets.
    hslots = slots[idx]
    breaks = np.concatenate(([0], np.nonzero(np.diff(hslots) != 0)[0] + 1))
    run_sums = np.add.reduceat(v[:, idx[0] : idx[-1] + 1], breaks, axis=1)
    run_onehot = np.zeros((breaks.size, _SLOTS))
    run_onehot[np.arange(breaks.size), hslots[breaks]] = 1.0
    sums = run_sums @ run_onehot  # buckets before a series' first spend are 0, so no masking needed

    # Buckets per slot from each series' first spend on: all history minus what precedes `first`.
    prefix = np.zeros((v.shape[1] + 1, _SLOTS))
    np.add.at(prefix, (idx + 1, hslots), 1.0)
    prefix = np.cumsum(prefix, axis=0)
    counts = prefix[-1][None, :] - prefix[first]

    sums = sums.reshape(n, 7, 24)
    counts = counts.reshape(n, 7, 24)
    total = sums.sum(axis=(1, 2))
    overall = _safe_div(total, counts.sum(axis=(1, 2)))  # mean spend per bucket
    hour_mean = _safe_div(sums.sum(axis=1), counts.sum(axis=1))  # (n, 24)
    day_mean = _safe_div(sums.sum(axis=2), counts.sum(axis=2))  # (n, 7)
    hour_rel = np.where(counts.sum(axis=1) > 0, _safe_div(hour_mean, overall[:, None]), 1.0)
    weekly = (history_days >= cfg.weekly_min_days)[:, None]
    day_rel = np.where(weekly & (counts.sum(axis=2) > 0), _safe_div(day_mean, overall[:, None]), 1.0)

    shape = day_rel[:, :, None] * hour_rel[:, None, :]
    alpha = (cfg.shape_prior_days / (cfg.shape_prior_days + history_days))[:, None, None]
    shape = (1.0 - alpha) * shape + alpha
    return np.where((total > 0)[:, None, None], shape, 1.0).reshape(n, _SLOTS)


def _level_spread(
    v: FloatArray,
    starts: IntArray,
    t_now: float,
    level_len: int,
    weights: FloatArray,
    onehot_cum: FloatArray,
    first: IntArray,
) -> FloatArray:
    """Relative spread (std / mean) of the level over up to 4 earlier windows of the level's length."""
    bounds = np.searchsorted(starts, t_now - level_len * np.arange(5))[::-1]  # oldest first
    bounds[-1] = starts.size
    n = v.shape[0]
    levels = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if b <= a:
            continue
        spend = v[:, a:b].sum(axis=1)
        mass = np.einsum("ns,s->n", weights, onehot_cum[b] - onehot_cum[a])
        level = np.where(a >= first, _safe_div(spend, mass), np.nan)
        levels.append(level)
    if len(levels) < 2:
        return np.ones(n)
    stack = np.stack(levels, axis=1)
    valid = ~np.isnan(stack)
    count = valid.sum(axis=1)
    filled = np.where(valid, stack, 0.0)
    mean = _safe_div(filled.sum(axis=1), count.astype(np.float64))
    var = _safe_div((np.where(valid, stack - mean[:, None], 0.0) ** 2).sum(axis=1), np.maximum(count - 1, 0) * 1.0)
    rel = _safe_div(np.sqrt(var), mean)
    return np.where(count >= 2, rel, 1.0)


def _slot_prefix_counts(slots: IntArray, observed: FloatArray) -> FloatArray:
    """(n_buckets + 1, 168) running count of observed buckets per slot."""
    onehot = np.zeros((slots.size + 1, _SLOTS))
    onehot[np.arange(1, slots.size + 1), slots] = observed
    return np.cumsum(onehot, axis=0)


def _future_slot_counts(
    next_start: int, t_end: float, t_now: float, last_start: int, tz: str, size: int
) -> FloatArray:
    """Buckets (fractions for the one still filling) per slot from `now` to the period end, (168,)."""
    future = np.arange(next_start, t_end, size, dtype=np.int64)
    counts = np.bincount(_week_slots(future, tz), minlength=_SLOTS).astype(np.float64)
    left_in_current = (last_start + size - t_now) / size
    if left_in_current > 0:
        counts[_week_slots(np.array([last_start], dtype=np.int64), tz)[0]] += left_in_current
    return counts


def _week_slots(ts: IntArray, tz: str) -> IntArray:
    """Local hour of the week (Monday 00:00 = 0) of each epoch second in `ts`."""
    local_hours = (ts + utc_offsets(ts, tz)) // 3600
    return np.asarray((local_hours + 72) % _SLOTS, dtype=np.int64)  # 1970-01-01 was a Thursday


def utc_offsets(ts: IntArray, tz: str) -> IntArray:
    """UTC offset in seconds at each epoch second in `ts` (vectorised: finds the transitions in range)."""
    if ts.size == 0 or tz == "UTC":
        return np.zeros(ts.shape, dtype=np.int64)
    z = zone(tz)

    def offset(t: int) -> int:
        delta = datetime.fromtimestamp(t, UTC).astimezone(z).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    step = 6 * 3600  # transitions are months apart; a 6-hour grid sees every one
    lo, hi = int(ts.min()), int(ts.max())
    grid = list(range(lo - lo % step, hi + step, step))
    grid_offsets = [offset(t) for t in grid]
    edges, segment_offsets = [], [grid_offsets[0]]
    for i in range(len(grid) - 1):
        if grid_offsets[i] != grid_offsets[i + 1]:
            a, b = grid[i], grid[i + 1]
            while b - a > 1:  # first second with the new offset
                mid = (a + b) // 2
                a, b = (mid, b) if offset(mid) == grid_offsets[i] else (a, mid)
            edges.append(b)
            segment_offsets.append(grid_offsets[i + 1])
    segment = np.searchsorted(np.asarray(edges, dtype=np.int64), ts, side="right")
    return np.asarray(segment_offsets, dtype=np.int64)[segment]
