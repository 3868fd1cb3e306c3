"""A spike that keeps growing shows its current figures, in the message on-call already has.

Defect (audit): a spike of project t04 fired at about 4x and grew to about 16x. It stayed one alert with
severity `warning` (as it should: SPEC fixes spike severity), but its Slack message and the resolve text
kept the figures it fired with, "4.0x", while spend was 16x: on-call underestimated the problem. The
spike service never re-fired a firing series, so the gateway never heard the new figures. Now, when the
alert's ratio has at least doubled since the figures last notified, the service hands the new figures
over as an update: the gateway stores them and edits the Slack message in place (chat.update). No new
message, no thread reply, no mail, no PagerDuty event; the resolve says the latest figures.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from alerting.gateway.sink import GatewaySink
from alerting.spikes import SpikeService, SpikeSettings
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers
from tests.support.spikes import BUCKET, D0, NOW, call

ROUTES = {"info": [], "warning": ["slack", "email", "pagerduty"], "critical": ["slack", "email", "pagerduty"]}
GROWS_AT = NOW + 5 * 60  # the spike starts at 4x half an hour before NOW, and is 16x from here on
ENDS_AT = NOW + 60 * 60


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    rx.pagerduty.clock = clock
    with Harness(db, rx, clock=clock, routes=ROUTES) as harness:
        yield harness


def traffic(h: Harness) -> None:
    """Five days of $0.20 per project per 5 minutes; t04 at 4x, then 16x, for 90 minutes."""
    events = []
    for bucket in range(D0, NOW + 3 * 3600, BUCKET):
        for project in ("t00", "t01", "t04"):
            factor = 1.0
            if project == "t04" and NOW - 1800 <= bucket < ENDS_AT:
                factor = 16.0 if bucket >= GROWS_AT else 4.0
            events.append(call(f"{project}-{bucket}", bucket + 10, project, "openai", "gpt-4o", 0.2 * factor))
    h.services.store.write_events(events)


def test_a_growing_spike_edits_its_slack_message_in_place_and_resolves_with_its_latest_figures(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    traffic(h)
    spikes = SpikeService(h.services.store, SpikeSettings(series=(("project",),)), GatewaySink(h.gateway), clock=clock)

    def detect(at: float) -> None:
        clock.set(at)
        spikes.evaluate()
        h.gateway.deliver_pending()

    detect(NOW)
    (alert,) = h.alerts("firing")
    first = alert["annotations"]["ratio"]
    assert 3.0 <= float(first.rstrip("x")) < 6.0, first
    assert first in rx.slack.posted[0]["text"]
    counts = rx.counts()

    for minute in range(1, 50):  # the spike grows to 16x as its window fills: edits in place, nothing else
        detect(NOW + 60 * minute)
    (alert,) = h.alerts("firing")
    grown = alert["annotations"]["ratio"]
    assert float(grown.rstrip("x")) >= 2 * float(first.rstrip("x")), (first, grown)
    assert alert["severity"] == "warning"
    assert len(rx.slack.posted) == 1 and rx.slack.replies == []  # no new message, no thread reply
    updates = [u.payload for u in rx.slack.calls("chat.update")]
    # One edit per doubling (about 8x, then 16x), not one per pass.
    assert 1 <= len(updates) <= 2, [u["text"] for u in updates]
    assert {u["ts"] for u in updates} == {rx.slack.posted[0]["ts"]}
    assert f"({grown} its baseline" in updates[-1]["text"] and "figures updated" in updates[-1]["text"]
    assert len(rx.smtp.messages) == counts["email"]  # no mail
    assert len(rx.pagerduty.events) == counts["pagerduty"] and len(rx.pagerduty.pages) == 1  # no page

    detect(ENDS_AT + 45 * 60)  # over: the resolve says the latest figures
    assert h.alerts("firing") == []
    resolved = rx.slack.calls("chat.update")[-1].payload
    assert resolved["text"].startswith("[RESOLVED]")
    assert grown in str(resolved["blocks"]) and first not in str(resolved["blocks"]), resolved["blocks"]
    mail = rx.smtp.messages[-1].message
    assert mail["X-LLMCost-Notification"] == "resolved"
    assert grown in mail.get_body(("plain",)).get_content()
    assert len(rx.slack.posted) == 1 and len(rx.pagerduty.pages) == 1 and not rx.pagerduty.pages[0].open


def test_a_spike_wobbling_around_its_level_edits_nothing(h: Harness, rx: Receivers, clock: FakeClock) -> None:
    """The growth rule is a factor: a noisy 4x spike (3x to 6x from bucket to bucket) never doubles."""
    rng = random.Random(5)
    events = []
    for bucket in range(D0, NOW + 3 * 3600, BUCKET):
        for project in ("t00", "t01", "t04"):
            factor = rng.uniform(3.0, 6.0) if project == "t04" and NOW - 1800 <= bucket < ENDS_AT else 1.0
            events.append(call(f"{project}-{bucket}", bucket + 10, project, "openai", "gpt-4o", 0.2 * factor))
    h.services.store.write_events(events)
    spikes = SpikeService(h.services.store, SpikeSettings(series=(("project",),)), GatewaySink(h.gateway), clock=clock)

    for minute in range(0, 50):
        clock.set(NOW + 60 * minute)
        spikes.evaluate()
        h.gateway.deliver_pending()
    assert len(h.alerts("firing")) == 1
    assert len(rx.slack.posted) == 1 and rx.slack.calls("chat.update") == []


def test_an_acknowledged_spike_that_grows_keeps_its_message_and_resolves_with_its_latest_figures(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    traffic(h)
    spikes = SpikeService(h.services.store, SpikeSettings(series=(("project",),)), GatewaySink(h.gateway), clock=clock)
    clock.set(NOW)
    spikes.evaluate()
    h.gateway.deliver_pending()
    (alert,) = h.alerts("firing")
    assert h.admin("POST", f"/v1/alerts/{alert['id']}/ack", json={"by": "alice"}).status_code == 200
    h.gateway.deliver_pending()
    updates = len(rx.slack.calls("chat.update"))  # the acknowledgement's

    for minute in range(1, 50):
        clock.set(NOW + 60 * minute)
        spikes.evaluate()
        h.gateway.deliver_pending()
    (acked,) = h.alerts("acknowledged")
    assert float(acked["annotations"]["ratio"].rstrip("x")) >= 2 * float(alert["annotations"]["ratio"].rstrip("x"))
    assert len(rx.slack.calls("chat.update")) == updates and len(rx.slack.posted) == 1  # the ack holds

    clock.set(ENDS_AT + 45 * 60)
    spikes.evaluate()
    h.gateway.deliver_pending()
    resolved = rx.slack.calls("chat.update")[-1].payload
    assert resolved["text"].startswith("[RESOLVED]") and acked["annotations"]["ratio"] in str(resolved["blocks"])
