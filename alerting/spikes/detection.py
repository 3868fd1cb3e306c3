"""Spend spike detection: a pure, vectorised function of (series, config, now).

`detect_spikes` takes spend per bucket for many series at once (oldest bucket first; the last bucket is
the one containing `now`, still filling: `now_fraction` says how much of it has passed) and checks, for
every series at once and for each watched window length, the spend of the window ending at `now`:

* baseline: for each of the previous `baseline_days` days, that day's spend rate in the half hour
  around this time of day (`seasonal_spread_minutes` either side), scaled to the window's length and
  by how today's last `recent_minutes` compare with the same hours that day (so a quiet Saturday or a
  busier week is compared at its own level: up to `max_level_change` times higher, at most
  `max_level_drop` times lower); the baseline is the median over those days, so one outlier day does
  not move it. A series with fewer than `min_baseline_days` active days uses the median of its recent
  windows instead.
* robust score: `(window - baseline) / scale`, scale = 1.4826 x the relative median absolute deviation
  of the daily values (of the recent windows when there is no daily baseline) times the baseline (at
  least `min_scale_ratio` x baseline).
* usual peak: the median over the days of the busiest same-length window near this time (within the
  spread, and for a shorter window within the stretch the configured window reads). A window must
  exceed it `shift_guard` times, so a daily job or a morning ramp that arrives a few minutes early is
  not a spike, and bursty series need more than three times their median. It must also exceed the
  second-busiest day's `repeat_guard` times: a size the series has already reached at this hour on two
  of the last days (a weekly batch, a new daily job's second run) is its own pattern, not a spike,
  however calm the median day is.
* recent level: the series' spend per window over the `recent_minutes` before the longest window. A
  window must exceed it `recent_guard` times: a spike is a sudden rise over what the series was just
  spending, so a day that is simply busier than the usual one at this hour, or an evening drop that did
  not come today, is not one (both leave the window above the same-time baseline, not above the level).

Those two guards come from scoring the detector on real tenant traffic (docs/detection-experiments.md),
where most false alarms were one or the other.

A window fires when it is at least `multiplier` x its baseline, the robust score reaches `robust_z`, it
clears both usual-peak guards and `recent_guard` x the recent level, its spend is at least
`min_spend_usd`, and the series has an established baseline: at least `min_history_windows` baseline
windows with any spend and a baseline above zero (a new or silent series never fires, and a ratio to a
zero baseline is never a reason). Optionally (`min_active_share`, off by default) it must also have had
spend around this time on that share of the previous days or of its recent windows: an intermittent
series, busy at this hour on some days only and quiet in the hours before, reads each resumption as a
100x-1000x spike (docs/detection-experiments.md).

`window_minutes` (30) is the window the spec names; `short_windows_minutes` adds shorter windows
checked by the same rule, so a sharp spike fires within minutes instead of once it has filled half an
hour. A shorter window answers to the configured one: it fires only while the configured window has an
established baseline and is at least at it (a few busy minutes after a lull, with the half hour still
below its usual spend, are not a spike). A longer window starts an alert only while the shortest one
has some spend (a burst after which the series went quiet is not paged about; one already paged stays
up until it resolves). `short_windows_minutes=()` gives the 30-minute window alone.

Hysteresis: a series that was firing stays firing while any of its windows is still at least
`resolve_multiplier` x its baseline and at least half of `min_spend_usd`; it resolves below that.
Given how long each series has been firing (`firing_buckets`), a firing series' baseline is scaled by
today's level from before its alert started, not by the last `recent_minutes`: after three hours of a
spike those are the spike itself, which raised the baseline up to `max_level_change` times and resolved
a 5x spike while it went on (on replayed real traffic, about 2h15m into a six-hour spike).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alerting.spikes.robust_stats import masked_median_mad, median_mad, ratio_or, row_median, window_sums

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

_MAD_TO_SIGMA = 1.4826
_DAY = 86400


class Reason(enum.IntEnum):
    """Why a series is, or is not, firing; ordered from furthest from firing to firing."""

    SHORT_HISTORY = 0
    """No established baseline (too few baseline windows with any spend, or a zero baseline): new or
    silent series never fire."""
    LOW_SPEND = 1
    """Window spend below `min_spend_usd`."""
    BELOW_MULTIPLIER = 2
    """Window spend below `multiplier` x baseline."""
    BELOW_RECENT_LEVEL = 3
    """Above the multiplier, but below `recent_guard` x the series' level over the last hours: not sudden."""
    NEAR_USUAL_PEAK = 4
    """Above the multiplier, but below `shift_guard` x the usual busiest window around this time, or
    `repeat_guard` x the second-busiest previous day's."""
    SCORE_DISAGREES = 5
    """Above the multiplier, but within the series' usual spread (robust score below `robust_z`)."""
    HELD = 6
    """Was firing; no longer meets the rule but has not fallen below the resolve threshold."""
    SPIKE = 7
    """Meets the rule: multiplier, usual peak, robust score and minimum spend all agree."""


