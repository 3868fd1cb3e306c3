"""Budget forecasts judged on real tenant traffic: daily budgets a little above each tenant's usual day (`make eval`).

Traffic: the 43 tenants of ServeGen's m-small language workload (alibaba/ServeGen @ f891d11,
data/language/m-small; Xiang et al., "ServeGen: Workload Characterization of Large Language Model
Serving in Production", arXiv:2505.09999; Apache-2.0), bundled in `bench/data/servegen-m-small/`, read
as spend exactly as the spike evaluation reads them (`real_traffic.load_tenants`: $0.01 a request,
spread over each 10-minute window's minutes).

How a case is made: each tenant, each day from day `FIRST_DAY` on (UTC days of the trace) is a `daily`
budget with limit = k x the tenant's median daily spend over the previous `MEDIAN_DAYS` days (fewer
before day `MEDIAN_DAYS`), for each k in `K_VALUES`; tenant-days whose median is 0 have no limit and
are left out. The day is watched every `TICK_MINUTES` minutes, `TICK_OFFSET` minutes into a 5-minute
bucket (the newest bucket holds only the minutes so far, as the store's rollups do), by the code the
scheduler's budget job runs: `project_many` (alerting/projection.py) over the tenant's 5-minute
buckets from the trace's start, `has_forecast_evidence` for the daily period and `should_alert_forecast`
(at least 5 % of the day gone). The projection does not depend on the limit, so one pass per day serves
every k.

Scores per k (a forecast holds at a tick where the projection is over the limit and the evidence rules
pass; it is sent as `LLMBudgetForecastOverrun` while the spend is under the warning level, 80 %):

* over: tenant-days whose spend ended at or over the limit; of those, `caught` had a forecast at a tick
  before the spend reached the limit, and the lead is the minutes from the first such tick to the
  minute the limit was reached (median over caught days); for comparison, the lead of the warning
  level (the first minute spend reached 80 % of the limit), which fires whatever the forecast;
* false: tenant-days whose spend ended under the limit but had `LLMBudgetForecastOverrun` sent (a
  forecast at a tick with spend under warning), over all tenant-days that ended under; and apart, those
  of the days that ended under the warning level too (`quiet`): on a day that ended between warning and
  the limit `LLMBudgetWarning` was sent anyway, in the same thread as the forecast (the forecast is a
  level of the instance's one alert), so only a quiet day's forecast is a message nothing else sent;
* starts: forecasts started (rising edges below warning) per tenant-day that ended under: a forecast
  that comes and goes several times a day is a new message each time.

The same is scored for a naive straight line, spend so far / elapsed fraction of the day, with the same
evidence rules. Run `python bench/eval_forecast.py` (about 15 s); `--diagnose` lists the false forecasts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# One BLAS thread: the projection's small matrix products ran 5x slower with a thread per core on a
# shared machine (60 s against 12 s for the whole run). Read when numpy loads, so set before importing it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from real_traffic import ATTRIBUTION, DATA, SEED, Tenant, load_tenants  # noqa: E402

from alerting.projection import (  # noqa: E402
    ProjectionConfig,
    ProjectionResult,
    has_forecast_evidence,
    project_many,
    should_alert_forecast,
)

K_VALUES = (1.2, 1.5, 2.0)
FIRST_DAY = 3
MEDIAN_DAYS = 7
TICK_MINUTES = 5
TICK_OFFSET = 3
WARNING = 0.8
BUCKET_MINUTES = 5
T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())  # the trace's minute 0: a Monday, 00:00 UTC
METHODS = ("llmcost", "straight line")


@dataclass(frozen=True)
class DayWatch:
    """One tenant-day as the budget job saw it: per tick, the spend so far and each method's projection."""

    tenant: int
    day: int
    minutes: np.ndarray
    """(n_ticks,) minutes into the day of each tick."""
    spent: np.ndarray
    """(n_ticks,) spend from the day's start to the tick."""
    projected: np.ndarray
    """(n_methods, n_ticks) projected end-of-day spend; NaN where the evidence rules forbid a forecast."""
    cumulative: np.ndarray
    """(1440,) spend from the day's start to the end of each minute."""
    history: np.ndarray
    """(n_days,) the tenant's spend per day up to and including this one."""


