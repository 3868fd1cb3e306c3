"""Synthetic spend series built from two real LLM request traces (for `bench/eval_detection.py` and
`bench/eval_backfill.py`; the former's docstring says how a series is made).

Traces: AzureLLMInferenceTrace_code.csv (Azure/AzurePublicDataset; Patel et al., "Splitwise", ISCA 2024;
CC-BY-4.0) and mooncake_conversation_trace.jsonl (kvcache-ai/Mooncake, FAST'25 release; Apache-2.0), read from
`../shared/data/traces/` next to the repository when present, else from `exporter/demo_data/` (Azure only).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from alerting.projection import utc_offsets  # noqa: E402

AZURE = "AzureLLMInferenceTrace_code.csv"
MOONCAKE = "mooncake_conversation_trace.jsonl"
ATTRIBUTION = (
    "Traces: AzureLLMInferenceTrace_code.csv (Azure/AzurePublicDataset; Patel et al., 'Splitwise', "
    "ISCA 2024; CC-BY-4.0) and mooncake_conversation_trace.jsonl (kvcache-ai/Mooncake; Apache-2.0)."
)

# Illustrative list prices, USD per 1M tokens (input, output): only to turn tokens into dollars.
MODELS = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "claude-sonnet": (3.00, 15.00),
    "claude-haiku": (0.80, 4.00),
    "deepseek-chat": (0.27, 1.10),
    "llama-70b": (0.59, 0.79),
}
TIMEZONES = [
    "America/Los_Angeles",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
]
EPOCH0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
T0 = int(EPOCH0.timestamp())


# ---------------------------------------------------------------- traces


@dataclass(frozen=True)
class Trace:
    """Per-minute statistics of one real trace (calls, token sums and second moments)."""

    name: str
    calls: np.ndarray
    tin: np.ndarray
    tout: np.ndarray
    tin2: np.ndarray
    tout2: np.ndarray
    tinout: np.ndarray

    @property
    def minutes(self) -> int:
        return int(self.calls.size)

    def call_cost(self, price_in: float, price_out: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of one call's cost in each trace minute."""
        a, b = price_in / 1e6, price_out / 1e6
        n = np.maximum(self.calls, 1)
        mean = (a * self.tin + b * self.tout) / n
        second = (a * a * self.tin2 + b * b * self.tout2 + 2 * a * b * self.tinout) / n
        return mean, np.maximum(second - mean * mean, 0.0)


