"""Real tenant traffic for the spike evaluation: tenants, the moments looked at, the simple rules, the passes.

The evaluation itself (scores, report) is `bench/eval_real_traffic.py`; its docstring says how a case is
made. Traffic: the 43 tenants of ServeGen's m-small language workload (alibaba/ServeGen @ f891d11,
data/language/m-small; Xiang et al., arXiv:2505.09999; Apache-2.0), bundled in `bench/data/servegen-m-small/`.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from alerting.spikes.detection import DetectionConfig, detect_spikes  # noqa: E402

DATA = REPO / "bench" / "data" / "servegen-m-small"
ATTRIBUTION = (
    "Traffic: ServeGen m-small (alibaba/ServeGen @ f891d11, data/language/m-small; Xiang et al., "
    "'ServeGen: Workload Characterization of Large Language Model Serving in Production', "
    "arXiv:2505.09999; Apache-2.0)."
)
TRACE_SECONDS = 600
PRICE_PER_CALL = 0.01
"""USD per request (about 2,000 tokens at a mid-range model's prices): turns request rates into spend."""
STEP_HOURS = 3
FIRST_DAY = 8
HORIZON_MINUTES = 60
WARMUP_MINUTES = 60
SPIKE_SHARE = 0.15
FACTORS = (2.0, 3.0, 5.0, 10.0)
SHAPES = ("step", "ramp", "burst")
RAMP_MINUTES = 30
RECENT_MINUTES = 180
BURST_MINUTES = 30
SEED = 21
METHODS = ("llmcost", "same-time median", "24h average")


@dataclass(frozen=True)
class Tenant:
    """One ServeGen tenant: its name and spend per minute over the trace (USD)."""

    name: str
    minute_spend: np.ndarray
    rate: np.ndarray
    """Requests per second of each 10-minute window."""


def load_tenants(folder: Path = DATA, names: list[str] | None = None, seed: int = SEED) -> list[Tenant]:
    """Every `chunk-*-trace.csv` in `folder` (or those in `names`), as spend per minute."""
    paths = sorted(folder.glob("chunk-*-trace.csv"), key=lambda p: int(p.stem.split("-")[1]))
    if names is not None:
        paths = [p for p in paths if p.stem in names]
    tenants = []
    for path in paths:
        with path.open(newline="") as fh:
            rate = np.array([float(row[1]) for row in csv.reader(fh) if row], dtype=np.float64)
        rng = np.random.default_rng([seed, int(path.stem.split("-")[1])])
        calls = np.where(rate > 0, np.maximum(np.rint(rate * TRACE_SECONDS), 1), 0).astype(np.int64)
        per_minute = TRACE_SECONDS // 60
        spread = rng.multinomial(calls, np.full(per_minute, 1.0 / per_minute))  # calls in each minute
        tenants.append(Tenant(path.stem, spread.ravel() * PRICE_PER_CALL, rate))
    return tenants


@dataclass(frozen=True)
class Cases:
    """The moments looked at: one row per case (tenant, start minute, spike or not, shape, typical)."""

    tenant: np.ndarray
    start: np.ndarray
    spiked: np.ndarray
    shape: np.ndarray
    """Index into SHAPES (meaningful where `spiked`)."""
    typical: np.ndarray
    """The tenant's usual spend per minute now: the higher of its mean at this time of day (+- 1 h) over
    the previous 7 days and its mean over the last `RECENT_MINUTES` (a spike is never a mere return to
    a busy spell's level)."""
    established: np.ndarray
    """The tenant has a level here to be a multiple of: spend in this hour (+- 30 min) on at least 4 of
    the previous 7 days, or in at least half of the 10-minute windows of the last `RECENT_MINUTES`."""
    natural: np.ndarray
    """The tenant's own traffic, untouched, as a spike by the yardstick injected ones are sized with: its
    busiest 30 minutes ending within the horizon over `typical` x 30 (a natural 10x jump reads 10)."""

    def take(self, index: np.ndarray) -> Cases:
        """The cases at `index` (repeats allowed), every field alike."""
        return Cases(*(getattr(self, name)[index] for name in Cases.__dataclass_fields__))


def make_cases(tenants: list[Tenant], seed: int = SEED, spike_share: float = SPIKE_SHARE) -> Cases:
    """Every tenant at every `STEP_HOURS` slot from day `FIRST_DAY`, a random minute into the slot."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int]] = []
    for i, t in enumerate(tenants):
        total = t.minute_spend.size
        slot = STEP_HOURS * 60
        for s in range(FIRST_DAY * 1440, total - HORIZON_MINUTES - slot + 1, slot):
            rows.append((i, s + int(rng.integers(slot))))
    tenant = np.array([r[0] for r in rows], dtype=np.int64)
    start = np.array([r[1] for r in rows], dtype=np.int64)
    spiked = rng.random(tenant.size) < spike_share
    shape = rng.integers(len(SHAPES), size=tenant.size)
    typical = np.empty(tenant.size)
    established = np.empty(tenant.size, dtype=bool)
    natural = np.empty(tenant.size)
    for k, (i, s) in enumerate(rows):
        spend = tenants[i].minute_spend
        same = s - 1440 * np.arange(1, 8)
        idx = (same[:, None] + np.arange(-60, 60)[None, :]).ravel()
        typical[k] = max(spend[idx].mean(), spend[s - RECENT_MINUTES : s].mean())
        days_active = sum(spend[d - 30 : d + 30].sum() > 0 for d in same)
        recent = spend[s - RECENT_MINUTES : s].reshape(-1, 10).sum(axis=1)
        established[k] = days_active >= 4 or np.mean(recent > 0) >= 0.5
        natural[k] = _busiest_share(spend[s - BURST_MINUTES : s + HORIZON_MINUTES], typical[k])
    return Cases(tenant, start, spiked, shape, typical, established, natural)


def _busiest_share(spend: np.ndarray, typical: float) -> float:
    """The busiest `BURST_MINUTES` ending within the horizon over `typical` x `BURST_MINUTES`.

    `spend` is per minute from `BURST_MINUTES` before the moment to the end of its horizon.
    """
    ahead = np.cumsum(spend)
    return float((ahead[BURST_MINUTES:] - ahead[:-BURST_MINUTES]).max() / (typical * BURST_MINUTES or np.inf))


def spiked_size(tenants: list[Tenant], cases: Cases, factor: float) -> np.ndarray:
    """Each case's size with a `factor` spike of its shape added, by the yardstick of `Cases.natural`.

    The size an injected spike really has where it lands: the tenant's own traffic in that hour adds to
    it or, below its usual level, takes from it. A reference for the score, never part of it.
    """
    extra = spike_profile(cases.shape, HORIZON_MINUTES) * ((factor - 1) * cases.typical)[:, None]
    sizes = np.empty(cases.tenant.size)
    for k, (i, s) in enumerate(zip(cases.tenant, cases.start, strict=True)):
        seg = tenants[i].minute_spend[s - BURST_MINUTES : s + HORIZON_MINUTES].copy()
        seg[BURST_MINUTES:] += extra[k]
        sizes[k] = _busiest_share(seg, cases.typical[k])
    return sizes


def spike_profile(shape: np.ndarray, minutes: int) -> np.ndarray:
    """Extra spend per minute after the spike's start, as a fraction of (factor - 1) x typical."""
    m = np.arange(minutes)[None, :]
    step = np.ones((shape.size, minutes))
    ramp = np.minimum(1.0, (m + 1) / RAMP_MINUTES) * step
    burst = (m < BURST_MINUTES) * step
    return np.choose(shape[:, None], [step, ramp, burst])


# ---------------------------------------------------------------- the simple rules


def _window(values: np.ndarray, end: int, buckets: int, f: float) -> np.ndarray:
    """Spend of the `buckets`-long window ending `f` into bucket `end` (the last bucket counts whole)."""
    last = values.shape[1] - 1
    total = values[:, end - buckets + 1 : end + 1].sum(axis=1)
    if end != last:
        total += -(1 - f) * values[:, end] + (1 - f) * values[:, end - buckets]
    return total


def simple_rules(values: np.ndarray, f: float, cfg: DetectionConfig) -> tuple[np.ndarray, np.ndarray]:
    """Firing masks of `same-time median` and `24h average` on the detector's own input."""
    per_day = 86400 // cfg.bucket_seconds
    wb = cfg.window_minutes * 60 // cfg.bucket_seconds
    last = values.shape[1] - 1
    now = _window(values, last, wb, f)
    days = np.stack([_window(values, last - d * per_day, wb, f) for d in range(1, cfg.baseline_days + 1)], axis=1)
    day_avg = _window(values, last, per_day, f) * wb / per_day
    floor = now >= cfg.min_spend_usd
    return floor & (now >= cfg.multiplier * np.median(days, axis=1)), floor & (now >= cfg.multiplier * day_avg)


# ---------------------------------------------------------------- running


@dataclass
class Run:
    """Per case row and method: the first firing minute (0: never), alerts started, best detector reason."""

    first: np.ndarray
    """(n_rows, n_methods) first minute after the moment with an alert firing, 0 when none was."""
    starts: np.ndarray
    """(n_rows, n_methods) alerts started (rising edges)."""
    best_reason: np.ndarray
    """(n_rows,) the detector's reason closest to firing over the horizon."""
    first_window: np.ndarray
    """(n_rows,) the window (minutes) of the detector's first alert started after the moment, 0 if none."""
    first_ratio: np.ndarray
    """(n_rows,) that window's ratio to its baseline."""


def run_cases(
    tenants: list[Tenant],
    cases: Cases,
    factors: np.ndarray,
    cfg: DetectionConfig,
    observe: Callable[[np.ndarray, int, np.ndarray, float, np.ndarray, np.ndarray], None] | None = None,
) -> Run:
    """Watch each (case, factor) row for `HORIZON_MINUTES`; `factors` is 1 for a normal case.

    Passes start `WARMUP_MINUTES` before the moment, so an alert already raised by what came before (and
    held by hysteresis) is not taken for a new one; only alerts that start after the moment count.
    `observe(rows, k, values, now_fraction, is_spike, firing_buckets)`, if given, sees every pass (k:
    minutes after the moment, from 1 - WARMUP_MINUTES): the rows' buckets as the detector read them, what
    it decided, and how long each firing row's alert had been up (as the service tells the detector).
    """
    need = cfg.buckets_needed
    per = cfg.bucket_seconds // 60
    warm, horizon = WARMUP_MINUTES, HORIZON_MINUTES
    n = cases.tenant.size
    first = np.zeros((n, len(METHODS)), dtype=np.int64)
    starts = np.zeros((n, len(METHODS)), dtype=np.int64)
    best = np.zeros(n, dtype=np.int8)
    first_window = np.zeros(n, dtype=np.int64)
    first_ratio = np.zeros(n)
    origin = cases.start - warm
    offset = origin % per
    for r in range(per):  # rows whose first pass is r minutes into a bucket share every pass's now_fraction
        rows = np.nonzero(offset == r)[0]
        if rows.size == 0:
            continue
        b0 = origin[rows] // per  # bucket holding the first pass's minute
        n_hb = (r + warm + horizon + per - 1) // per  # buckets the passes touch
        # Minutes from the start of bucket b0 to the end of the last pass's bucket, spike added.
        span = n_hb * per
        mins = np.stack(
            [tenants[t].minute_spend[b * per : b * per + span] for t, b in zip(cases.tenant[rows], b0, strict=True)]
        )
        extra = spike_profile(cases.shape[rows], horizon) * ((factors[rows] - 1) * cases.typical[rows])[:, None]
        mins[:, r + warm : r + warm + horizon] += extra
        hist = np.stack(
            [
                tenants[t].minute_spend[(b - need + 1) * per : b * per].reshape(-1, per).sum(axis=1)
                for t, b in zip(cases.tenant[rows], b0, strict=True)
            ]
        )
        pass_buckets = mins.reshape(rows.size, n_hb, per).sum(axis=2)
        cols = np.concatenate([hist, pass_buckets], axis=1)  # bucket b0 is column need - 1
        prev = np.zeros((rows.size, len(METHODS)), dtype=bool)
        fired_at = np.zeros(rows.size, dtype=np.int64)  # the bucket llmcost's alert started in, as the service keeps it
        for k in range(1 - warm, horizon + 1):  # the pass at the end of minute k after the moment
            j, inside = divmod(r + warm + k - 1, per)  # the bucket holding minute now - 1, how far into it
            f = (inside + 1) / per
            values = cols[:, j : j + need].copy()
            values[:, -1] = mins[:, j * per : r + warm + k].sum(axis=1)
            since = np.where(prev[:, 0], j - fired_at, 0)
            res = detect_spikes(values, cfg, now_fraction=f, previously_firing=prev[:, 0], firing_buckets=since)
            fired_at = np.where(res.is_spike & ~prev[:, 0], j, fired_at)
            if observe is not None:
                observe(rows, k, values, f, res.is_spike, since)
            fired = np.concatenate([res.is_spike[:, None], np.stack(simple_rules(values, f, cfg), axis=1)], axis=1)
            if k >= 1:
                best[rows] = np.maximum(best[rows], res.reason)
                rising = fired & ~prev
                new = rising[:, 0] & (first_window[rows] == 0)
                first_window[rows[new]] = res.window_minutes[new]
                first_ratio[rows[new]] = res.ratio[new]
                starts[rows] += rising
                sub = first[rows]
                sub[(sub == 0) & fired] = k
                first[rows] = sub
            prev = fired
    return Run(first, starts, best, first_window, first_ratio)
