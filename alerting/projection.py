"""End-of-period spend projection: a pure, vectorised function of (series, config, now).

The projection is `spent so far + level x shape mass of the time left`:

* shape: how spend usually spreads over the hours of the week, learnt from the series' own trailing
  history (`history_days`): the mean spend per bucket for each local hour of day, times a factor for
  each day of the week once there are two weeks of history, shrunk towards flat while history is short;
  in each hour of the week the largest hour counts as the second largest (one burst is no pattern);
* level: the spend of the recent trailing window (`level_window_seconds`; default one period, clamped to 3 hours
  ..7 days) divided by the shape mass of that same window, i.e. the recent rate with the hour-of-week
  effects taken out; the window's largest bucket counts as its second largest (one call is no rate).
  The same is measured over a short trailing window (`short_level_window_seconds`; 1/12 of it, at least
  an hour) and the projection follows the lower of the two, down to the low end of the band at most,
  so it comes back to the current pace within hours of a burst ending (`_follow_short_window`);
* bursts: a series whose history before the level window was spent in bursts (under 2 effective hours a
  day, `_spends_in_bursts`) is projected at most a whole period at the level, beyond what it has spent
  (`_at_most_a_usual_period`): its day is an amount, not a rate, so a daily batch already run is not
  expected again over the rest of its hour. Other series are projected as before.

So at 06:00 a daily budget is not extrapolated from a quiet night, and a monthly budget knows how many
weekends are left. With under `min_history_days` of history there is no shape and the projection is the
recent rate x the time left ("recent_rate"). On a flat series both reduce to the straight line.

Arrays: `bucket_starts` (n_buckets,) epoch seconds, ascending, evenly `bucket_seconds` apart; `values`
(n_series, n_buckets) spend per bucket covering the history and the current period up to `now` (the last
bucket may be the one still filling). Period bounds are assumed to fall on bucket boundaries, which
holds for 5-minute buckets because every real UTC offset is a multiple of 15 minutes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from exporter.local_time import zone

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_DAY = 86400
_SLOTS = 168  # hours of the week, Monday 00:00 local first
_SPREAD_WINDOWS = 4  # earlier level windows the low..high band is measured over
_SHORT_MIN = 3600  # the short level window's floor: under an hour, a few calls are the whole window
_BURST_HOURS_PER_DAY = 2.0  # fewer effective hours of spend a day than this: the series spends in bursts


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
    short_level_window_seconds: int | None = None
    """Short trailing window the level is also measured over (the lower level is used); default 1/12 of
    the level window, at least 1 hour. Equal to the level window: one window only, as before."""
    min_rate_window_seconds: int = 3600
    """A series younger than this is still measured over this long (no projecting a first burst)."""
    shape_prior_days: float = 1.0
    """Shrinks the shape towards flat by prior / (prior + days of history)."""
    band_z: float = 1.28
    """Width of the low..high band in standard deviations of past levels (1.28: about 80 %)."""
    min_elapsed_fraction: float = 0.05
    """Forecast alerts stay quiet in the first part of a period."""


FORECAST_MIN_HISTORY_SECONDS = {
    "hourly": 6 * 3600,
    "daily": _DAY,
    "weekly": 3 * _DAY,
    "monthly": 7 * _DAY,
    "yearly": 7 * _DAY,
}
"""History a series needs (since its first spend) before its projection may raise a forecast alert.