@dataclass(frozen=True)
class DetectionConfig:
    """Spike detection settings; the first four mirror the `detection:` config block."""

    window_minutes: int = 30
    baseline_days: int = 7
    multiplier: float = 3.0
    min_spend_usd: float = 1.0
    min_history_windows: int = 6
    """Baseline windows (daily + recent) that must have had spend for a series to alert at all."""
    robust_z: float = 6.0
    """Robust score (in units of 1.4826 x MAD) a window must reach."""
    bucket_seconds: int = 300
    short_windows_minutes: tuple[int, ...] = (5, 15)
    """Shorter windows checked by the same rule, for fast detection of sharp spikes."""
    seasonal_spread_minutes: int = 15
    """How far either side of this time of day previous days are read (daily jobs drift a little)."""
    recent_minutes: int = 180
    """Recent windows (today's level, fallback baseline, noise) come from this long before the window."""
    shift_guard: float = 2.75
    """A window must also reach this many times the usual busiest window around this time of day."""
    recent_guard: float = 1.5
    """A window must also reach this many times the series' spend per window over `recent_minutes`."""
    repeat_guard: float = 1.5
    """A window must also reach this many times the second-busiest previous day around this time."""
    min_baseline_days: int = 3
    """Previous days with spend needed for the daily baseline; fewer: the recent windows' median."""
    max_level_change: float = 4.0
    """Bound on how far a busier today may scale a previous day up."""
    max_level_drop: float = 2.0
    """Bound on how far a quieter today may scale a previous day down. Tighter than `max_level_change`:
    on real traffic a quiet spell before the usual busy hour cut baselines to a quarter and made the
    usual volume read as a spike (docs/detection-experiments.md)."""
    min_scale_ratio: float = 0.1
    """Floor of the robust scale as a fraction of the baseline (a perfectly regular series has MAD 0)."""
    resolve_multiplier: float = 1.5
    min_active_share: float = 0.0
    """If above 0, an established series also has spend around this time on at least this share of the
    previous days, or in at least this share of its recent windows; an intermittent one is `SHORT_HISTORY`.
    Off by default: on real traffic 0.75 removes a third of the false alarms but as many real spikes on
    held-out moments (docs/detection-experiments.md)."""

    def __post_init__(self) -> None:
        """Reject settings that cannot be laid on whole buckets, listing every problem."""
        size = self.bucket_seconds
        problems = []
        if size <= 0 or _DAY % size:
            problems.append(f"bucket_seconds {size} must divide a day")
        else:
            for minutes in (self.window_minutes, *self.short_windows_minutes, self.recent_minutes):
                if minutes <= 0 or (minutes * 60) % size:
                    problems.append(f"{minutes} min is not a positive multiple of {size} s buckets")
            if self.seasonal_spread_minutes < 0 or (self.seasonal_spread_minutes * 60) % size:
                problems.append("seasonal_spread_minutes must be a non-negative multiple of the bucket")
        if self.baseline_days < 1:
            problems.append("baseline_days must be at least 1")
        if not 0 <= self.min_active_share <= 1:
            problems.append("min_active_share must be in [0, 1]")
        if not 0 < self.resolve_multiplier <= self.multiplier:
            problems.append("resolve_multiplier must be in (0, multiplier]")
        if self.max_level_change < 1:
            problems.append("max_level_change must be at least 1")
        if self.max_level_drop < 1:
            problems.append("max_level_drop must be at least 1")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def windows_minutes(self) -> tuple[int, ...]:
        """Every window length checked, shortest first, the configured window last."""
        shorter = sorted({m for m in self.short_windows_minutes if m < self.window_minutes})
        return (*shorter, self.window_minutes)

    @property
    def buckets_needed(self) -> int:
        """How many trailing buckets (including the current one) a full baseline reads."""
        return self.baseline_days * (_DAY // self.bucket_seconds) + self._reach() + 2

    def _reach(self) -> int:
        """Buckets before the same time on a previous day that the baseline of that day reads."""
        size = self.bucket_seconds
        longest = self.window_minutes * 60 // size
        return longest + max(self.seasonal_spread_minutes * 60 // size, self.recent_minutes * 60 // size)


@dataclass(frozen=True)
class BucketLayout:
    """Which buckets to load for a detection pass at `now`."""

    first_bucket_start: int
    """Epoch seconds of the oldest bucket."""
    n_buckets: int
    now_fraction: float
    """How much of the last bucket (the one containing `now`) has passed, in (0, 1]."""


def bucket_layout(now: float, config: DetectionConfig | None = None) -> BucketLayout:
    """The bucket range `detect_spikes` needs at `now` (epoch seconds): load exactly these columns."""
    cfg = config or DetectionConfig()
    size = cfg.bucket_seconds
    last_start = math.ceil(now / size) * size - size
    n = cfg.buckets_needed
    return BucketLayout(last_start - (n - 1) * size, n, (now - last_start) / size)


@dataclass(frozen=True)
class SpikeResult:
    """Per-series outcome of one pass; every array has shape (n_series,).

    The figures are those of the window that came closest to firing (ties: the longer window).
    """

    window_spend: FloatArray
    baseline: FloatArray
    ratio: FloatArray
    """window / baseline; inf when the baseline is 0 and the window is not."""
    score: FloatArray
    """Robust score; inf when the scale is 0 and the window exceeds the baseline."""
    is_spike: BoolArray
    """Firing after this pass: new and continuing spikes, and held ones."""
    reason: npt.NDArray[np.int8]
    """A `Reason` per series."""
    window_minutes: IntArray


@dataclass(frozen=True)
class GuardFigures:
    """One window length's figures at one pass, per series (every array has shape (n_series,)).

    What the window was compared with by each condition of the rule (module docstring): it fires when
    window >= multiplier x baseline, score >= robust_z, window >= shift_guard x usual_peak (where
    there is a daily baseline), >= repeat_guard x repeat_peak, >= recent_guard x recent_level, spend
    >= min_spend_usd and the series is established.
    """

    window: FloatArray
    baseline: FloatArray
    score: FloatArray
    usual_peak: FloatArray
    """Median over the days of the busiest window near this time; 0 without a daily baseline (the
    guard does not apply then)."""
    repeat_peak: FloatArray
    """The second-busiest previous day's busiest window near this time."""
    recent_level: FloatArray
    """Spend per window of this length over the recent minutes."""
    established: BoolArray
    """Enough baseline windows with spend, a baseline above zero, and (with `min_active_share`) not
    intermittent."""


def detect_spikes(
    values: npt.ArrayLike,
    config: DetectionConfig | None = None,
    *,
    now_fraction: float = 1.0,
    previously_firing: npt.ArrayLike | None = None,
    firing_buckets: npt.ArrayLike | None = None,
) -> SpikeResult:
    """Find spend spikes in `values` (n_series, n_buckets): spend per bucket, the last containing now.

    `now_fraction` is (now - start of the last bucket) / bucket_seconds; older buckets are complete.
    Columns older than `config.buckets_needed` are ignored; fewer only shorten the baseline.
    `previously_firing` (n_series,) bool, the last pass's `is_spike`, turns on hysteresis.
    `firing_buckets` (n_series,) int, how many buckets ago each firing series' alert started (0 for the
    others): a firing series is then compared at today's level from before its alert (module docstring).
    """
    cfg = config or DetectionConfig()
    v = _as_buckets(values, cfg, now_fraction)
    n = v.shape[0]
    prev = np.zeros(n, dtype=bool) if previously_firing is None else np.asarray(previously_firing, dtype=bool)
    if prev.shape != (n,):
        raise ValueError(f"previously_firing must have shape ({n},)")
    since = np.zeros(n, dtype=np.int64) if firing_buckets is None else np.asarray(firing_buckets, dtype=np.int64)
    if since.shape != (n,):
        raise ValueError(f"firing_buckets must have shape ({n},)")
    checks = _check_windows(v, now_fraction, cfg, np.where(prev, since, 0))
    _hold_windows_to_each_other(checks)

    best: _Check | None = None
    fire = np.zeros(n, dtype=bool)
    keep = np.zeros(n, dtype=bool)
    for check in checks:
        fire |= check.rank == Reason.SPIKE
        keep |= (check.window >= cfg.resolve_multiplier * check.base) & (check.window >= 0.5 * cfg.min_spend_usd)
        best = check if best is None else best.merge(check)
    assert best is not None
    held = prev & ~fire & keep
    reason = np.where(held, np.int8(Reason.HELD), best.rank).astype(np.int8)
    return SpikeResult(best.window, best.base, best.ratio, best.score, fire | held, reason, best.minutes)


def guard_figures(
    values: npt.ArrayLike,
    config: DetectionConfig | None = None,
    *,
    now_fraction: float = 1.0,
    firing_buckets: npt.ArrayLike | None = None,
) -> dict[int, GuardFigures]:
    """Per window length (minutes), what each of its guards compared the window with at this pass.

    The same pass as `detect_spikes` on the same arguments, before the windows are held to each other
    and without hysteresis: for evaluation and diagnosis (`bench/learned_reference.py` replays rules
    over these figures), never needed to detect. `firing_buckets` (0 for series not firing) as given
    to `detect_spikes`.
    """
    cfg = config or DetectionConfig()
    v = _as_buckets(values, cfg, now_fraction)
    since = None if firing_buckets is None else np.asarray(firing_buckets, dtype=np.int64)
    checks = _check_windows(v, now_fraction, cfg, since)
    figures = {}
    for minutes, check in zip(cfg.windows_minutes, checks, strict=True):
        assert check.figures is not None  # set by _check_window
        figures[minutes] = check.figures
    return figures


def _as_buckets(values: npt.ArrayLike, cfg: DetectionConfig, now_fraction: float) -> FloatArray:
    """`values` as a 2-D float array of the trailing `buckets_needed` columns, arguments checked."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"values must be 2-D (n_series, n_buckets), got shape {v.shape}")
    if not 0.0 < now_fraction <= 1.0:
        raise ValueError("now_fraction must be in (0, 1]")
    return v[:, -cfg.buckets_needed :]


def _check_windows(v: FloatArray, f: float, cfg: DetectionConfig, since: IntArray | None = None) -> list[_Check]:
    """Every window length's `_Check`, shortest first, the configured window last.

    `since` (n_series,): buckets since a firing series' alert started, 0 for the others.
    """
    days, level, recent_level = _daily_levels(v, f, cfg)
    if since is not None and since.any():
        level = _level_before_alerts(v, days, level, since, cfg)
    checks = []
    for minutes in cfg.windows_minutes:
        wb = minutes * 60 // cfg.bucket_seconds
        check = _check_window(v, wb, f, days, level, recent_level * wb, cfg, since)
        check.minutes[:] = minutes
        checks.append(check)
    return checks


def _hold_windows_to_each_other(checks: list[_Check]) -> None:
    """Hold the windows (shortest first, the configured one last) to each other's verdicts, in place.

    A shorter window is there to catch a spike early, not to find one the configured window says is
    not there: where that window has no established baseline, or is below its baseline, a shorter one
    does not fire (on real traffic, a few busy minutes after a lull were a common false alarm). And a
    longer window starts no alert once the series has gone quiet: the freshest window must have some
    spend (a burst that stopped a quarter of an hour ago still fills the half hour). Both only change
    which windows may start an alert; hysteresis is untouched.
    """
    if len(checks) < 2:
        return
    shortest, configured = checks[0], checks[-1]
    no_baseline = configured.rank == Reason.SHORT_HISTORY
    below = configured.window < configured.base
    over = ~(shortest.window > 0)
    for check in checks[:-1]:
        np.minimum(check.rank, np.int8(Reason.BELOW_MULTIPLIER), out=check.rank, where=below)
        check.rank[no_baseline] = Reason.SHORT_HISTORY
    for check in checks[1:]:
        np.minimum(check.rank, np.int8(Reason.BELOW_MULTIPLIER), out=check.rank, where=over)


@dataclass
class _Check:
    """One window length's figures for every series."""

    window: FloatArray
    base: FloatArray
    ratio: FloatArray
    score: FloatArray
    rank: npt.NDArray[np.int8]
    minutes: IntArray
    figures: GuardFigures | None = None
    """Set by `_check_window`; a merged check has none (only `guard_figures` reads them)."""

    def merge(self, other: _Check) -> _Check:
        """Per series, whichever came closer to firing; ties go to `other` (the longer window)."""
        take = other.rank >= self.rank
        return _Check(
            np.where(take, other.window, self.window),
            np.where(take, other.base, self.base),
            np.where(take, other.ratio, self.ratio),
            np.where(take, other.score, self.score),
            np.where(take, other.rank, self.rank).astype(np.int8),
            np.where(take, other.minutes, self.minutes),
        )


def _daily_levels(v: FloatArray, f: float, cfg: DetectionConfig) -> tuple[IntArray, FloatArray, FloatArray]:
    """The previous days read, each day's level factor (n_series, n_days), and today's recent level.

    The recent level is today's spend per bucket over the `recent_minutes` before the longest window
    (n_series,). The factor is today's spend in those minutes over that day's spend in the same hours
    (smoothed by a tenth of the typical day, bounded by `max_level_drop` and `max_level_change`).
    """
    size = cfg.bucket_seconds
    per_day = _DAY // size
    last = v.shape[1] - 1
    days = np.arange(1, cfg.baseline_days + 1)
    days = days[last - days * per_day - cfg._reach() - 1 >= 0]
    lead = cfg.recent_minutes * 60 // size
    end = last - cfg.window_minutes * 60 // size
    if days.size == 0:
        recent = window_sums(v, np.array([end]), lead, f)[:, 0] / lead if end - lead >= 0 else np.zeros(v.shape[0])
        return days, np.ones((v.shape[0], 0)), recent
    leads = window_sums(v, np.concatenate(([end], end - days * per_day)), lead, f)
    today, before = leads[:, :1], leads[:, 1:]
    eps = 0.1 * row_median(before)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(before + eps > 0, (today + eps) / (before + eps), 1.0)
    return days, np.clip(level, 1.0 / cfg.max_level_drop, cfg.max_level_change), today[:, 0] / lead


def _level_before_alerts(
    v: FloatArray, days: IntArray, level: FloatArray, since: IntArray, cfg: DetectionConfig
) -> FloatArray:
    """`level` with each firing series' row (`since` > 0) measured over the recent minutes before its alert.

    The same factor as `_daily_levels`, over whole buckets (the alert's start is known to the bucket). A
    day whose hours before the alert are older than the array holds takes the median of the other days'
    factors; a series with no such day, or whose alert is older than the recent minutes reach, keeps its
    current level.
    """
    per_day = _DAY // cfg.bucket_seconds
    lead = cfg.recent_minutes * 60 // cfg.bucket_seconds
    end = v.shape[1] - 1 - cfg.window_minutes * 60 // cfg.bucket_seconds - since  # (n_series,)
    rows = np.nonzero((since > 0) & (end - lead + 1 >= 0))[0]
    if rows.size == 0 or days.size == 0:
        return level
    totals = np.concatenate((np.zeros((rows.size, 1)), np.cumsum(v[rows], axis=1)), axis=1)
    ends = end[rows, None] - np.concatenate(([0], days * per_day))[None, :]  # today first, then each day
    known = ends[:, 1:] - lead + 1 >= 0
    picked = np.arange(rows.size)[:, None]
    leads = totals[picked, ends + 1] - totals[picked, np.maximum(ends + 1 - lead, 0)]
    today, before = leads[:, :1], np.where(known, leads[:, 1:], np.nan)
    eps = 0.1 * np.nan_to_num(np.nanmedian(np.where(known.any(axis=1)[:, None], before, 0.0), axis=1))[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        held = np.where(before + eps > 0, (today + eps) / (before + eps), np.where(known, 1.0, np.nan))
    fill = np.nanmedian(np.where(known.any(axis=1)[:, None], held, 1.0), axis=1)
    held = np.where(known, held, fill[:, None])
    out = level.copy()
    some = known.any(axis=1)
    out[rows[some]] = np.clip(held[some], 1.0 / cfg.max_level_drop, cfg.max_level_change)
    return out


def _check_window(
    v: FloatArray,
    wb: int,
    f: float,
    days: IntArray,
    level: FloatArray,
    recent_level: FloatArray,
    cfg: DetectionConfig,
    since: IntArray | None = None,
) -> _Check:
    """Window spend, baseline, ratio, robust score and rank (a `Reason`) for a `wb`-bucket window.

    `recent_level` is the series' spend per `wb` buckets over the recent minutes (n_series,). `since`
    (n_series,): buckets since a firing series' alert started, 0 for the others.
    """
    n = v.shape[0]
    size = cfg.bucket_seconds
    last = v.shape[1] - 1
    per_day = _DAY // size
    spread = cfg.seasonal_spread_minutes * 60 // size
    # A shorter window's usual peak is read over the stretch the configured window reads, so a daily
    # job that arrives a few minutes early is as familiar to the 5-minute window as to the 30-minute one.
    reach = spread + max(0, cfg.window_minutes * 60 // size - wb) // 2
    same_time = last - days * per_day

    shifts = np.arange(-reach, reach + 1)
    recent_ends = last - wb - np.arange(cfg.recent_minutes * 60 // size)
    recent_ends = recent_ends[recent_ends - wb >= 0]
    ends = np.concatenate(([last], (same_time[:, None] + shifts[None, :]).ravel(), recent_ends))
    sums = window_sums(v, ends, wb, f)
    window = sums[:, 0]
    shifted = sums[:, 1 : 1 + days.size * shifts.size].reshape(n, days.size, shifts.size)
    recent = sums[:, 1 + days.size * shifts.size :]

    span = wb + 2 * spread
    daily = window_sums(v, same_time + spread, span, f) * (wb / span) * level
    near = shifted[:, :, reach - spread : reach + spread + 1].max(axis=2) * level
    peak = shifted.max(axis=2) * level
    active = (daily > 0) | (near > 0)
    daily_med, daily_mad, n_days = masked_median_mad(daily, active)
    usual_peak, _, _ = masked_median_mad(peak, active | (peak > 0))
    # The second-busiest day (not the busiest: one incident day must not hide a spike for a week).
    repeat_peak = np.sort(near, axis=1)[:, -2] if days.size >= 2 else np.zeros(n)
    recent_med, recent_mad = median_mad(recent)

    seasonal = n_days >= cfg.min_baseline_days
    if since is not None:
        _recent_before_alerts(v, wb, f, recent_ends, np.where(seasonal, 0, since), recent_med, recent_mad)
    base = np.where(seasonal, daily_med, recent_med)
    # The days' spread at this hour is the noise; the recent windows' spread is mostly the day's own
    # rise or fall over the last hours, and taking it too missed spikes on real traffic.
    rel = np.where(seasonal, ratio_or(daily_mad, daily_med, 0.0), ratio_or(recent_mad, recent_med, 0.0))
    scale = np.where(
        base > 0,
        base * np.maximum(_MAD_TO_SIGMA * rel, cfg.min_scale_ratio),
        _MAD_TO_SIGMA * np.where(seasonal, daily_mad, recent_mad),
    )
    ratio = ratio_or(window, base, np.inf)
    score = ratio_or(window - base, scale, np.inf)

    history = np.count_nonzero(active, axis=1) + np.count_nonzero(recent > 0, axis=1)
    rank = np.full(n, Reason.SPIKE, dtype=np.int8)
    rank[score < cfg.robust_z] = Reason.SCORE_DISAGREES
    rank[seasonal & (window < cfg.shift_guard * usual_peak)] = Reason.NEAR_USUAL_PEAK
    rank[window < cfg.repeat_guard * repeat_peak] = Reason.NEAR_USUAL_PEAK
    rank[window < cfg.recent_guard * recent_level] = Reason.BELOW_RECENT_LEVEL
    rank[ratio < cfg.multiplier] = Reason.BELOW_MULTIPLIER
    rank[window < cfg.min_spend_usd] = Reason.LOW_SPEND
    rank[(history < cfg.min_history_windows) | ~(base > 0)] = Reason.SHORT_HISTORY
    # Busy at this hour on some days only and quiet before: each resumption is a huge ratio, not a spike.
    days_share = np.count_nonzero(active, axis=1) / max(days.size, 1)
    recent_share = np.count_nonzero(recent > 0, axis=1) / max(recent.shape[1], 1)
    intermittent = (days_share < cfg.min_active_share) & (recent_share < cfg.min_active_share)
    rank[intermittent] = Reason.SHORT_HISTORY
    established = rank != Reason.SHORT_HISTORY  # the three conditions above that set it
    figures = GuardFigures(
        window, base, score, np.where(seasonal, usual_peak, 0.0), repeat_peak, recent_level, established
    )
    return _Check(window, base, ratio, score, rank, np.zeros(n, dtype=np.int64), figures)


def _recent_before_alerts(
    v: FloatArray, wb: int, f: float, recent_ends: IntArray, since: IntArray, med: FloatArray, mad: FloatArray
) -> None:
    """Set `med` and `mad` of each firing series (`since` > 0) from the recent windows before its alert.

    A series without a daily baseline is compared with its recent windows; an hour or two into a
    sustained spike those are the spike itself, and the alert resolved while the spend went on (a
    project two days old, 5x for five hours: resolved 2 hours in, `tests/alerting/test_spike_sustained.py`).
    Firing series are few, so this loops over the distinct alert ages, not over series. An alert older
    than the buckets held keeps the current windows.
    """
    for age in np.unique(since[since > 0]):
        ends = recent_ends - age
        ends = ends[ends - wb >= 0]
        if ends.size == 0:
            continue
        rows = np.nonzero(since == age)[0]
        med[rows], mad[rows] = median_mad(window_sums(v[rows], ends, wb, f))
