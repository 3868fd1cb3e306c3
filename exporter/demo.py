"""`llmcost demo`: a fresh SQLite store fed by a real, bundled LLM trace.

The trace is the Azure LLM inference trace for a code-completion service (8,819 calls over about an
hour: TIMESTAMP, ContextTokens, GeneratedTokens), from Azure/AzurePublicDataset (Patel et al.,
"Splitwise", ISCA 2024), licensed CC-BY-4.0 (see `demo_data/LICENSE-azure-CC-BY-4.0`).

The trace names no model, project or user, so the demo assigns them with a seeded generator (the same
mix on every run): each call gets a provider/model from `MODEL_MIX`, a project, a service and one of
40 users; a share of the context tokens is taken as prompt-cache reads where the provider caches.
One self-hosted model has no public price, to show `llm_unpriced_requests_total` at work.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

TRACE_FILE = "AzureLLMInferenceTrace_code.csv"
ATTRIBUTION = (
    'Azure LLM inference trace (code), Azure/AzurePublicDataset, CC-BY-4.0 (Patel et al., "Splitwise", ISCA 2024)'
)

# (provider, model, weight, share of context served from the prompt cache)
MODEL_MIX: tuple[tuple[str, str, float, float], ...] = (
    ("openai", "gpt-4o-mini", 0.34, 0.5),
    ("openai", "gpt-4o", 0.16, 0.4),
    ("anthropic", "claude-sonnet-4-5", 0.18, 0.6),
    ("anthropic", "claude-haiku-4-5", 0.12, 0.6),
    ("deepseek", "deepseek-chat", 0.12, 0.3),
    ("self-hosted", "llama-3.1-8b-internal", 0.08, 0.0),
)
# Budgets the demo declares, sized so the replayed hour shows each state: the hourly request budget of
# code-assist runs over, the daily total (about $18 an hour of trace) passes warning and then its limit,
# the per-project monthly budget stays ok.
DEMO_CONFIG: dict[str, Any] = {
    "budgets": [
        {"name": "daily-total", "scope": "global", "period": "daily", "limit": 20.0},
        {"name": "project-monthly", "scope": "project", "key": "*", "period": "monthly", "limit": 500.0},
        {
            "name": "code-assist-hourly-requests",
            "scope": "project",
            "key": "code-assist",
            "period": "hourly",
            "unit": "requests",
            "limit": 1000,
            "mode": "hard",
        },
    ]
}
PROJECTS = (("code-assist", 0.45), ("chat-support", 0.25), ("search", 0.2), ("batch-eval", 0.1))
SERVICES = ("api", "worker")


@dataclass(frozen=True)
class TraceCall:
    """One call of the trace: seconds since the trace started, and its token counts."""

    offset: float
    context_tokens: int
    generated_tokens: int


def load_trace() -> list[TraceCall]:
    """The bundled trace, as offsets from its first call."""
    text = resources.files("exporter").joinpath("demo_data", TRACE_FILE).read_text()
    rows = list(csv.DictReader(text.splitlines()))
    stamps = [datetime.fromisoformat(r["TIMESTAMP"][:26]).timestamp() for r in rows]
    start = min(stamps)
    return [
        TraceCall(ts - start, int(r["ContextTokens"]), int(r["GeneratedTokens"]))
        for ts, r in zip(stamps, rows, strict=True)
    ]


def trace_span(trace: list[TraceCall]) -> float:
    """Seconds from the first to the last call."""
    return trace[-1].offset if trace else 0.0


def history_window(now: float, span: float) -> tuple[float, float]:
    """Where the demo's replayed history goes: `(start, scale)` for `make_events`, ending at `now`.

    Normally the trace's hour ends now. In the first hour of a UTC day that hour would fall mostly on
    yesterday, so the daily budget (UTC days) would start near zero and the demo showed no alert at all;
    the history is then compressed into today, from midnight to now.
    """
    midnight = now - now % 86_400
    if span <= 0 or now - span >= midnight:
        return now - span, 1.0
    return midnight, (now - midnight) / span


def make_events(
    trace: list[TraceCall], *, start: float, loop: int, seed: int = 7, scale: float = 1.0
) -> Iterator[dict[str, Any]]:
    """Canonical events for one replay of the trace beginning at `start` (epoch seconds).

    `scale` stretches (or compresses, below 1) the trace's offsets: see `history_window`.
    """
    rng = random.Random(seed * 1_000_003 + loop)
    models = [m[:2] for m in MODEL_MIX]
    model_weights = [m[2] for m in MODEL_MIX]
    cache_share = {m[:2]: m[3] for m in MODEL_MIX}
    projects = [p for p, _ in PROJECTS]
    project_weights = [w for _, w in PROJECTS]
    for index, call in enumerate(trace):
        provider, model = rng.choices(models, model_weights)[0]
        cached = 0
        share = cache_share[provider, model]
        if share and rng.random() < 0.7:
            cached = int(call.context_tokens * share * rng.uniform(0.5, 1.0))
        reasoning = int(call.generated_tokens * 0.3) if model.startswith("claude-sonnet") else 0
        yield {
            "request_id": f"demo-azure-{loop}-{index}",
            "timestamp": start + call.offset * scale,
            "provider": provider,
            "model": model,
            "input_tokens": call.context_tokens - cached,
            "cache_read_tokens": cached,
            "output_tokens": call.generated_tokens,
            "reasoning_tokens": reasoning,
            "latency_ms": round(rng.uniform(150, 2500), 1),
            "status": "error" if rng.random() < 0.01 else "success",
            "project": rng.choices(projects, project_weights)[0],
            "service": rng.choice(SERVICES),
            "user": f"user-{rng.randrange(40):02d}",
        }