def _trace_from(name: str, seconds: np.ndarray, tin: np.ndarray, tout: np.ndarray) -> Trace:
    seconds = seconds - seconds.min()
    full = int(seconds.max() // 60)  # drop the last, partial minute
    keep = seconds < full * 60
    minute = (seconds[keep] // 60).astype(np.int64)
    tin, tout = tin[keep].astype(np.float64), tout[keep].astype(np.float64)

    def per_minute(w: np.ndarray) -> np.ndarray:
        return np.bincount(minute, weights=w, minlength=full)

    return Trace(
        name,
        per_minute(np.ones_like(tin)),
        per_minute(tin),
        per_minute(tout),
        per_minute(tin * tin),
        per_minute(tout * tout),
        per_minute(tin * tout),
    )


def trace_dir() -> tuple[Path, bool]:
    """Where the traces are, and whether it is the shared folder (with both traces)."""
    shared = REPO.parent / "shared" / "data" / "traces"
    if (shared / AZURE).exists():
        return shared, True
    return REPO / "exporter" / "demo_data", False


def load_traces() -> list[Trace]:
    folder, _ = trace_dir()
    seconds, tin, tout = [], [], []
    with (folder / AZURE).open(newline="") as fh:
        for row in csv.DictReader(fh):
            stamp = datetime.fromisoformat(row["TIMESTAMP"][:26])
            seconds.append(stamp.timestamp())
            tin.append(int(row["ContextTokens"]))
            tout.append(int(row["GeneratedTokens"]))
    traces = [_trace_from("azure-code", np.array(seconds), np.array(tin), np.array(tout))]
    if (folder / MOONCAKE).exists():
        ms, tin, tout = [], [], []
        with (folder / MOONCAKE).open() as fh:
            for line in fh:
                rec = json.loads(line)
                ms.append(rec["timestamp"])
                tin.append(rec["input_length"])
                tout.append(rec["output_length"])
        traces.append(_trace_from("mooncake-conversation", np.array(ms) / 1000.0, np.array(tin), np.array(tout)))
    return traces


# ---------------------------------------------------------------- series generator


@dataclass
class SeriesSpec:
    trace: int
    model: str
    tz: str
    kind: str  # business | flat | batch
    volume: float  # multiplier on the trace's call rate
    mean_cost_per_minute: float  # expected spend per minute at modulation 1
    params: dict[str, float]


def _local_minutes(minutes: np.ndarray, tz: str) -> np.ndarray:
    """Local wall-clock minutes since 2024-01-01 00:00 local for each UTC minute offset from T0."""
    hours = np.arange(minutes.min() // 60, minutes.max() // 60 + 1)
    offsets = utc_offsets(T0 + hours * 3600, tz) // 60
    return minutes + offsets[minutes // 60 - hours[0]]


def modulation(spec: SeriesSpec, minutes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Expected-rate multiplier per minute: diurnal shape, weekends, day jitter and drift."""
    local = _local_minutes(minutes, spec.tz)
    day = np.floor_divide(local, 1440)
    first_day, n_days = int(day.min()), int(day.max() - day.min() + 1)
    dow = (day % 7).astype(np.int64)  # local day 0 is Monday
    phase = rng.normal(0.0, 20.0, n_days)[day - first_day]  # daily rhythm drifts by ~20 min
    hour = ((local % 1440) + phase) / 60.0
    p = spec.params
    if spec.kind == "business":
        bump = np.where((hour > 8) & (hour < 19), 0.5 * (1 - np.cos(2 * np.pi * (hour - 8) / 11)), 0.0)
        weekday = np.where(dow >= 5, p["weekend"], 1.0)
        shape = p["floor"] + (1 - p["floor"]) * bump * weekday
    elif spec.kind == "flat":
        shape = 1.0 + p["amp"] * np.sin(2 * np.pi * (hour - p["phase"]) / 24)
    else:
        jitter = rng.normal(0.0, 5.0, n_days)[day - first_day]
        start = p["hour"] * 60 + jitter
        in_batch = ((local % 1440) - start) % 1440 < p["length"]
        shape = np.where(in_batch, 1.0 + p["amp"], 1.0) * np.where(dow >= 5, p["weekend"], 1.0)
    level = np.exp(rng.normal(0.0, 0.12, n_days) + np.cumsum(rng.normal(0.0, 0.03, n_days)))
    return shape * level[day - first_day]


def make_specs(n: int, traces: list[Trace], rng: np.random.Generator) -> list[SeriesSpec]:
    specs = []
    models = list(MODELS)
    for _ in range(n):
        t = int(rng.integers(len(traces)))
        model = models[int(rng.integers(len(models)))]
        mean, _ = traces[t].call_cost(*MODELS[model])
        trace_per_minute = float((mean * traces[t].calls).mean())
        target_30min = math.exp(rng.uniform(math.log(0.5), math.log(60.0)))  # USD per 30 min at peak
        volume = target_30min / 30.0 / trace_per_minute
        kind = str(rng.choice(["business", "flat", "batch"], p=[0.5, 0.3, 0.2]))
        params: dict[str, float]
        if kind == "business":
            params = {"floor": rng.uniform(0.1, 0.4), "weekend": rng.uniform(0.1, 0.6)}
        elif kind == "flat":
            params = {"amp": rng.uniform(0.0, 0.25), "phase": rng.uniform(0, 24)}
        else:
            params = {
                "hour": float(rng.integers(0, 24)),
                "length": rng.uniform(20, 60),
                "amp": rng.uniform(2.0, 5.0),
                "weekend": rng.uniform(0.5, 1.0),
            }
        tz = TIMEZONES[int(rng.integers(len(TIMEZONES)))]
        specs.append(SeriesSpec(t, model, tz, kind, volume, volume * trace_per_minute, params))
    return specs


def draw_spend(spec: SeriesSpec, trace: Trace, rate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Spend per minute for expected-rate multipliers `rate` (volume included), with trace burstiness."""
    n = rate.size
    # Block bootstrap of trace minutes keeps the real minute-to-minute burst pattern.
    idx = np.empty(n, dtype=np.int64)
    pos = 0
    while pos < n:
        length = int(rng.integers(5, 31))
        start = int(rng.integers(trace.minutes))
        block = (start + np.arange(length)) % trace.minutes
        idx[pos : pos + length] = block[: n - pos]
        pos += length
    mean, var = trace.call_cost(*MODELS[spec.model])
    k = rng.poisson(trace.calls[idx] * rate)
    mu, s2 = mean[idx], var[idx]
    out = k * mu
    noisy = (k > 0) & (s2 > 0)
    shape = k[noisy] * mu[noisy] ** 2 / s2[noisy]
    out[noisy] = rng.gamma(shape, s2[noisy] / mu[noisy])
    return out
