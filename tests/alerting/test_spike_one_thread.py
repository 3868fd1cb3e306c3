"""One burst is one problem: the spikes one detection pass starts are ONE thread per channel.

Defect: one large burst in project a on gpt-4o raised three `LLMCostSpike` alerts in the same pass (the
total, `project="a"` and `provider="openai", model="gpt-4o"`, the default watched label sets). Each label
set was its own group, each with one alert, under `group_threshold`: three Slack messages, three mail
threads and three PagerDuty incidents for one burst. Now the spikes one pass starts are one group
(`alerting.gateway.grouping.pass_group_key`), sent as one message from two on, each series still its
own alert, and what happens to them next (later figures, acknowledgements, resolves one by one) is told
in that one thread and incident.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alerting.gateway.sink import GatewaySink
from alerting.spikes import SpikeService, SpikeSettings
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers, slack_action_body
from tests.support.spikes import BUCKET, D0, NOW, PROJECTS, call, usual_spend

ROUTES = {"info": [], "warning": ["slack", "email", "pagerduty"], "critical": ["slack", "email", "pagerduty"]}
TRIO = [{}, {"project": "a"}, {"provider": "openai", "model": "gpt-4o"}]


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    rx.pagerduty.clock = clock
    with Harness(db, rx, clock=clock, routes=ROUTES) as harness:
        yield harness


def burst(h: Harness, project: str, start: float, end: float, usd: float) -> None:
    """`usd` per 5 minutes more for `project`, on its usual model, from `start` to `end`."""
    provider, model, _ = PROJECTS[project]
    events = [
        call(f"burst-{project}-{b}", b + 20, project, provider, model, usd) for b in range(int(start), int(end), BUCKET)
    ]
    h.services.store.write_events(events)


def detect(h: Harness, spikes: SpikeService, clock: FakeClock, at: float) -> None:
    clock.set(at)
    spikes.evaluate()
    h.gateway.deliver_pending()


def spike_service(h: Harness, clock: FakeClock) -> SpikeService:
    return SpikeService(h.services.store, SpikeSettings(), GatewaySink(h.gateway), clock=clock)


def firing_series(h: Harness) -> list[dict[str, str]]:
    return sorted((a["labels"] for a in h.alerts("firing")), key=lambda labels: sorted(labels.items()))


def test_one_burst_is_one_slack_message_one_mail_thread_and_one_incident(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    usual_spend(h.services.store, D0, NOW + 3600)
    burst(h, "a", NOW - 1800, NOW, usd=5.0)  # ~100x project a's usual spend, ~10x everyone's
    spikes = spike_service(h, clock)

    detect(h, spikes, clock, NOW)
    assert firing_series(h) == sorted(TRIO, key=lambda labels: sorted(labels.items()))  # each its own alert
    assert len(rx.slack.posted) == 1, [m["text"] for m in rx.slack.posted]
    text = rx.slack.posted[0]["text"]
    assert text.startswith("3 series of total, project and model,provider firing (LLMCostSpike, warning)"), text
    assert len(rx.smtp.messages) == 1, [m.message["Subject"] for m in rx.smtp.messages]
    assert len(rx.pagerduty.pages) == 1, [e["dedup_key"] for e in rx.pagerduty.events]

    for minute in range(1, 6):  # the burst goes on: nothing new
        detect(h, spikes, clock, NOW + 60 * minute)
    assert (len(rx.slack.posted), len(rx.smtp.messages), len(rx.pagerduty.events)) == (1, 1, 1)

    detect(h, spikes, clock, NOW + 45 * 60)  # over: resolved together, in the same thread and incident
    assert h.alerts("firing") == []
    assert len(rx.slack.posted) == 1
    thread = rx.slack.posted[0]["ts"]
    assert [(r["thread_ts"], r["text"]) for r in rx.slack.replies] == [
        (
            thread,
            "3 series of total, project and model,provider resolved by llmcost via scheduler at 2026-11-23 13:47 UTC "
            "(LLMCostSpike, warning)",
        )
    ]
    first, resolved = rx.smtp.messages
    assert resolved.message["In-Reply-To"] == first.message["Message-ID"]
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "resolve"]
    assert not rx.pagerduty.pages[0].open


def test_a_bigger_burst_acknowledge_all_and_spikes_ending_one_by_one_stay_in_the_one_thread(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    usual_spend(h.services.store, D0, NOW + 3600)
    burst(h, "a", NOW - 1800, NOW, usd=5.0)
    spikes = spike_service(h, clock)
    detect(h, spikes, clock, NOW)
    (incident,) = rx.pagerduty.pages
    thread = rx.slack.posted[0]["ts"]

    burst(h, "a", NOW, NOW + 900, usd=40.0)  # the burst grows: new figures, nobody told, no second thread
    detect(h, spikes, clock, NOW + 600)
    assert (len(rx.slack.posted), len(rx.smtp.messages), len(rx.pagerduty.events)) == (1, 1, 1)

    # "Acknowledge all" on the one message acknowledges every series it lists, and the incident.
    assert h.slack_click(slack_action_body(incident.dedup_key, action_id="llmcost_ack_digest")).status_code == 200
    h.gateway.deliver_pending()
    assert h.alerts("firing") == [] and len(h.alerts("acknowledged")) == 3
    assert incident.status == "acknowledged"
    assert len(rx.slack.posted) == 1 and len(rx.pagerduty.pages) == 1

    # Spikes end one by one (here the model first, then the project, then the total): each end is a reply
    # in the one thread and the one mail thread; the incident ends with the last.
    sink = GatewaySink(h.gateway)
    mails = len(rx.smtp.messages)
    for labels in reversed(TRIO):
        clock.advance(300)
        sink.resolve("LLMCostSpike", labels)
        h.gateway.deliver_pending()
        assert incident.open == bool(h.alerts("acknowledged")), incident.log
    assert len(rx.slack.posted) == 1
    assert {r["thread_ts"] for r in rx.slack.replies} == {thread}
    ends = [r["text"] for r in rx.slack.replies if r["text"].startswith("[RESOLVED]")]
    assert len(ends) == 3, [r["text"] for r in rx.slack.replies]
    root = rx.smtp.messages[0].message["Message-ID"]
    assert len(rx.smtp.messages) == mails + 3
    assert all(m.message["In-Reply-To"] == root for m in rx.smtp.messages[1:])
    assert len(rx.pagerduty.pages) == 1 and not incident.open


def test_a_spike_starting_in_a_later_pass_is_a_new_problem_and_pages_anew(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    usual_spend(h.services.store, D0, NOW + 3 * 3600)
    burst(h, "a", NOW - 1800, NOW + 3 * 3600, usd=5.0)  # a's burst goes on
    spikes = spike_service(h, clock)
    detect(h, spikes, clock, NOW)
    assert len(rx.pagerduty.pages) == 1

    burst(h, "c", NOW + 3600, NOW + 3 * 3600, usd=5.0)  # an hour later, project c on o3
    detect(h, spikes, clock, NOW + 3600 + 1800)
    new = {(a["labels"].get("project"), a["labels"].get("model")) for a in h.alerts("firing")} - {
        (None, None),
        ("a", None),
        (None, "gpt-4o"),
    }
    assert new == {("c", None), (None, "o3")}
    assert len(rx.slack.posted) == 2, "c's spike was not told: it joined a's thread"
    assert rx.slack.posted[1]["text"].startswith("2 series of project and model,provider firing"), rx.slack.posted[1]
    assert len(rx.pagerduty.pages) == 2 and all(p.open for p in rx.pagerduty.pages)
    assert len({m.message["Message-ID"] for m in rx.smtp.messages}) == 2 and all(
        m.message["In-Reply-To"] is None for m in rx.smtp.messages
    )


def test_unrelated_spikes_starting_in_the_same_pass_are_one_message_as_a_platform_wide_surge(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    usual_spend(h.services.store, D0, NOW + 3600)
    burst(h, "a", NOW - 1800, NOW, usd=5.0)
    burst(h, "c", NOW - 1800, NOW, usd=5.0)
    detect(h, spike_service(h, clock), clock, NOW)
    assert len(h.alerts("firing")) == 5  # the total, projects a and c, models gpt-4o and o3
    assert [m["text"].split(" (")[0] for m in rx.slack.posted] == [
        "5 series of total, project and model,provider firing"
    ]
    assert len(rx.smtp.messages) == 1 and len(rx.pagerduty.pages) == 1


def test_a_pair_under_group_threshold_is_one_thread_and_acks_one_by_one_stay_in_it(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    """A smaller burst in project c (o3) raises its project and its model, not the total: two alerts, under
    the default `group_threshold` of 3, which kept them two threads when grouping went by label set."""
    usual_spend(h.services.store, D0, NOW + 3600)
    burst(h, "c", NOW - 1800, NOW, usd=0.3)  # ~15x c's usual spend, ~1.5x everyone's
    detect(h, spike_service(h, clock), clock, NOW)
    pair = h.alerts("firing")
    assert sorted(a["labels"].get("project", a["labels"].get("model")) for a in pair) == ["c", "o3"]
    assert [m["text"].split(" (")[0] for m in rx.slack.posted] == ["2 series of project and model,provider firing"]
    assert len(rx.smtp.messages) == 1 and len(rx.pagerduty.pages) == 1
    (incident,) = rx.pagerduty.pages

    # Acknowledged one by one (the console, `llmcost alerts ack`): replies in the one thread; the incident
    # pages while one series is still firing and is acknowledged with the last.
    for n, alert in enumerate(pair, start=1):
        clock.advance(60)
        assert h.admin("POST", f"/v1/alerts/{alert['id']}/ack", json={"by": "bob"}).status_code == 200
        h.gateway.deliver_pending()
        assert incident.status == ("acknowledged" if n == len(pair) else "triggered"), incident.log
    assert len(rx.slack.posted) == 1
    assert {r["thread_ts"] for r in rx.slack.replies} == {rx.slack.posted[0]["ts"]}
    assert len(rx.pagerduty.pages) == 1
