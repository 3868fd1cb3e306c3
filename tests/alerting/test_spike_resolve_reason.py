"""A spike's resolve says what ended it, in the terms its firing message used.

Defect: an `LLMCostSpike` whose firing message said "it resolves when spend falls back below 1.5x the
baseline" resolved with "Resolved at 2026-11-23 13:47 UTC" and nothing more: the on-call could not tell a
spike that subsided from one resolved by hand or by a change of configuration. Its resolve now says, with
the detector's own figures of the pass that ended it, "by llmcost via scheduler: spend fell back below 1.5x
the baseline: $0.34 in the last 30 minutes, 0.3x its baseline of $1.05".
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from alerting.gateway.sink import GatewaySink
from alerting.spikes import SpikeService, SpikeSettings
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers, slack_text
from tests.support.spikes import BUCKET, D0, NOW, PROJECTS, call, usual_spend

ROUTES = {"info": [], "warning": ["slack", "email"], "critical": ["slack", "email"]}
PROJECT = SpikeSettings(series=(("project",),))
# The figures are the detector's at the pass that ended the spike; their shape is what the test holds to.
FELL_BACK = re.compile(
    r"Resolved at \d{4}-\d\d-\d\d \d\d:\d\d UTC by llmcost via scheduler: spend fell back below 1\.5x the "
    r"baseline: \$(\d+\.\d\d) in the last (\d+) minutes, (\d+\.\d)x its baseline of \$(\d+\.\d\d)"
)


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    with Harness(db, rx, clock=clock, routes=ROUTES) as harness:
        yield harness


def burst_in_project_a(h: Harness) -> None:
    """Usual spend everywhere, and $5 per 5 minutes more in project a over the last 30 minutes before NOW."""
    usual_spend(h.services.store, D0, NOW + 3600)
    provider, model, _ = PROJECTS["a"]
    burst = [call(f"burst-{b}", b + 20, "a", provider, model, 5.0) for b in range(NOW - 1800, NOW, BUCKET)]
    h.services.store.write_events(burst)


def detect(h: Harness, spikes: SpikeService, clock: FakeClock, at: float) -> None:
    clock.set(at)
    spikes.evaluate()
    h.gateway.deliver_pending()


def test_a_spike_that_subsided_says_it_fell_back_below_the_resolve_level(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    burst_in_project_a(h)
    spikes = SpikeService(h.services.store, PROJECT, GatewaySink(h.gateway), clock=clock)
    detect(h, spikes, clock, NOW)
    [alert] = h.alerts("firing")
    assert alert["labels"] == {"project": "a"}
    [posted] = rx.slack.posted
    assert "resolves when spend falls back below 1.5x the baseline" in str(posted["blocks"])

    detect(h, spikes, clock, NOW + 45 * 60)

    assert h.alerts("firing") == []
    [update] = rx.slack.calls("chat.update")
    shown = str(update.json)
    found = FELL_BACK.search(shown)
    assert found, shown
    spent, minutes, ratio, baseline = found.groups()
    assert float(ratio) < 1.5 and int(minutes) > 0
    assert float(spent) < 1.5 * float(baseline), "the figures say what the reason says"
    mail = rx.smtp.messages[-1].part("text/plain")
    assert FELL_BACK.match(mail.splitlines()[0]), mail


def test_the_spikes_of_one_burst_ending_together_say_each_what_ended_it_in_their_thread(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    """The total, the project and the model spiked in one pass: one thread, one grouped resolve in it."""
    burst_in_project_a(h)
    spikes = SpikeService(h.services.store, SpikeSettings(), GatewaySink(h.gateway), clock=clock)
    detect(h, spikes, clock, NOW)
    [posted] = rx.slack.posted
    assert len(h.alerts("firing")) == 3

    detect(h, spikes, clock, NOW + 45 * 60)

    [reply] = rx.slack.replies
    assert reply["thread_ts"] == posted["ts"]
    assert reply["text"] == (
        "3 series of total, project and model,provider resolved by llmcost via scheduler at 2026-11-23 13:47 UTC "
        "(LLMCostSpike, warning)"
    )
    shown = slack_text(rx.slack.calls("chat.postMessage")[-1])
    ended = [item for item in shown.splitlines() if "LLMCostSpike warning resolved — spend fell back below" in item]
    assert len(ended) == 3, shown
    assert "Spend spike:" not in shown, "the lines describe the spikes as they ended, not as they fired"
    mail = rx.smtp.messages[-1].part("text/plain")
    assert mail.count("LLMCostSpike warning resolved — spend fell back below 1.5x the baseline: $") == 3, mail


def test_a_spike_of_a_label_set_no_longer_watched_says_so(h: Harness, rx: Receivers, clock: FakeClock) -> None:
    burst_in_project_a(h)
    detect(h, SpikeService(h.services.store, PROJECT, GatewaySink(h.gateway), clock=clock), clock, NOW)
    [alert] = h.alerts("firing")

    models = SpikeSettings(series=(("provider", "model"),))  # detection.series changed, the spike goes on
    spikes = SpikeService(h.services.store, models, GatewaySink(h.gateway), clock=clock)
    detect(h, spikes, clock, NOW + 60)

    assert alert["id"] in [a["id"] for a in h.alerts("resolved")]
    [update] = rx.slack.calls("chat.update")
    said = "by llmcost via scheduler: spike detection no longer watches spend by project (detection.series changed)"
    assert said in slack_text(update), slack_text(update)
