"""What the spike detection tests share: a store of usual spend with a spike in it, and a stand-in gateway.

Five days of one call per project per 5-minute bucket up to `NOW`; `spike()` adds 10x the usual spend of
project a over the last 30 minutes. Used by `tests/alerting/test_spike_alerts.py` and
`tests/alerting/test_spike_incremental.py`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from alerting.spikes import SpikeSettings
from exporter.events import UsageEvent
from exporter.store import Store

DAY, BUCKET = 86400, 300
D0 = 1_795_046_400  # a UTC midnight
NOW = D0 + 4 * DAY + 13 * 3600 + 150  # 13:02:30 on the fifth day, half-way into a bucket
# project → (provider, model, usual spend per 5 minutes in USD)
PROJECTS = {"a": ("openai", "gpt-4o", 0.05), "b": ("anthropic", "claude-sonnet-4-5", 0.50), "c": ("openai", "o3", 0.02)}
SPIKE_START = NOW - 30 * 60  # the last 30 minutes before NOW
SPIKE_USD = 0.5  # extra per 5 minutes for project a: 10x its usual spend


class RecordingSink:
    """Records what the service hands to the gateway; can be told to refuse the next calls."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, dict[str, str], dict[str, str], str]] = []
        self.resolved: list[tuple[str, dict[str, str]]] = []
        self.refuse = 0

    def fire(self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str], severity: str) -> None:
        if self.refuse:
            self.refuse -= 1
            raise ConnectionError("gateway down")
        self.fired.append((alertname, dict(labels), dict(annotations), severity))

    def resolve(self, alertname: str, labels: Mapping[str, str]) -> None:
        if self.refuse:
            self.refuse -= 1
            raise ConnectionError("gateway down")
        self.resolved.append((alertname, dict(labels)))

    def fired_labels(self) -> list[dict[str, str]]:
        return [labels for _, labels, _, _ in self.fired]


def usual_spend(store: Store, start: float, end: float, seed: int = 7) -> None:
    """One call per project per 5-minute bucket, ±20% around its usual spend."""
    rng = random.Random(seed)
    events = []
    for bucket in range(int(start), int(end), BUCKET):
        for project, (provider, model, usd) in PROJECTS.items():
            events.append(
                call(f"{project}-{bucket}", bucket + 10, project, provider, model, usd * rng.uniform(0.8, 1.2))
            )
    store.write_events(events)


def spike(store: Store, start: float = SPIKE_START, end: float = NOW, usd: float = SPIKE_USD) -> None:
    provider, model, _ = PROJECTS["a"]
    store.write_events(
        [call(f"spike-{b}", b + 20, "a", provider, model, usd) for b in range(int(start), int(end), BUCKET)]
    )


def call(rid: str, ts: float, project: str, provider: str, model: str, usd: float) -> UsageEvent:
    return UsageEvent(
        request_id=rid,
        timestamp=ts,
        provider=provider,
        model=model,
        project=project,
        cost_nanousd=round(usd * 1e9),
        cost_source="supplied",
    )


SETTINGS = SpikeSettings(series=((), ("project",), ("provider", "model")))