A projection from a few minutes of data is a guess: one $21 call on a fresh store projected to $13,835
for the year. A daily budget needs a full day (one of each hour), longer periods several days."""
INSUFFICIENT_HISTORY = "insufficient_history"
"""The projection method recorded while a series has less history than its period needs."""


def has_forecast_evidence(period: str, history_seconds: float) -> bool:
    """Whether a series with `history_seconds` of data may raise a forecast alert for a `period` budget."""
    needed = FORECAST_MIN_HISTORY_SECONDS.get(period)
    return needed is not None and history_seconds >= needed


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
    history_seconds: FloatArray | None = None
    """Seconds since each series' first spend in the data given (0 for none); None when not computed."""

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
    """Whether a forecast-overrun alert is due: projected > limit, but never early in the period.

    Nor while nothing is spent in the period: a level carried over from the last period's end is no
    evidence about this one (ServeGen's chunk-28: a late burst, then at 01:12 a day projected at $666 with
    $0.00 spent, a day that ended at $0).
    """
    cfg = cfg or ProjectionConfig()
    return elapsed_fraction >= cfg.min_elapsed_fraction and result.spent > 0 and result.projected > limit


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
    t_now, t_start = now.timestamp(), period_start.timestamp()
    n_seen = int(np.searchsorted(starts, t_now))  # buckets that started before now
    spent = v[:, int(np.searchsorted(starts, t_start)) : n_seen].sum(axis=1)

    if period_end is None or t_now >= period_end.timestamp() or n_seen == 0:
        method = "no_end" if period_end is None else "complete" if t_now >= period_end.timestamp() else "recent_rate"
        return ProjectionBatch(
            spent, spent.copy(), spent.copy(), spent.copy(), np.full(n, method), _history_seconds(starts, v, t_now)
        )
    t_end = period_end.timestamp()
    level_len = cfg.level_window_seconds or int(min(max(t_end - t_start, 3 * 3600), 7 * _DAY))

    # Keep only what the model reads: the shape's history, the level windows and the period so far.
    reach = max(cfg.history_days * _DAY, (_SPREAD_WINDOWS + 1) * level_len)
    i0 = int(np.searchsorted(starts, min(t_start, t_now - reach)))
    starts, v = starts[i0:n_seen], v[:, i0:n_seen]
    observed = np.minimum(size, t_now - starts) / size  # 1 except the bucket still filling
    index = _SlotIndex(_week_slots(starts, tz), observed)

    nonzero = v > 0
    has_spend = nonzero.any(axis=1)
    first = np.where(has_spend, nonzero.argmax(axis=1), starts.size - 1)
    history_days = np.where(has_spend, (t_now - starts[first]) / _DAY, 0.0)

    # Shape from complete buckets of the trailing history.
    h0 = int(np.searchsorted(starts, t_now - cfg.history_days * _DAY))
    h1 = int(np.count_nonzero(observed >= 1.0))
    weights = _shape_weights(v, index, h0, h1, first, history_days, cfg)

    # Level: recent spend over the shape's mass of the same window (both from the series' first spend),
    # measured over the level window and over a short one (see _follow_short_window).
    short_len = min(cfg.short_level_window_seconds or max(level_len // 12, _SHORT_MIN), level_len)
    long_level, long_rate, level_mass = _window_level(v, starts, t_now, level_len, first, weights, index, cfg)
    short_level, short_rate, short_mass = _window_level(v, starts, t_now, short_len, first, weights, index, cfg)
    future_mass = weights @ _future_slot_counts(int(starts[-1]), t_now, t_end, tz, size)
    buckets_left = (t_end - t_now) / size

    # Without a shape: the recent rate, over at least min_rate_window.
    use_shape = (history_days >= cfg.min_history_days) & (level_mass > 0)
    expected = np.where(use_shape, long_level * future_mass, long_rate * buckets_left)
    short_level = np.where(short_mass > 0, short_level, long_level)
    short_expected = np.where(use_shape, short_level * future_mass, short_rate * buckets_left)
    # A series whose past days came in a burst or two: its period is an amount, not a rate.
    history_from = int(np.searchsorted(starts, t_now - cfg.history_days * _DAY))
    history_to = int(np.searchsorted(starts, t_now - level_len))
    bursty = use_shape & _spends_in_bursts(v, index, history_from, history_to, first, size)
    if bursty.any():
        period_from = int(np.searchsorted(starts, t_start))
        period_mass = weights @ index.between(period_from, starts.size)[0] + future_mass
        expected = np.where(bursty, _at_most_a_usual_period(expected, spent, long_level, period_mass), expected)
        short_expected = np.where(
            bursty, _at_most_a_usual_period(short_expected, spent, short_level, period_mass), short_expected
        )
    rel = np.where(use_shape, _level_spread(v, starts, t_now, level_len, weights, index, first), 1.0)
    low_factor = np.maximum(0.0, 1.0 - cfg.band_z * rel)
    return ProjectionBatch(
        projected=spent + _follow_short_window(expected, short_expected, low_factor),
        low=spent + expected * low_factor,
        high=spent + expected * (1.0 + cfg.band_z * rel),
        spent=spent,
        method=np.where(use_shape, "shape", "recent_rate"),
        history_seconds=history_days * _DAY,
    )


def _window_level(
    v: FloatArray,
    starts: IntArray,
    t_now: float,
    length: int,
    first: IntArray,
    weights: FloatArray,
    index: _SlotIndex,
    cfg: ProjectionConfig,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Level over the trailing `length` seconds: (spend / shape mass, spend per bucket, shape mass).

    Both are counted from the series' first spend; the flat rate over at least `min_rate_window_seconds`,
    so a series minutes old does not project its first calls as a rate.
    """
    window_from = int(np.searchsorted(starts, t_now - length))
    level_from = np.maximum(window_from, first)
    spend = _level_spend(v[:, window_from:])  # buckets before a series' first spend are 0
    mass = np.einsum("ns,ns->n", weights, index.between(level_from, starts.size))
    duration = np.maximum(t_now - starts[level_from], cfg.min_rate_window_seconds) / cfg.bucket_seconds
    return _safe_div(spend, mass), _safe_div(spend, duration), mass


def _follow_short_window(expected: FloatArray, short_expected: FloatArray, low_factor: FloatArray) -> FloatArray:
    """Spend still to come: the long window's, lowered to the short window's, down to the low band.

    The multiwindow burn-rate rule of the SRE workbook: over a limit only while both windows say so.
    The long window alone kept a $300 burst in a $10-a-day month projecting ~$1,500 of $1,000 for the
    seven days the burst stayed in it; the short one lets go within about its length (14 hours for a
    month) of the burst ending, while a sustained rise shows in both (the long window, the slower, still
    decides when it fires). But a quiet day is no evidence the pace fell: the lower of two windows
    without a bound followed every day's jitter down (monthly error at a quarter of the period 6.4 % ->
    8.1 % in bench/eval_detection.py). So the short window lowers the projection at most to the low end
    of the band, whose width is how far the level has strayed over the last windows: a burst in the
    level window widens it to nothing, a steady series keeps it narrow.
    """
    return np.maximum(np.minimum(expected, short_expected), expected * low_factor)


def _spends_in_bursts(v: FloatArray, index: _SlotIndex, a: int, b: int, first: IntArray, size: int) -> BoolArray:
    """Whether each series spent buckets [a, b) in bursts: in fewer than `_BURST_HOURS_PER_DAY` hours a day.

    Hours counted as an effective number, (sum of the clock hours' spend)^2 / sum of their squares: a
    day spent evenly over 24 hours counts 24, a day spent in one hour counts 1, whatever the amounts.
    Read over the history before the level window, so today's own burst or rise does not decide it.
    """
    n = v.shape[0]
    days = np.maximum(b - np.maximum(a, first), 0) * size / _DAY
    if b <= a:
        return np.zeros(n, dtype=bool)
    runs = index.run_start[(index.run_start > a) & (index.run_start < b)]  # a run of one slot: one clock hour
    hours = np.add.reduceat(v[:, a:b], np.concatenate(([a], runs)) - a, axis=1)
    total = hours.sum(axis=1)
    effective_hours = _safe_div(total**2, (hours**2).sum(axis=1))
    return (days >= 1.0) & (total > 0) & (effective_hours < _BURST_HOURS_PER_DAY * days)


def _at_most_a_usual_period(expected: FloatArray, spent: FloatArray, level: FloatArray, mass: FloatArray) -> FloatArray:
    """Spend still to come, at most what a whole period at `level` brings beyond the spend so far.

    For a series that spends in bursts, one day's rate is no pace: chunk-20 of ServeGen's m-small spends
    its whole day in a 10-minute batch after 9:00, and at 9:10 the rate of the last 24 hours carried over
    the rest of the hour projected $1,760 for its usual $1,000 day, a forecast over a limit of 1.5 x its
    median day on days that ended at it. Counted as an amount, the day the level measures has been
    spent once the batch is. A bigger level still raises the amount: the level window holds today's bursts.
    """
    return np.minimum(expected, np.maximum(level * mass - spent, 0.0))


def _level_spend(window: FloatArray) -> FloatArray:
    """Spend of the level window, its largest bucket counted as its second largest.

    One call is no rate: a single $300 call in a month of $1 an hour made the whole level window (a
    week for a monthly budget) look like $300 a week, projected $2,200 for a $720 month and kept a
    forecast alert firing for seven days. The call itself is in the spend so far; only its repetition
    is not assumed. Steady spend has a largest bucket like the others, so this changes nothing there.
    """
    total = window.sum(axis=1)
    if window.shape[1] < 2:
        return total
    top = np.partition(window, -2, axis=1)[:, -2:]
    return total - top[:, 1] + top[:, 0]


def _history_seconds(starts: IntArray, v: FloatArray, t_now: float) -> FloatArray:
    """Seconds from each row's first bucket with spend to `t_now` (0 for a row without spend)."""
    nonzero = v > 0
    has_spend = nonzero.any(axis=1)
    if starts.size == 0:
        return np.zeros(v.shape[0])
    first = nonzero.argmax(axis=1)
    return np.where(has_spend, np.maximum(t_now - starts[first], 0.0), 0.0)


class _SlotIndex:
    """Observed buckets per hour-of-week slot in any range of buckets, from per-run prefix sums.

    Slots change once an hour, so prefix sums over runs of equal slot stay small (hours x 168) where
    per-bucket ones would be (buckets x 168).
    """

    def __init__(self, slots: IntArray, observed: FloatArray) -> None:
        self.run_start = np.concatenate(([0], np.nonzero(np.diff(slots))[0] + 1)).astype(np.int64)
        self.run_slot = slots[self.run_start]
        self.cum = np.concatenate(([0.0], np.cumsum(observed)))
        run_end = np.append(self.run_start[1:], slots.size)
        prefix = np.zeros((self.run_start.size + 1, _SLOTS))
        prefix[np.arange(1, self.run_start.size + 1), self.run_slot] = self.cum[run_end] - self.cum[self.run_start]
        self.prefix = np.cumsum(prefix, axis=0)

    def before(self, pos: npt.ArrayLike) -> FloatArray:
        """(len(pos), 168): observed buckets per slot among the first `pos` buckets."""
        p = np.atleast_1d(np.asarray(pos, dtype=np.int64))
        run = np.searchsorted(self.run_start, p, side="right") - 1
        out = self.prefix[run].copy()
        out[np.arange(p.size), self.run_slot[run]] += self.cum[p] - self.cum[self.run_start[run]]
        return out

    def between(self, a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
        """Observed buckets per slot in buckets [a, b), (len, 168)."""
        return self.before(b) - self.before(a)


def _safe_div(a: FloatArray, b: FloatArray) -> FloatArray:
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape))
    np.divide(a, b, out=out, where=b > 0)
    return out


def _shape_weights(
    v: FloatArray,
    index: _SlotIndex,
    h0: int,
    h1: int,
    first: IntArray,
    history_days: FloatArray,
    cfg: ProjectionConfig,
) -> FloatArray:
    """Relative spend per bucket in each hour-of-week slot, (n_series, 168), from buckets [h0, h1)."""
    n = v.shape[0]
    if h1 <= h0:
        return np.ones((n, _SLOTS))
    # Sum runs of the same slot first: a matmul over hours, not buckets.
    runs = index.run_start[(index.run_start > h0) & (index.run_start < h1)]
    breaks = np.concatenate(([h0], runs))
    run_sums = np.add.reduceat(v[:, h0:h1], breaks - h0, axis=1)
    run_slot = index.run_slot[np.searchsorted(index.run_start, breaks, side="right") - 1]
    run_onehot = np.zeros((breaks.size, _SLOTS))
    run_onehot[np.arange(breaks.size), run_slot] = 1
    # Buckets per run (all complete here), those before a series' first spend not counted.
    run_end = np.append(breaks[1:], h1)
    seen = np.maximum(run_end - np.maximum(breaks, first[:, None]), 0).astype(np.float64)
    sums = (run_sums @ run_onehot - _slot_excess(run_sums, seen, run_slot)).reshape(n, 7, 24)
    counts = index.between(np.clip(first, h0, h1), h1).reshape(n, 7, 24)

    total = sums.sum(axis=(1, 2))
    overall = _safe_div(total, counts.sum(axis=(1, 2)))  # mean spend per bucket
    hour_rel = _safe_div(_safe_div(sums.sum(axis=1), counts.sum(axis=1)), overall[:, None])
    hour_rel = np.where(counts.sum(axis=1) > 0, hour_rel, 1.0)
    day_rel = _safe_div(_safe_div(sums.sum(axis=2), counts.sum(axis=2)), overall[:, None])
    weekly = (history_days >= cfg.weekly_min_days)[:, None] & (counts.sum(axis=2) > 0)
    day_rel = np.where(weekly, day_rel, 1.0)

    shape = day_rel[:, :, None] * hour_rel[:, None, :]
    alpha = (cfg.shape_prior_days / (cfg.shape_prior_days + history_days))[:, None, None]
    shape = (1.0 - alpha) * shape + alpha
    return np.where((total > 0)[:, None, None], shape, 1.0).reshape(n, _SLOTS)


def _slot_excess(run_sums: FloatArray, seen: FloatArray, run_slot: IntArray) -> FloatArray:
    """(n_series, 168): what each slot's largest hour spent above its second largest (per bucket seen).

    One burst is no pattern: a $300 batch job one Sunday 10:00-14:00 otherwise taught the shape that
    every day spends most at 10:00-14:00, and Sundays four times as much, so after the burst the month
    was still projected past its limit from the ordinary hours. The burst is in the spend so far; only
    its repetition is not assumed. A slot seen in under two hours keeps what it has; a pattern that
    repeats has a largest hour like the others, so this changes little there.
    """
    n, n_runs = run_sums.shape
    order = np.argsort(run_slot, kind="stable")
    sorted_slots = run_slot[order]
    rank = np.empty(n_runs, dtype=np.int64)
    rank[order] = np.arange(n_runs) - np.searchsorted(sorted_slots, sorted_slots)
    depth = int(rank.max()) + 1 if n_runs else 1
    if depth < 2:
        return np.zeros((n, _SLOTS))
    mean = np.full((n, _SLOTS, depth), -1.0)  # -1: no hour (spend per bucket is never negative)
    count = np.zeros((n, _SLOTS, depth))
    mean[:, run_slot, rank] = np.where(seen > 0, _safe_div(run_sums, seen), -1.0)
    count[:, run_slot, rank] = seen
    largest = mean.argmax(axis=2)[:, :, None]
    m1 = np.take_along_axis(mean, largest, axis=2)[:, :, 0]
    c1 = np.take_along_axis(count, largest, axis=2)[:, :, 0]
    m2 = np.partition(mean, -2, axis=2)[:, :, -2]
    return np.where(m2 >= 0, (m1 - m2) * c1, 0.0)


def _level_spread(
    v: FloatArray,
    starts: IntArray,
    t_now: float,
    level_len: int,
    weights: FloatArray,
    index: _SlotIndex,
    first: IntArray,
) -> FloatArray:
    """Relative spread (std / mean) of the level over the last few windows of the level's length."""
    bounds = np.searchsorted(starts, t_now - level_len * np.arange(_SPREAD_WINDOWS, -1, -1))
    bounds[-1] = starts.size
    levels, valid = [], []
    for a, b in itertools.pairwise(bounds):
        if b > a:
            mass = weights @ index.between(a, b)[0]
            levels.append(_safe_div(v[:, a:b].sum(axis=1), mass))
            valid.append(first <= a)
    if len(levels) < 2:
        return np.ones(v.shape[0])
    level, ok = np.stack(levels, axis=1), np.stack(valid, axis=1)
    count = ok.sum(axis=1)
    mean = _safe_div(np.where(ok, level, 0.0).sum(axis=1), count.astype(np.float64))
    sq = np.where(ok, (level - mean[:, None]) ** 2, 0.0).sum(axis=1)
    std = np.sqrt(_safe_div(sq, np.maximum(count - 1, 0).astype(np.float64)))
    return np.where(count >= 2, _safe_div(std, mean), 1.0)


def _future_slot_counts(last_start: int, t_now: float, t_end: float, tz: str, size: int) -> FloatArray:
    """Buckets (a fraction for the one still filling) per slot from `now` to the period end, (168,)."""
    future = np.arange(last_start, t_end, size, dtype=np.int64)
    weight = np.ones(future.size)
    weight[0] = (last_start + size - t_now) / size
    return np.bincount(_week_slots(future, tz), weights=weight, minlength=_SLOTS).astype(np.float64)


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