@dataclass(frozen=True)
class Score:
    """One method's figures at one k."""

    days: int
    over: int
    caught: int
    median_lead: float
    """Minutes from the first forecast to the limit being reached, median over caught days (NaN: none)."""
    warning_lead: float
    """Minutes from spend reaching the warning level to the limit, median over the days that ended over."""
    under: int
    false: int
    starts: int
    quiet: int
    """Tenant-days that ended under the warning level (a subset of `under`)."""
    false_quiet: int
    """False forecasts on those days: the only message about the day."""

    @property
    def false_rate(self) -> float:
        """False forecasts per tenant-day that ended under the limit."""
        return self.false / self.under if self.under else float("nan")

    @property
    def false_quiet_rate(self) -> float:
        """False forecasts per tenant-day that ended under the warning level."""
        return self.false_quiet / self.quiet if self.quiet else float("nan")


def day_buckets(tenant: Tenant) -> np.ndarray:
    """The tenant's spend per 5-minute bucket over the whole trace."""
    return tenant.minute_spend.reshape(-1, BUCKET_MINUTES).sum(axis=1)


def watch_days(tenants: list[Tenant], days: range, cfg: ProjectionConfig | None = None) -> list[DayWatch]:
    """Every tenant on every day of `days`, ticked as the budget job would (`TICK_MINUTES` apart)."""
    cfg = cfg or ProjectionConfig(bucket_seconds=BUCKET_MINUTES * 60)
    minutes = np.arange(TICK_OFFSET, 1440, TICK_MINUTES)
    spend = np.stack([t.minute_spend for t in tenants])
    buckets = np.stack([day_buckets(t) for t in tenants])
    per_day = spend.reshape(len(tenants), -1, 1440).sum(axis=2)
    watched = []
    for d in days:
        start, end = (datetime.fromtimestamp(T0 + (d + i) * 86400, UTC) for i in (0, 1))
        spent = np.zeros((len(tenants), minutes.size))
        projected = np.full((len(METHODS), len(tenants), minutes.size), np.nan)
        for j, m in enumerate(minutes):
            now_min = d * 1440 + int(m)
            full = now_min // BUCKET_MINUTES
            values = np.concatenate(
                [buckets[:, :full], spend[:, full * BUCKET_MINUTES : now_min].sum(axis=1, keepdims=True)], axis=1
            )
            starts = T0 + np.arange(full + 1, dtype=np.int64) * BUCKET_MINUTES * 60
            now = datetime.fromtimestamp(T0 + now_min * 60, UTC)
            batch = project_many(starts, values, start, end, now, config=cfg)
            spent[:, j] = batch.spent
            elapsed = m / 1440
            history = batch.history_seconds if batch.history_seconds is not None else np.zeros(len(tenants))
            for i in range(len(tenants)):
                if not has_forecast_evidence("daily", float(history[i])):
                    continue
                projected[0, i, j] = batch.projected[i]
                projected[1, i, j] = batch.spent[i] / elapsed
            gone = elapsed >= cfg.min_elapsed_fraction
            projected[:, :, j] = np.where(gone, projected[:, :, j], np.nan)
        cumulative = np.cumsum(spend[:, d * 1440 : (d + 1) * 1440], axis=1)
        for i in range(len(tenants)):
            watched.append(DayWatch(i, d, minutes, spent[i], projected[:, i], cumulative[i], per_day[i, : d + 1]))
    return watched


def limit_of(watch: DayWatch, k: float) -> float:
    """k x the median daily spend of the `MEDIAN_DAYS` days before the watched one (0: no limit)."""
    before = watch.history[max(0, watch.day - MEDIAN_DAYS) : watch.day]
    return k * float(np.median(before)) if before.size else 0.0


def forecasting(watch: DayWatch, method: int, limit: float, cfg: ProjectionConfig | None = None) -> np.ndarray:
    """(n_ticks,) whether a forecast holds at each tick, by `should_alert_forecast` on the method's projection."""
    cfg = cfg or ProjectionConfig()
    out = np.zeros(watch.minutes.size, dtype=bool)
    for j, (m, p) in enumerate(zip(watch.minutes, watch.projected[method], strict=True)):
        if not np.isnan(p):
            result = ProjectionResult(float(p), float(p), float(p), float(watch.spent[j]), "")
            out[j] = should_alert_forecast(result, limit, m / 1440, cfg)
    return out


