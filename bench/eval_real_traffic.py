"""Spike detection judged on real tenant traffic, at many moments, against two simple rules (`make eval`).

Traffic: the 43 tenants of ServeGen's m-small language workload (alibaba/ServeGen @ f891d11,
data/language/m-small; Xiang et al., "ServeGen: Workload Characterization of Large Language Model
Serving in Production", arXiv:2505.09999; Apache-2.0), bundled in `bench/data/servegen-m-small/`. Each
file is one tenant's request rate per 10-minute window over 14 days. The detector was tuned on these
alone; `--traces` runs the same evaluation on another ServeGen group's folder (m-mid, m-large, from a
checkout of alibaba/ServeGen), an independent check (docs/detection.md).

How a case is made (all draws seeded):

* spend: a window's requests (rate x 600 s, at least one if the rate is not 0) cost a fixed
  `PRICE_PER_CALL` each and are spread over the window's ten minutes at random, one minute at a time;
  the detector reads them as the store's 5-minute rollups would hold them, the newest bucket holding
  only the minutes so far;
* moments: every tenant is looked at every `STEP_HOURS` hours from day 8 on (so the detector always has
  its 7-day baseline and more), each moment at a random minute of its slot, so spikes start mid-bucket;
  every moment is a series of its own;
* spikes: a seeded `SPIKE_SHARE` of the moments get one, the rest are left as they were (natural
  bursts included) and count as normal. A spike adds (factor - 1) x the tenant's usual spend per minute
  to the real traffic (the higher of its mean at this time of day +- 1 h over the previous 7 days and
  its mean over the last 3 hours, so a 5x spike is 5x what the tenant was doing), with one shape
  per case: `step` (from the moment on), `ramp` (rising linearly to full over 30 minutes), or `burst`
  (one 30-minute window). The same moments, spike cases and shapes are scored at each factor.

Each case is watched for `HORIZON_MINUTES` after its moment, with a pass every minute, exactly as the
scheduler's detection job runs `detect_spikes` (default `DetectionConfig`: windows 5/15/30 min, 7-day
baseline, multiplier 3, min spend $1; hysteresis from the previous pass). The simple rules see the same
buckets at the same ticks:

* `same-time median`: the 30-minute window >= 3 x the median of the same 30 minutes on each of the last
  7 days;
* `24h average`: the 30-minute window >= 3 x the average 30 minutes of the last 24 hours;

both also held to the detector's `min_spend_usd`, so they are not blamed for alerts on cents.

Passes start `WARMUP_MINUTES` before the moment, as the scheduler would have been running, so
hysteresis state is real. Scores per factor: a spike case is caught when a method has an alert firing
at some pass during its horizon (raised by the spike, or already up and held); a normal case is a false
alarm when an alert starts during its horizon. Precision = caught spike cases / (those + false alarms);
recall over the spike cases whose full level reaches `min_spend_usd` in 30 minutes (smaller ones never
alert by design) on a tenant with an established level then (`Cases.established`; spikes on a tenant
silent at that hour have no baseline to be a multiple of: llmcost never alerts on them, by design, and
they are counted apart); false alarms per tenant-day = alerts started in normal cases / their observed
tenant-days; delay = minutes from the spike's start to the first firing pass (median over caught spikes).

Beside the score, never in it: each moment's own traffic is measured with the yardstick spikes are
sized by (`Cases.natural`), and the run prints how many false alarms fell on normal moments whose own
traffic already reaches the factor, with the precision those moments set apart would give. And, as a
reference (`SizeReference`), the precision of firing exactly where a moment's size by that yardstick,
read with the spike added, reaches the highest threshold that still gives recall 0.95: what judging
moments by spike size alone would score.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from real_traffic import (  # noqa: E402
    ATTRIBUTION,
    DATA,
    FACTORS,
    FIRST_DAY,
    HORIZON_MINUTES,
    METHODS,
    PRICE_PER_CALL,
    SEED,
    SHAPES,
    STEP_HOURS,
    Cases,
    Run,
    Tenant,
    load_tenants,
    make_cases,
    run_cases,
    spiked_size,
)

from alerting.spikes.detection import DetectionConfig, Reason  # noqa: E402

__all__ = ["PRICE_PER_CALL", "Tenant", "evaluate", "load_tenants", "make_cases"]


@dataclass(frozen=True)
class Score:
    """One method's figures at one factor."""

    precision: float
    recall: float
    f1: float
    false_per_tenant_day: float
    median_delay: float
    detected: int
    eligible: int
    false_alarms: int
    silent_caught: int
    """Caught spikes among those on a tenant with no established level (not in recall)."""
    silent: int
    false_on_natural: int
    """False alarms in normal moments whose own traffic already reaches this factor (`Cases.natural`)."""
    precision_apart: float
    """Precision with those moments set apart (neither false alarm nor normal): a side figure, see main."""
    recall_by_shape: dict[str, float]
    """Recall over the eligible spikes of each shape (`SHAPES`)."""


