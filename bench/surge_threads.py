"""A platform-wide surge on real traffic: how many Slack threads, mail threads and PagerDuty incidents it opens.

Run: `.venv/bin/python bench/surge_threads.py` (about a minute). Traffic: the first `TENANTS` tenants of
ServeGen m-small (`bench/real_traffic.py`, its spend per call), each one project on one of `MODELS`, eight
days of history, then every tenant at `FACTOR`x for `SURGE_MINUTES` from `START`. Detection runs once a
minute, as the scheduler does, through the real gateway (`tests/support/gateway_harness.py`: a SQLite
store, the recording Slack and PagerDuty servers and an SMTP server on loopback) until the surge has ended,
once with the project series alone and once with the default watched label sets (total, project,
provider/model). Printed per run: the spike alerts fired, the passes that started spikes, and what people
received: Slack top-level posts, mail threads (mails replying to none) and PagerDuty incidents.
The figure in docs/alerting.md ("Spikes of many series at once") comes from here.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from real_traffic import load_tenants  # noqa: E402

from alerting.gateway.sink import GatewaySink  # noqa: E402
from alerting.spikes import SpikeService, SpikeSettings  # noqa: E402
from exporter.events import UsageEvent  # noqa: E402
from tests.support.clock import FakeClock  # noqa: E402
from tests.support.gateway_harness import Harness, receivers  # noqa: E402

TENANTS = 20
FACTOR = 5.0
SURGE_MINUTES = 90
HISTORY_DAYS = 8
START_MINUTE = (HISTORY_DAYS + 1) * 1440 + 14 * 60
"""14:00 on the trace's tenth day: eight days of history before it, a busy hour."""
AFTER_MINUTES = 120
"""Passes run this long past the surge's end, so every spike has resolved."""
D0 = 1_795_046_400
"""A UTC midnight standing for the trace's first minute."""
BUCKET_MINUTES = 5
MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("deepseek", "deepseek-chat"),
]
ROUTES = {"info": [], "warning": ["slack", "email", "pagerduty"], "critical": ["slack", "email", "pagerduty"]}
SERIES = {
    "project series alone": (("project",),),
    "default label sets": ((), ("project",), ("provider", "model")),
}


def events() -> list[UsageEvent]:
    """One call per tenant and 5-minute bucket with the bucket's spend, `FACTOR`x during the surge."""
    out = []
    first = START_MINUTE - HISTORY_DAYS * 1440
    last = START_MINUTE + SURGE_MINUTES + AFTER_MINUTES
    for n, tenant in enumerate(load_tenants()[:TENANTS]):
        provider, model = MODELS[n % len(MODELS)]
        for minute in range(first, last, BUCKET_MINUTES):
            usd = float(np.sum(tenant.minute_spend[minute : minute + BUCKET_MINUTES]))
            if START_MINUTE <= minute < START_MINUTE + SURGE_MINUTES:
                usd *= FACTOR
            if usd > 0:
                out.append(
                    UsageEvent(
                        request_id=f"{tenant.name}-{minute}",
                        timestamp=D0 + minute * 60 + 10,
                        provider=provider,
                        model=model,
                        project=tenant.name,
                        cost_nanousd=round(usd * 1e9),
                        cost_source="supplied",
                    )
                )
    return out


def replay(series: tuple[tuple[str, ...], ...], calls: list[UsageEvent], folder: Path) -> dict[str, int]:
    """One surge through detection and the gateway: what was fired and what people received."""
    clock = FakeClock()
    with receivers() as rx:
        rx.pagerduty.clock = clock
        with Harness(f"sqlite:///{folder / 'llmcost.db'}", rx, clock=clock, routes=ROUTES) as h:
            h.services.store.write_events(calls)
            spikes = SpikeService(h.services.store, SpikeSettings(series=series), GatewaySink(h.gateway), clock=clock)
            fired: set[str] = set()
            passes = 0
            for minute in range(START_MINUTE, START_MINUTE + SURGE_MINUTES + AFTER_MINUTES):
                clock.set(D0 + minute * 60 + 30)
                spikes.evaluate()
                h.gateway.deliver_pending()
                now = {str(a["id"]) for a in h.alerts()}
                passes += bool(now - fired)
                fired |= now
            return {
                "spike alerts": len(fired),
                "passes starting spikes": passes,
                "Slack posts": len(rx.slack.posted),
                "mail threads": sum(m.message["In-Reply-To"] is None for m in rx.smtp.messages),
                "PagerDuty incidents": len(rx.pagerduty.pages),
            }


def main() -> None:
    calls = events()
    print(f"{TENANTS} ServeGen m-small tenants at {FACTOR:g}x for {SURGE_MINUTES} minutes ({len(calls)} calls)")
    for name, series in SERIES.items():
        with tempfile.TemporaryDirectory() as folder:
            counts = replay(series, calls, Path(folder))
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