def score(watched: list[DayWatch], method: int, k: float) -> Score:
    """`method`'s figures over `watched` with limit = k x each tenant's median day."""
    days = over = caught = under = false = starts = quiet = false_quiet = 0
    leads: list[float] = []
    warning_leads: list[float] = []
    for w in watched:
        limit = limit_of(w, k)
        if limit <= 0:
            continue
        days += 1
        holds = forecasting(w, method, limit)
        sent = holds & (w.spent < WARNING * limit)  # at or over warning the alert is LLMBudgetWarning anyway
        if w.cumulative[-1] >= limit:
            over += 1
            crossed = int(np.argmax(w.cumulative >= limit)) + 1  # minutes into the day when the limit was reached
            warned = int(np.argmax(w.cumulative >= WARNING * limit)) + 1
            warning_leads.append(crossed - warned)
            before = holds & (w.minutes < crossed)
            if before.any():
                caught += 1
                leads.append(crossed - float(w.minutes[np.argmax(before)]))
        else:
            under += 1
            false += int(sent.any())
            starts += int((sent & ~np.concatenate(([False], sent[:-1]))).sum())
            if w.cumulative[-1] < WARNING * limit:
                quiet += 1
                false_quiet += int(sent.any())
    return Score(
        days,
        over,
        caught,
        float(np.median(leads)) if leads else float("nan"),
        float(np.median(warning_leads)) if warning_leads else float("nan"),
        under,
        false,
        starts,
        quiet,
        false_quiet,
    )


def evaluate(tenants: list[Tenant], first_day: int = FIRST_DAY) -> dict[float, dict[str, Score]]:
    """Scores per k and method over every tenant-day from `first_day` to the trace's last day."""
    n_days = tenants[0].minute_spend.size // 1440
    watched = watch_days(tenants, range(first_day, n_days))
    return {k: {name: score(watched, m, k) for m, name in enumerate(METHODS)} for k in K_VALUES}


def diagnose(tenants: list[Tenant], first_day: int = FIRST_DAY) -> None:
    """Each false llmcost forecast: tenant, day, when it was first sent, projected vs limit, the day's end."""
    n_days = tenants[0].minute_spend.size // 1440
    for w in watch_days(tenants, range(first_day, n_days)):
        for k in K_VALUES:
            limit = limit_of(w, k)
            if limit <= 0 or w.cumulative[-1] >= limit:
                continue
            sent = forecasting(w, 0, limit) & (w.spent < WARNING * limit)
            if sent.any():
                j = int(np.argmax(sent))
                print(
                    f"  k {k:g} {tenants[w.tenant].name} day {w.day} {w.minutes[j] / 60:4.1f} h: projected "
                    f"{w.projected[0, j]:.2f} > limit {limit:.2f} (spent {w.spent[j]:.2f}); day ended at "
                    f"{w.cumulative[-1]:.2f}; {int(sent.sum())} ticks"
                )


def print_scores(scores: dict[float, dict[str, Score]]) -> None:
    print(
        f"  {'k':>4}  {'method':<14} {'tenant-days':>11} {'over':>5} {'caught':>7} {'median lead':>12} "
        f"{'warning lead':>12} {'false':>9} {'per day':>7} {'starts':>6} {'false, quiet day':>16} {'per day':>7}"
    )
    for k, by_method in scores.items():
        for name, s in by_method.items():
            print(
                f"  {k:>4g}  {name:<14} {s.days:>11} {s.over:>5} {s.caught:>7} {s.median_lead:>8.0f} min "
                f"{s.warning_lead:>8.0f} min {s.false:>4}/{s.under:<4} {s.false_rate:>7.3f} {s.starts:>6} "
                f"{s.false_quiet:>11}/{s.quiet:<4} {s.false_quiet_rate:>7.3f}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--diagnose", action="store_true", help="list every false llmcost forecast")
    parser.add_argument("--traces", type=Path, default=DATA, help="a folder of ServeGen chunk-*-trace.csv files")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    tenants = load_tenants(args.traces, seed=args.seed)
    if not tenants:
        parser.error(f"--traces {args.traces}: no chunk-*-trace.csv files")
    print("llmcost budget forecasts on real tenant traffic: daily budgets at k x each tenant's median day")
    print(ATTRIBUTION if args.traces == DATA else f"Traffic: ServeGen traces from {args.traces} (alibaba/ServeGen).")
    print_scores(evaluate(tenants))
    if args.diagnose:
        diagnose(tenants)
    print(f"  ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
