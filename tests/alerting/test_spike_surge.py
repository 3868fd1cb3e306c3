"""A platform-wide surge: many projects spiking in the same detection pass are ONE message per channel.

Defect: detection handed each series' `LLMCostSpike` to the gateway on its own, and the gateway grouped
only the instances of a per-key budget. On real traffic (20 ServeGen tenants, all 5x for 90 minutes)
one surge opened 17 Slack threads, 17 mails and 17 PagerDuty incidents. Now the series of one watched
label set that start (or stop) in one pass are fired (resolved) in one transaction and grouped like a
budget's instances (`alerting.gateway.grouping`): one Slack thread, one mail, one incident listing them,
each series still its own alert. What happens to them next is told in that thread and incident.
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

PROJECTS = [f"t{i:02d}" for i in range(12)]
ROUTES = {"info": [], "warning": ["slack", "email", "pagerduty"], "critical": ["slack", "email", "pagerduty"]}


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    rx.pagerduty.clock = clock
    with Harness(db, rx, clock=clock, routes=ROUTES) as harness:
        yield harness


def traffic(h: Harness, spiked: list[str]) -> None:
    """Five days of $0.20 per project per 5 minutes (±20 %); `spiked` at 10x over the last 30 minutes."""
    rng = random.Random(3)
    events = []
    for bucket in range(D0, NOW + 3600, BUCKET):
        for project in PROJECTS:
            usd = 0.2 * rng.uniform(0.8, 1.2) * (10 if project in spiked and NOW - 1800 <= bucket < NOW else 1)
            events.append(call(f"{project}-{bucket}", bucket + 10, project, "openai", "gpt-4o", usd))
    h.services.store.write_events(events)


def detect(h: Harness, spikes: SpikeService, clock: FakeClock, at: float) -> None:
    clock.set(at)
    spikes.evaluate()
    h.gateway.deliver_pending()


def test_projects_spiking_together_are_one_slack_thread_one_mail_and_one_incident(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    traffic(h, spiked=PROJECTS[:9])
    spikes = SpikeService(h.services.store, SpikeSettings(series=(("project",),)), GatewaySink(h.gateway), clock=clock)

    detect(h, spikes, clock, NOW)
    assert {a["labels"]["project"] for a in h.alerts("firing")} == set(PROJECTS[:9])  # each its own alert
    assert len(rx.slack.posted) == 1
    assert "9 series" in rx.slack.posted[0]["text"], rx.slack.posted[0]["text"]
    assert len(rx.smtp.messages) == 1
    assert len(rx.pagerduty.pages) == 1

    for minute in range(1, 6):  # the surge goes on: nothing new
        detect(h, spikes, clock, NOW + 60 * minute)
    assert (len(rx.slack.posted), len(rx.smtp.messages), len(rx.pagerduty.events)) == (1, 1, 1)

    detect(h, spikes, clock, NOW + 45 * 60)  # over: resolved together, in the same thread and incident
    assert h.alerts("firing") == []
    assert len(rx.slack.posted) == 1
    # Who and when: llmcost's pass, each series' line saying what ended it (test_spike_resolve_reason.py).
    said = "9 series of project resolved by llmcost via scheduler at 2026-11-23 13:47 UTC (LLMCostSpike, warning)"
    assert [r["text"] for r in rx.slack.replies] == [said]
    assert len(rx.smtp.messages) == 2
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "resolve"]
    assert not rx.pagerduty.pages[0].open


def test_one_project_spiking_alone_is_still_notified_on_its_own(h: Harness, rx: Receivers, clock: FakeClock) -> None:
    traffic(h, spiked=["t04"])
    spikes = SpikeService(h.services.store, SpikeSettings(series=(("project",),)), GatewaySink(h.gateway), clock=clock)
    detect(h, spikes, clock, NOW)
    assert len(rx.slack.posted) == 1 and 'project="t04"' in rx.slack.posted[0]["text"]
    assert len(rx.pagerduty.pages) == 1


def spike_alerts(h: Harness, projects: list[str]) -> list[tuple[str, dict[str, str], dict[str, str], str]]:
    return [("LLMCostSpike", {"project": p}, {"summary": f"spike of {p}"}, "warning") for p in projects]


def test_spikes_ending_in_groups_resolve_every_incident_and_none_early(h: Harness, rx: Receivers) -> None:
    """Found on real traffic: spikes end at staggered times, so one pass's resolves mix a series paged on
    its own with some of a group's. Their grouped resolve went to the group's incident only: the series'
    own incident stayed open for ever, and the group's was resolved while series it listed still fired.
    And each series of a group resolving on its own posted a new top-level Slack message."""
    sink = GatewaySink(h.gateway)
    sink.fire("LLMCostSpike", {"project": "t00"}, {"summary": "spike of t00"}, "warning")  # alone: its own page
    h.gateway.deliver_pending()
    sink.fire_many(spike_alerts(h, PROJECTS[1:6]))  # five together: one grouped incident
    h.gateway.deliver_pending()
    own, group = rx.pagerduty.pages
    assert (own.open, group.open) == (True, True)

    sink.resolve_many([("LLMCostSpike", {"project": p}) for p in PROJECTS[:3]])  # t00 and two of the group
    h.gateway.deliver_pending()
    assert not own.open, "the spike paged on its own was resolved but its incident stays open"
    assert group.open, "the group's incident was resolved while three of its spikes still fire"

    sink.resolve_many([("LLMCostSpike", {"project": p}) for p in PROJECTS[3:5]])  # not together: one by one
    h.gateway.deliver_pending()
    assert group.open
    sink.resolve("LLMCostSpike", {"project": PROJECTS[5]})
    h.gateway.deliver_pending()
    assert not group.open
    assert len(rx.pagerduty.pages) == 2

    # Slack: two threads (t00's, the group's), each resolve told in its own, nothing posted to the channel.
    assert len(rx.slack.posted) == 2
    (update,) = rx.slack.calls("chat.update")  # t00's own message, updated in place
    assert update.payload["ts"] == rx.slack.posted[0]["ts"]
    assert update.payload["text"].startswith("[RESOLVED] LLMCostSpike: spike of t00")
    group_thread = rx.slack.posted[1]["ts"]
    assert {r["thread_ts"] for r in rx.slack.replies} == {group_thread}
    replies = [r["text"] for r in rx.slack.replies]
    assert len(replies) == 5 and all(r.startswith("[RESOLVED] LLMCostSpike: spike of t0") for r in replies), replies
