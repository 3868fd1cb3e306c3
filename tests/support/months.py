"""A store with months of traffic, for the retention, repricing and report tests."""

from __future__ import annotations

from typing import Any

from llmcost.services import open_services
from tests.support.clock import FakeClock
from tests.support.helpers import make_config

DAY = 86_400
# Wednesday 2026-11-11 12:00 UTC: a fixed "now", so every period boundary is known.
NOW = 1_794_398_400.0

BUDGETS: list[dict[str, Any]] = [
    {"name": "daily", "scope": "global", "period": "daily", "limit": 50.0},
    {"name": "per-project", "scope": "project", "key": "*", "period": "monthly", "limit": 500.0},
    {"name": "yearly", "scope": "global", "period": "yearly", "limit": 5000.0},
    {"name": "forever", "scope": "global", "period": "total", "limit": 100000.0},
    {
        "name": "haiku-tokens",
        "scope": "model",
        "key": "claude-haiku-4-5",
        "period": "weekly",
        "unit": "tokens",
        "limit": 1e9,
    },
    {"name": "calls", "scope": "project", "key": "search", "period": "monthly", "unit": "requests", "limit": 10000},
]


def history(days: int = 120, *, step_hours: int = 3, now: float = NOW) -> list[dict[str, Any]]:
    """Events every `step_hours` over `days` days before `now`: three projects, priced, supplied and unpriced."""
    events: list[dict[str, Any]] = []
    steps = days * 24 // step_hours
    for i in range(steps):
        ts = now - days * DAY + i * step_hours * 3600 + 17 * (i % 11)  # off the hour, in every 5-minute slot
        growth = 1 + i / steps  # spend grows over time
        events += [
            {
                "request_id": f"search-{i}",
                "timestamp": ts,
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "input_tokens": int(3000 * growth),
                "output_tokens": 300,
                "project": "search",
                "user": f"u{i % 4}",
                "service": "api",
                "session": f"s{i // 8}",
            },
            {
                "request_id": f"chat-{i}",
                "timestamp": ts + 60,
                "provider": "anthropic",
                "model": "claude-haiku-4-5",
                "input_tokens": 2800,
                "cache_read_tokens": 100,
                "output_tokens": 280,
                "project": "chat",
                "user": f"u{i % 3}",
                "service": "web",
            },
            {
                "request_id": f"batch-{i}",
                "timestamp": ts + 120,
                "provider": "self-hosted",
                "model": "llama-internal",
                "input_tokens": 500,
                "output_tokens": 50,
                "project": "batch",
                "service": "jobs",
            },
            {
                "request_id": f"paid-{i}",
                "timestamp": ts + 180,
                "provider": "openai",
                "model": "gpt-4o",
                "input_tokens": 800,
                "output_tokens": 100,
                "cost_usd": 0.0123,
                "project": "chat",
                "service": "web",
            },
        ]
    return events


def load_history(db_url: str, events: list[dict[str, Any]], *, now: float = NOW) -> None:
    """Ingest `events` with the budgets declared and no retention (history is older than any)."""
    services = open_services(make_config(db_url, budgets=BUDGETS), clock=FakeClock(now))
    try:
        outcome = services.pipeline.ingest(enumerate(events))
        assert not outcome.rejected, outcome.rejected[:3]
    finally:
        services.close()