def score(
    run: Run,
    m: int,
    spike_rows: np.ndarray,
    eligible: np.ndarray,
    silent: np.ndarray,
    normal_rows: np.ndarray,
    natural: np.ndarray,
    shapes: np.ndarray,
) -> Score:
    """Method `m`'s precision, recall, F1, false alarms per tenant-day and median delay.

    `natural` (per normal row): the moment's own traffic already reaches the factor scored.
    """
    fired = run.first[:, m] > 0  # a spike is caught by an alert firing while it lasts (new or held)
    tp = int(fired[spike_rows].sum())
    wronged = run.starts[normal_rows, m] > 0  # a normal moment is wronged by a new alert
    fp = int(wronged.sum())
    fp_apart = int((wronged & ~natural).sum())
    hits = fired[spike_rows] & eligible
    n_el = int(eligible.sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = float(hits.sum()) / n_el if n_el else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    tenant_days = normal_rows.size * HORIZON_MINUTES / 1440
    delays = run.first[spike_rows[hits], m]
    return Score(
        precision,
        recall,
        f1,
        float(run.starts[normal_rows, m].sum()) / tenant_days if tenant_days else float("nan"),
        float(np.median(delays)) if delays.size else float("nan"),
        int(hits.sum()),
        n_el,
        fp,
        int((fired[spike_rows] & silent).sum()),
        int(silent.sum()),
        fp - fp_apart,
        tp / (tp + fp_apart) if tp + fp_apart else float("nan"),
        {
            name: float(hits[shapes == k].sum()) / int((eligible & (shapes == k)).sum())
            if (eligible & (shapes == k)).any()
            else float("nan")
            for k, name in enumerate(SHAPES)
        },
    )


@dataclass(frozen=True)
class SizeReference:
    """A reference, not a method: fire exactly where a moment's size reaches `threshold` (`Cases.natural`).

    The size is the evaluation's own yardstick, the one spikes are sized by, read off the traffic with
    the spike added (`spiked_size`); `threshold` is the highest that still gives recall 0.95. Its
    precision is what judging moments by spike size alone, perfectly measured, would score.
    """

    threshold: float
    precision: float
    recall: float
    false_alarms: int


def size_reference(spiked: np.ndarray, eligible: np.ndarray, normal: np.ndarray, recall: float = 0.95) -> SizeReference:
    """The `SizeReference` for spike-case sizes `spiked` (recall over `eligible`) and normal-moment sizes."""
    ranked = np.sort(spiked[eligible])[::-1]
    need = max(1, math.ceil(recall * ranked.size))
    threshold = float(ranked[need - 1]) if ranked.size else math.inf
    tp = int((spiked >= threshold).sum())
    fp = int((normal >= threshold).sum())
    got = float((spiked[eligible] >= threshold).mean()) if ranked.size else math.nan
    return SizeReference(threshold, tp / (tp + fp) if tp + fp else math.nan, got, fp)


@dataclass
class Evaluation:
    """Scores per factor and method, and the run behind them (for diagnosis)."""

    cases: Cases
    scores: dict[float, dict[str, Score]]
    run: Run
    rows_of: dict[float, np.ndarray]
    eligible_of: dict[float, np.ndarray]
    normal_rows: np.ndarray
    reference: dict[float, SizeReference]


def evaluate(
    tenants: list[Tenant],
    cfg: DetectionConfig | None = None,
    factors: tuple[float, ...] = FACTORS,
    seed: int = SEED,
) -> Evaluation:
    """Score the detector and the simple rules on `tenants` at each spike factor, in one run."""
    cfg = cfg or DetectionConfig()
    cases = make_cases(tenants, seed)
    spike_idx = np.nonzero(cases.spiked)[0]
    normal_idx = np.nonzero(~cases.spiked)[0]
    # One row per normal case, and one per (spike case, factor): all watched in the same passes.
    parts = [normal_idx] + [spike_idx] * len(factors)
    index = np.concatenate(parts)
    row_factor = np.concatenate([np.ones(normal_idx.size)] + [np.full(spike_idx.size, fa) for fa in factors])
    expanded = cases.take(index)
    spike_cases = cases.take(spike_idx)
    run = run_cases(tenants, expanded, row_factor, cfg)
    normal_rows = np.arange(normal_idx.size)
    scores: dict[float, dict[str, Score]] = {}
    rows_of: dict[float, np.ndarray] = {}
    eligible_of: dict[float, np.ndarray] = {}
    reference: dict[float, SizeReference] = {}
    for i, fa in enumerate(factors):
        rows = normal_idx.size + i * spike_idx.size + np.arange(spike_idx.size)
        big_enough = fa * cases.typical[spike_idx] * cfg.window_minutes >= cfg.min_spend_usd
        eligible = big_enough & cases.established[spike_idx]
        silent = big_enough & ~cases.established[spike_idx]
        rows_of[fa], eligible_of[fa] = rows, eligible
        natural = expanded.natural[normal_rows] >= fa
        scores[fa] = {
            name: score(run, m, rows, eligible, silent, normal_rows, natural, cases.shape[spike_idx])
            for m, name in enumerate(METHODS)
        }
        reference[fa] = size_reference(spiked_size(tenants, spike_cases, fa), eligible, cases.natural[normal_idx])
    return Evaluation(expanded, scores, run, rows_of, eligible_of, normal_rows, reference)


# ---------------------------------------------------------------- report


def print_scores(ev: Evaluation) -> None:
    print(
        f"  {'factor':>6}  {'method':<17} {'recall':>6} {'precision':>9} {'F1':>6} "
        f"{'false/tenant-day':>16} {'median delay':>12}  recall by shape ({' / '.join(SHAPES)})"
    )
    for fa, by_method in ev.scores.items():
        for name, s in by_method.items():
            print(
                f"  {fa:>5g}x  {name:<17} {s.recall:6.3f} {s.precision:9.3f} {s.f1:6.3f} "
                f"{s.false_per_tenant_day:16.3f} {s.median_delay:9.0f} min  "
                + " / ".join(f"{s.recall_by_shape[k]:.3f}" for k in SHAPES)
            )
    silent = {fa: ", ".join(f"{name} {s.silent_caught}" for name, s in by.items()) for fa, by in ev.scores.items()}
    first = next(iter(next(iter(ev.scores.values())).values()))
    print(
        f"  not in recall: {first.silent} spikes per factor on a tenant with no established level at that moment "
        "(silent at that hour on most of the last 7 days and in the last 3 hours); caught:"
    )
    for fa, text in silent.items():
        print(f"    {fa:g}x: {text}")
    n_normal = ev.normal_rows.size
    print(
        "  side figure, not the score: false alarms in normal moments whose own traffic already reaches the factor "
        "(busiest 30 min >= factor x the usual level spikes are sized by) / all false alarms, and precision with "
        "those moments set apart:"
    )
    for fa, by_method in ev.scores.items():
        natural = int((ev.cases.natural[ev.normal_rows] >= fa).sum())
        text = ", ".join(
            f"{name} {s.false_on_natural}/{s.false_alarms} ({s.precision_apart:.3f})" for name, s in by_method.items()
        )
        print(f"    {fa:g}x ({natural} of {n_normal} normal moments): {text}")
    print(
        "  reference, not a method: firing exactly where a moment's busiest 30 min reach t x the usual level "
        "(the yardstick above, read with the spike added; t the highest giving recall 0.95), precision would be:"
    )
    for fa, ref in ev.reference.items():
        print(
            f"    {fa:g}x: {ref.precision:.3f} (t {ref.threshold:.2f}, recall {ref.recall:.3f}, "
            f"{ref.false_alarms} false alarms)"
        )


def diagnose(ev: Evaluation, tenants: list[Tenant]) -> None:
    """What the detector's missed spikes and false alarms have in common."""
    names = [t.name for t in tenants]
    for fa, rows in ev.rows_of.items():
        missed = rows[(ev.run.first[rows, 0] == 0) & ev.eligible_of[fa]]
        if not missed.size:
            continue
        print(f"  {fa:g}x: {missed.size} missed")
        by = Counter((SHAPES[ev.cases.shape[r]], Reason(ev.run.best_reason[r]).name) for r in missed)
        print("    shape/reason:", ", ".join(f"{k[0]}/{k[1]} {v}" for k, v in by.most_common()))
        by_t = Counter(names[ev.cases.tenant[r]] for r in missed)
        print("    tenants:", ", ".join(f"{k} {v}" for k, v in by_t.most_common(12)))
    false = ev.normal_rows[ev.run.starts[ev.normal_rows, 0] > 0]
    by_t = Counter(names[ev.cases.tenant[r]] for r in false)
    print(f"  false alarms: {false.size};", ", ".join(f"{k} {v}" for k, v in by_t.most_common(12)))
    by_w = Counter(int(ev.run.first_window[r]) for r in false)
    print("    window that fired first:", ", ".join(f"{k} min {v}" for k, v in sorted(by_w.items())))
    for r in false[np.argsort(-ev.cases.natural[false])]:
        c = ev.cases
        print(
            f"    {names[c.tenant[r]]} day {c.start[r] // 1440} {c.start[r] % 1440 / 60:04.1f} h: "
            f"{ev.run.first_window[r]}-min window at {ev.run.first_ratio[r]:.1f}x its baseline; "
            f"own traffic {c.natural[r]:.1f}x the usual level"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--tenants", type=int, default=0, help="only the first N tenants (0: all)")
    parser.add_argument("--diagnose", action="store_true", help="break down missed spikes and false alarms")
    parser.add_argument(
        "--traces",
        type=Path,
        default=DATA,
        help="a folder of ServeGen chunk-*-trace.csv files (default: the bundled m-small, the tuning set; "
        "another group, e.g. a ServeGen checkout's data/language/m-mid, is an independent check)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    tenants = load_tenants(args.traces, seed=args.seed)
    if not tenants:
        parser.error(f"--traces {args.traces}: no chunk-*-trace.csv files")
    if args.tenants:
        tenants = tenants[: args.tenants]
    cfg = DetectionConfig()
    print("llmcost spike detection on real tenant traffic")
    print(
        ATTRIBUTION
        if args.traces == DATA
        else f"Traffic: ServeGen traces from {args.traces} (alibaba/ServeGen; Apache-2.0)."
    )
    ev = evaluate(tenants, cfg, seed=args.seed)
    n_spiked = len(next(iter(ev.rows_of.values())))
    print(
        f"{len(tenants)} tenants x 14 days; {ev.normal_rows.size + n_spiked} moments (every {STEP_HOURS} h from day "
        f"{FIRST_DAY}, seed {args.seed}): {n_spiked} with a spike (step / ramp / 30-min burst), "
        f"{ev.normal_rows.size} normal; each watched {HORIZON_MINUTES} min, a pass a minute; ${PRICE_PER_CALL} "
        f"a request; detector: windows {cfg.windows_minutes} min, baseline {cfg.baseline_days} d, multiplier "
        f"{cfg.multiplier}, min spend ${cfg.min_spend_usd}"
    )
    print_scores(ev)
    if args.diagnose:
        diagnose(ev, tenants)
    five = ev.scores.get(5.0)
    if five is not None:
        ok5 = five["llmcost"].recall >= 0.95 and five["llmcost"].precision >= 0.95
        beats = all(
            s["llmcost"].f1 > max(s["same-time median"].f1, s["24h average"].f1)
            for fa, s in ev.scores.items()
            if fa >= 3
        )
        print(
            f"  targets (5x: recall >= 0.95 and precision >= 0.95; F1 above both rules from 3x up): "
            f"{'met' if ok5 and beats else 'NOT met'}"
        )
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
