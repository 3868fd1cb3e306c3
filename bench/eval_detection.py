"""Evaluation harness for spike detection and end-of-period projection (`make eval`).

Spend series are built from two real LLM request traces:

* AzureLLMInferenceTrace_code.csv: 8,819 calls of a code-completion service over ~1 hour
  (TIMESTAMP, ContextTokens, GeneratedTokens). Azure/AzurePublicDataset, Patel et al., "Splitwise:
  Efficient Generative LLM Inference Using Phase Splitting", ISCA 2024. Licence CC-BY-4.0.
* mooncake_conversation_trace.jsonl: 12,031 conversation requests over ~1 hour (timestamp ms,
  input_length, output_length). kvcache-ai/Mooncake, FAST'25 release. Licence Apache-2.0.

They are read from `../shared/data/traces/` next to the repository when present, else from the copy
bundled in `exporter/demo_data/` (Azure only).

How a series is made (seeded): the trace is cut into per-minute call counts and token statistics;
weeks are filled by resampling random blocks of 5-30 trace minutes, so the minute-level burstiness
(silent minutes, 6x bursts) is the real one. Each minute's call count is drawn Poisson(trace calls x
series volume x modulation), and its cost is the sum of that many calls' costs (a gamma with the
trace minute's mean and variance of per-call cost). Modulation: a diurnal shape in the series' own
timezone (business hours, flat, or a daily batch job), quieter weekends, day-to-day jitter and drift.
Each series is priced at a seeded pick from a few models' list prices (illustrative USD per 1M
tokens, not the project's price table). Spikes are extra calls at (size - 1) x the series' expected
rate, with their own independently resampled burst pattern.

Detection is evaluated as the scheduler runs it: `detect_spikes` at every 1-minute tick over all
series at once, on 5-minute buckets whose last bucket holds the minutes so far (`now_fraction`), with
the previous tick's firing mask for hysteresis. Detector and projection settings were tuned on seeds
1 and 2; the figures printed use a held-out seed (default 20240) unless `--seed` says otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from synthetic_series import (  # noqa: E402
    ATTRIBUTION,
    EPOCH0,
    MODELS,
    T0,
    SeriesSpec,
    Trace,
    draw_spend,
    load_traces,
    make_specs,
    modulation,
    trace_dir,
)

from alerting.periods import Period, period_bounds  # noqa: E402
from alerting.projection import ProjectionConfig, project_many  # noqa: E402
from alerting.spikes.detection import DetectionConfig, detect_spikes  # noqa: E402

TUNING_SEEDS = (1, 2)
REPORT_SEED = 20240


# ---------------------------------------------------------------- detection evaluation


@dataclass
class Spike:
    series: int
    start: int  # minute
    length: int
    size: float
    expected_window: float  # expected spend of the 30-min window at the spike's peak coverage


def build_detection_data(
    seed: int, n_series: int, days: int, eval_days: int, traces: list[Trace]
) -> tuple[np.ndarray, list[Spike], list[SeriesSpec]]:
    rng = np.random.default_rng(seed)
    specs = make_specs(n_series, traces, rng)
    total = days * 1440
    minutes = np.arange(total)
    spend = np.zeros((n_series, total))
    spikes: list[Spike] = []
    eval_from = (days - eval_days) * 1440
    for i, spec in enumerate(specs):
        expected = spec.volume * modulation(spec, minutes, rng)
        spend[i] = draw_spend(spec, traces[spec.trace], expected, rng)
        if rng.random() < 0.6:
            n_spikes = int(rng.integers(1, 4))
            starts = np.sort(rng.choice(np.arange(eval_from + 60, total - 7 * 60, 12 * 60), n_spikes, replace=False))
            for s in starts:
                s = int(s + rng.integers(0, 6 * 60))
                length = int(rng.integers(5, 121))
                size = float(rng.uniform(2.0, 10.0))
                extra = draw_spend(spec, traces[spec.trace], expected[s : s + length] * (size - 1), rng)
                spend[i, s : s + length] += extra
                cover = min(length, 30)
                per_min = spec.mean_cost_per_minute / spec.volume * expected[s : s + cover].mean()
                before = expected[max(0, s - 30 + cover) : s].sum() * spec.mean_cost_per_minute / spec.volume
                spikes.append(Spike(i, s, length, size, size * per_min * cover + before))
    return spend, spikes, specs


def run_detection(
    spend: np.ndarray, eval_from: int, cfg: DetectionConfig, stride: int = 1
) -> tuple[np.ndarray, np.ndarray, float]:
    """Run detect_spikes at each tick from `eval_from`; firing mask (n_series, n_ticks) and tick minutes."""
    n, total = spend.shape
    per_bucket = cfg.bucket_seconds // 60
    buckets = spend.reshape(n, -1, per_bucket).sum(axis=2)
    cum = np.concatenate((np.zeros((n, 1)), np.cumsum(spend, axis=1)), axis=1)
    need = cfg.buckets_needed
    ticks = np.arange(eval_from, total + 1, stride)
    firing = np.zeros((n, ticks.size), dtype=bool)
    prev = np.zeros(n, dtype=bool)
    fired_at = np.zeros(n, dtype=np.int64)  # the bucket each alert started in, as the service keeps it
    started = time.perf_counter()
    for j, t in enumerate(ticks):
        last = (t - 1) // per_bucket
        frac = (t - last * per_bucket) / per_bucket
        values = buckets[:, last - need + 1 : last + 1].copy()
        values[:, -1] = cum[:, t] - cum[:, last * per_bucket]
        since = np.where(prev, last - fired_at, 0)
        res = detect_spikes(values, cfg, now_fraction=frac, previously_firing=prev, firing_buckets=since)
        fired_at = np.where(res.is_spike & ~prev, last, fired_at)
        prev = res.is_spike
        firing[:, j] = prev
    elapsed = time.perf_counter() - started
    return firing, ticks, elapsed


@dataclass
class DetectionScore:
    precision: float
    recall: float
    recall_all: float
    median_delay: float
    p90_delay: float
    alerts: int
    false_alerts: int
    eligible: int
    below_floor: int
    recall_by_size: dict[str, float]
    alerts_per_spike: float
    resolve_lag: float


def score_detection(
    firing: np.ndarray, ticks: np.ndarray, spikes: list[Spike], cfg: DetectionConfig, grace: int = 5
) -> DetectionScore:
    n = firing.shape[0]
    rising = firing & ~np.concatenate((np.zeros((n, 1), dtype=bool), firing[:, :-1]), axis=1)
    by_series: dict[int, list[Spike]] = {}
    for sp in spikes:
        by_series.setdefault(sp.series, []).append(sp)
    alerts = false_alerts = 0
    # An alert belongs to a spike if it starts while the spike, or its trace in the longest window, lasts.
    attribution = max(cfg.window_minutes, grace)
    for s, j in zip(*np.nonzero(rising), strict=True):
        alerts += 1
        t = ticks[j]
        if not any(sp.start < t <= sp.start + sp.length + attribution for sp in by_series.get(int(s), [])):
            false_alerts += 1
    alerts_per_spike, resolve_lag = [], []
    delays, hits_all, total_all = [], 0, 0
    eligible = below_floor = hits = 0
    size_bins = {"3-5x": [0, 0], "5-10x": [0, 0]}
    for sp in spikes:
        if sp.size < 3 or sp.length < 10:
            continue
        j0 = np.searchsorted(ticks, sp.start + 1)
        j1 = np.searchsorted(ticks, sp.start + sp.length + grace, side="right")
        fired = np.nonzero(firing[sp.series, j0:j1])[0]
        detected = fired.size > 0
        total_all += 1
        hits_all += detected
        if sp.expected_window < cfg.min_spend_usd:
            below_floor += 1
            continue
        eligible += 1
        hits += detected
        key = "3-5x" if sp.size < 5 else "5-10x"
        size_bins[key][0] += detected
        size_bins[key][1] += 1
        if detected:
            delays.append(ticks[j0 + fired[0]] - sp.start)
            j2 = np.searchsorted(ticks, sp.start + sp.length + attribution, side="right")
            alerts_per_spike.append(int(rising[sp.series, j0:j2].sum()))
            after = np.nonzero(~firing[sp.series, j0 + fired[0] :])[0]
            if after.size:
                resolve_lag.append(ticks[j0 + fired[0] + after[0]] - (sp.start + sp.length))
    return DetectionScore(
        precision=(alerts - false_alerts) / alerts if alerts else float("nan"),
        recall=hits / eligible if eligible else float("nan"),
        recall_all=hits_all / total_all if total_all else float("nan"),
        median_delay=float(np.median(delays)) if delays else float("nan"),
        p90_delay=float(np.percentile(delays, 90)) if delays else float("nan"),
        alerts=alerts,
        false_alerts=false_alerts,
        eligible=eligible,
        below_floor=below_floor,
        recall_by_size={k: (a / b if b else float("nan")) for k, (a, b) in size_bins.items()},
        alerts_per_spike=float(np.mean(alerts_per_spike)) if alerts_per_spike else float("nan"),
        resolve_lag=float(np.median(resolve_lag)) if resolve_lag else float("nan"),
    )


# ---------------------------------------------------------------- projection evaluation


def projection_mape(
    seed: int, n_series: int, days: int, traces: list[Trace], cfg: ProjectionConfig
) -> dict[str, dict[float, tuple[float, float, int]]]:
    """MAPE of the projection (and of a straight line from period start) at 25/50/75 % of each period."""
    rng = np.random.default_rng(seed + 7)
    specs = make_specs(n_series, traces, rng)
    total = days * 1440
    minutes = np.arange(total)
    buckets = np.zeros((n_series, total // 5))
    for i, spec in enumerate(specs):
        minute_spend = draw_spend(spec, traces[spec.trace], spec.volume * modulation(spec, minutes, rng), rng)
        buckets[i] = minute_spend.reshape(-1, 5).sum(axis=1)
    starts = T0 + np.arange(buckets.shape[1], dtype=np.int64) * 300
    out: dict[str, dict[float, tuple[float, float, int]]] = {}
    for period, first_eval in ((Period.DAILY, 29), (Period.MONTHLY, 31)):
        errs: dict[float, list[tuple[float, float]]] = {0.25: [], 0.5: [], 0.75: []}
        for tz in sorted({s.tz for s in specs}):
            rows = np.array([i for i, s in enumerate(specs) if s.tz == tz])
            probe = EPOCH0 + timedelta(days=first_eval, hours=12)
            while True:
                p_start, p_end = period_bounds(period, probe, tz)
                assert p_end is not None
                if p_end.timestamp() > starts[-1] + 300:
                    break
                a, b = np.searchsorted(starts, [p_start.timestamp(), p_end.timestamp()])
                actual = buckets[rows, a:b].sum(axis=1)
                for frac in errs:
                    now = p_start + (p_end - p_start) * frac
                    upto = np.searchsorted(starts, now.timestamp())
                    res = project_many(starts[:upto], buckets[rows, :upto], p_start, p_end, now, tz=tz, config=cfg)
                    line = res.spent / frac
                    ok = actual > 0
                    for pr, ln, ac in zip(res.projected[ok], line[ok], actual[ok], strict=True):
                        errs[frac].append((abs(pr - ac) / ac, abs(ln - ac) / ac))
                probe = p_end + timedelta(hours=12)
        out[period.value] = {
            f: (float(np.mean([e[0] for e in v])), float(np.mean([e[1] for e in v])), len(v)) for f, v in errs.items()
        }
    return out


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=REPORT_SEED, help=f"held-out seed (tuning used {TUNING_SEEDS})")
    parser.add_argument("--series", type=int, default=300)
    parser.add_argument("--eval-days", type=int, default=7)
    parser.add_argument("--projection-series", type=int, default=70)
    parser.add_argument("--spec-window-only", action="store_true", help="only the 30-minute window")
    parser.add_argument("--skip-projection", action="store_true")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    folder, shared = trace_dir()
    traces = load_traces()
    print("llmcost detection & projection evaluation")
    print(ATTRIBUTION)
    print(f"trace folder: {folder} ({'shared' if shared else 'bundled copy, Azure only'})")
    for tr in traces:
        print(f"  {tr.name}: {tr.minutes} minutes, {int(tr.calls.sum())} calls")
    print(
        "Series: seeded block-resampling of the traces' real minute-level call counts and token sizes "
        "(5-30 min blocks), Poisson call counts, diurnal/weekly modulation in each series' timezone "
        "(business / flat / daily batch job), day jitter and drift; tokens priced with a seeded pick of "
        f"{len(MODELS)} models' illustrative list prices."
    )
    cfg = DetectionConfig()
    if args.spec_window_only:
        cfg = replace(cfg, short_windows_minutes=())
    days = cfg.baseline_days + 1 + args.eval_days
    spend, spikes, _specs = build_detection_data(args.seed, args.series, days, args.eval_days, traces)
    eval_from = (days - args.eval_days) * 1440
    held_out = "held out" if args.seed not in TUNING_SEEDS else "a TUNING seed, not held out"
    print(
        f"\nDetection: seed {args.seed} ({held_out}; tuned on seeds {TUNING_SEEDS}), {args.series} series x "
        f"{days} days of 1-minute spend -> 5-minute buckets; {len(spikes)} injected spikes (2-10x, 5-120 min) "
        f"in {len({s.series for s in spikes})} series"
    )
    print(
        f"detect_spikes run at every 1-minute tick for {args.eval_days} days ({args.eval_days * 1440} passes), "
        f"last bucket partial; windows {cfg.windows_minutes} min, multiplier {cfg.multiplier}, "
        f"robust z {cfg.robust_z}, min spend ${cfg.min_spend_usd}"
    )
    firing, ticks, elapsed = run_detection(spend, eval_from, cfg)
    sc = score_detection(firing, ticks, spikes, cfg)
    print(f"  {elapsed:.1f} s for {ticks.size} passes ({1000 * elapsed / ticks.size:.2f} ms per pass)")
    print(
        f"  precision {sc.precision:.3f}  ({sc.alerts} alerts started; {sc.false_alerts} did not start during an "
        f"injected spike or the {cfg.window_minutes} min after it)"
    )
    print(
        f"  recall    {sc.recall:.3f}  (spikes >= 3x lasting >= 10 min whose 30-min window can reach "
        f"min_spend: {sc.eligible}; 3-5x {sc.recall_by_size['3-5x']:.3f}, 5-10x {sc.recall_by_size['5-10x']:.3f})"
    )
    print(
        f"            {sc.recall_all:.3f} counting also the {sc.below_floor} spikes too small to reach "
        f"min_spend_usd (never alert by design)"
    )
    print("            (detected: firing at a tick between the spike's start and 5 min after its end)")
    print(f"  detection delay: median {sc.median_delay:.0f} min, p90 {sc.p90_delay:.0f} min (from spike start)")
    print(
        f"  hysteresis: {sc.alerts_per_spike:.2f} alerts per detected spike; resolves a median "
        f"{sc.resolve_lag:.0f} min after the spike ends"
    )
    ok = sc.recall >= 0.95 and sc.precision >= 0.9 and sc.median_delay <= 5
    print(f"  targets (recall >= 0.95, precision >= 0.9, median delay <= 5 min): {'met' if ok else 'NOT met'}")

    if not args.skip_projection:
        pcfg = ProjectionConfig()
        pdays = 31 + 29 + 31 + 30  # January..April 2024
        print(
            f"\nProjection: {args.projection_series} series x {pdays} days (2024-01-01..04-30, each budget in its "
            "series' timezone, DST included); MAPE of the projected period total vs the actual total, "
            "and of a straight line from the period start"
        )
        res = projection_mape(args.seed, args.projection_series, pdays, traces, pcfg)
        for period, by_frac in res.items():
            for frac, (mape, line, count) in by_frac.items():
                print(
                    f"  {period:8s} at {int(frac * 100)}% of the period: MAPE {100 * mape:5.1f}%  "
                    f"(straight line {100 * line:5.1f}%, n={count})"
                )
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
