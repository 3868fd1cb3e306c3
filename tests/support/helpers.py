"""Small helpers shared by the tests: building services and apps, parsing exposition text."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from exporter.config import Config
from llmcost.config import parse_config
from tests.support.wall_clock import stamp_in_period


def rank_epochs_later(registry: Any, epochs: int = 3) -> None:
    """Move the usage collector's ranking `epochs` epochs ahead of now, so spend ingested now ranks.

    The kept values of a folded label are ranked by the spend ingested before the start of the epoch
    before last (exporter.label_ranks); a test that ingests, then scrapes, looks from a later epoch.
    """
    from exporter.collector import UsageCollector

    usage = next(c for c in registry._collector_to_names if isinstance(c, UsageCollector))
    later = time.time() + epochs * usage.ranks.refresh
    usage.ranks.clock = lambda: later


def make_config(db_url: str, **raw: Any) -> Config:
    """A validated config (the application's sections too) with the given raw sections and this database."""
    config = parse_config(raw)
    config.database_url = db_url
    return config


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample in an exposition, keyed by (name, sorted labels)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(text: str, name: str, **match: str) -> float:
    """Sum of a metric's samples whose labels include `match`."""
    result = 0.0
    for (sample_name, labels), value in samples(text).items():
        if sample_name == name and all(dict(labels).get(k) == v for k, v in match.items()):
            result += value
    return result


def usage_events(prefix: str, n: int, *, start: int = 0) -> list[dict[str, object]]:
    """`n` canonical events with request ids `prefix-start` … (Anthropic, three projects), 10 s old.

    Never before midnight UTC, though: from 00:00:00 to 00:00:10 "10 s old" is yesterday, outside a daily
    budget's period (`tests/support/wall_clock.py`).
    """
    stamp = stamp_in_period(10, "daily")
    return [
        {
            "request_id": f"{prefix}-{i}",
            "timestamp": stamp,
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "input_tokens": 100 + i,
            "output_tokens": 10,
            "project": f"p{i % 3}",
        }
        for i in range(start, start + n)
    ]


def apply_config_budgets(budgets: Any, origin_ref: str = "test config") -> None:
    """Apply the config's budgets as the `serve` leader does (an `ingest`-role attach never applies them)."""
    budgets.apply_config(budgets.config.items, origin_ref=origin_ref)
