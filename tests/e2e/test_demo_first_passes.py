"""The first minutes of `llmcost demo` and `make stack`: no alert a person would call false.

Both start a fresh store with the bundled trace's last hour, the demo's budgets (`DEMO_CONFIG`) and the
default detection settings, then replay the trace in real time. Here the same start runs with an injected
clock: one budget evaluation and one detection pass a minute, for the first fifteen minutes, at a few
times of day and week. An hour of history is no baseline and no evidence for a forecast, so neither a
spike nor a forecast alert may fire (they did, six of each, before).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx
import pytest

from alerting.budgets.definition import parse_budgets_section
from alerting.budgets.service import BudgetService
from alerting.model import fingerprint
from alerting.spikes import SpikeService, detection_settings
from exporter.demo import DEMO_CONFIG, history_window, load_trace, make_events, trace_span
from llmcost.services import open_services
from tests.support.clock import FakeClock
from tests.support.helpers import make_config, total
from tests.support.pg import free_port
from tests.support.procs import LLMCOST
from tests.support.waiting import wait_until


class Sink:
    """The gateway's view for both services: what is firing, one alert per fingerprint."""

    def __init__(self) -> None:
        self.active: dict[str, tuple[str, dict[str, str], str]] = {}
        self.fired: list[tuple[str, dict[str, str], str]] = []

    def fire(self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str], severity: str) -> None:
        fp = fingerprint(alertname, labels)
        if fp not in self.active:
            self.fired.append((alertname, dict(labels), annotations.get("summary", "")))
        self.active[fp] = (alertname, dict(labels), severity)

    def resolve(self, alertname: str, labels: Mapping[str, str]) -> None:
        self.active.pop(fingerprint(alertname, labels), None)

    def active_labels(self, alertnames: object) -> list[tuple[str, dict[str, str]]]:
        names = set(alertnames)  # type: ignore[call-overload]
        return [(name, labels) for name, labels, _ in self.active.values() if name in names]


@pytest.mark.heavy  # replays the demo's weeks of history three times: `make test` only
@pytest.mark.parametrize(
    "start",
    [
        datetime(2026, 11, 11, 12, 0, tzinfo=UTC),  # Wednesday noon: half the day and month gone
        datetime(2026, 11, 16, 0, 40, tzinfo=UTC),  # Monday just after midnight: a new day and week
        datetime(2026, 11, 30, 23, 30, tzinfo=UTC),  # the last half hour of a month
    ],
    ids=["wednesday-noon", "monday-0040", "month-end"],
)
def test_the_demo_raises_no_spike_and_no_forecast_in_its_first_minutes(sqlite_url: str, start: datetime) -> None:
    now = start.timestamp()
    clock = FakeClock(now)
    config = make_config(sqlite_url, **DEMO_CONFIG)
    services = open_services(config, clock=clock)
    sink = Sink()
    problems: list[str] = []
    budgets = BudgetService(
        services.store, parse_budgets_section(config.raw.get("budgets"), problems), sink=sink, clock=clock
    )
    assert not problems
    budgets.apply_config(budgets.config.items, origin_ref="llmcost demo")  # as the demo's leader does
    spikes = SpikeService(services.store, detection_settings(config), sink, clock=clock)
    trace = load_trace()
    first, scale = history_window(now, trace_span(trace))  # as the demo does (compressed just after midnight)
    services.pipeline.ingest(enumerate(make_events(trace, start=first, loop=0, scale=scale)))
    live = list(make_events(trace, start=now, loop=1))
    sent = 0
    try:
        for minute in range(16):
            clock.now = now + 60 * minute
            due = [e for e in live[sent:] if e["timestamp"] <= clock.now]
            if due:
                services.pipeline.ingest(enumerate(due))
                sent += len(due)
            spikes.evaluate(clock.now)
            budgets.evaluate(clock.now)
        false = [f for f in sink.fired if f[0] in ("LLMCostSpike", "LLMBudgetForecastOverrun")]
        assert false == [], false
        statuses = [budgets.status(name) for name in ("daily-total", "project-monthly")]
        assert {s["projection"] for s in statuses} == {"insufficient history"}
    finally:
        services.close()


@pytest.mark.real_process
def test_the_real_demo_process_starts_without_a_spike_or_forecast_alert() -> None:
    """`llmcost demo` as a newcomer runs it: its first two detection and budget passes raise neither.

    The first passes run as the scheduler starts, the second at the next minute's tick (with the trace's
    hour stored): that is where six spike and six forecast alerts used to appear.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*LLMCOST, "demo", "--listen", f"127.0.0.1:{port}", "--duration", "240"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def runs(task: str) -> float:
        return total(httpx.get(f"{base}/metrics", timeout=5).text, "llm_scheduler_runs_total", task=task)

    try:
        wait_until(
            lambda: runs("detection") >= 2 and runs("budgets") >= 2,
            timeout=200,  # a minute between ticks, and a loaded machine starts slowly
            interval=0.5,
            ignoring=(httpx.HTTPError,),
            what="the scheduler running twice",
        )
        alerts = httpx.get(f"{base}/v1/alerts", timeout=5).json()
        false = [a for a in alerts if a["alertname"] in ("LLMCostSpike", "LLMBudgetForecastOverrun")]
        assert false == [], [(a["alertname"], a["annotations"].get("summary")) for a in false]
        status = httpx.get(f"{base}/v1/budgets/daily-total", timeout=5).json()
        assert status["projection"] == "insufficient history"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
