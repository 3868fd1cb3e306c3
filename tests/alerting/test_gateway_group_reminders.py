"""A reminder stays in the thread: a grouped alert's "still firing" is told where its problem was told.

Five instances of a per-key budget crossing together (or the three spikes one burst raises in one
detection pass) are one Slack message, one mail thread and one PagerDuty incident. Their resolves and
acknowledgements already replied in that message's thread and that mail's thread.

Defect: after `repeat_interval`, the reminder ("5 instances of budget per-project still firing") was a
NEW Slack post and a NEW mail thread (no `In-Reply-To`), so one problem became two threads per channel
every four hours; a lone instance's reminder (the others acknowledged) was a post and a mail thread of
its own, and its later resolve went there, not to the group; on PagerDuty, that lone reminder went to
the alert's own `dedup_key`, which opened a second incident and paged again.
Now a reminder replies in the grouped message's thread (broadcast to the channel, as the post it
replaces was seen there) and in the grouped mail's thread, keeping the alert listed in the group; an
acknowledged alert is not reminded, and PagerDuty's trigger goes to the group's incident (logged there).

Defect: a tick reminding the instances of two grouped messages of one budget (instances that crossed at
different times) folded them into one message, which had no one thread to go to: a new top-level Slack
post and a new mail thread listing all of them, which the instances then moved to. Now each grouped
message's thread gets one reply listing its own instances (acknowledgements and resolves likewise).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from alerting.gateway.sink import GatewaySink
from alerting.spikes import SpikeService, SpikeSettings
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers, slack_action_body
from tests.support.grouped_budget import FIRST_KEYS, LABELS, grouped_harness, grouped_warnings, instances
from tests.support.spikes import BUCKET, D0, NOW, PROJECTS, call, usual_spend

HOUR = 3600.0
REPEAT = 4 * HOUR  # the default `alerting.repeat_interval`


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    with grouped_harness(db, rx, clock) as harness:
        yield harness


def remind(h: Harness, clock: FakeClock) -> int:
    """Let `repeat_interval` pass, run the gateway's tick and deliver: how many reminders it queued."""
    clock.advance(REPEAT)
    repeats = h.gateway.tick().repeats
    h.gateway.deliver_pending()
    return repeats


def assert_in_grouped_threads(rx: Receivers, title: str, mail_says: str | None = None) -> None:
    """The only Slack post and the only mail thread are the grouped ones; their last replies say `title`

    (the mail's text part: `mail_says`, by default `title`)."""
    [grouped_post] = rx.slack.posted
    reply = rx.slack.replies[-1]
    assert reply["thread_ts"] == grouped_post["ts"], "the reminder is not in the grouped message's thread"
    assert reply["text"].startswith(title), reply["text"]
    root, *rest = [m.message for m in rx.smtp.messages]
    assert rest and rest[-1]["Subject"] == f"Re: {root['Subject']}", "a changed subject splits the thread"
    assert rest[-1]["In-Reply-To"] == rest[-1]["References"] == root["Message-ID"]
    assert (mail_says or title) in rx.smtp.messages[-1].part("text/plain")


def test_a_grouped_reminder_replies_in_the_grouped_slack_and_mail_threads_and_keeps_the_incident(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    incident_key = grouped_warnings(h, rx, clock)
    [incident] = rx.pagerduty.pages
    assert remind(h, clock) == len(FIRST_KEYS)

    assert_in_grouped_threads(rx, "5 instances of budget per-project still firing (LLMBudget, warning)")
    assert len(rx.slack.replies) == 1 and len(rx.smtp.messages) == 2
    assert rx.slack.calls("chat.postMessage")[-1].json.get("reply_broadcast") is True  # seen in the channel
    # PagerDuty as before: the group's incident, triggered again (logged there, nobody paged anew).
    assert [(e["event_action"], e["dedup_key"]) for e in rx.pagerduty.events] == [("trigger", incident_key)] * 2
    assert rx.pagerduty.pages == [incident] and incident.status == "triggered"

    # A second reminder goes to the same threads, and the resolve after it too.
    assert remind(h, clock) == len(FIRST_KEYS)
    assert_in_grouped_threads(rx, "5 instances of budget per-project still firing")
    h.gateway.resolve_many([("LLMBudgetWarning", {**LABELS, "key": key}) for key in FIRST_KEYS])
    h.gateway.deliver_pending()
    assert_in_grouped_threads(rx, "5 instances of budget per-project resolved")
    assert not rx.slack.calls("chat.postMessage")[-1].json.get("reply_broadcast")  # a resolve stays quiet
    assert len(rx.slack.posted) == 1 and not incident.open and rx.pagerduty.pages == [incident]


def test_acknowledged_instances_are_not_reminded_and_a_lone_reminder_stays_in_the_group(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    grouped_warnings(h, rx, clock)
    [incident] = rx.pagerduty.pages
    ids = {a["labels"]["key"]: a["id"] for a in h.alerts()}
    *acked, last = FIRST_KEYS
    for key in acked:  # the console, `llmcost alerts ack`: one by one
        assert h.admin("POST", f"/v1/alerts/{ids[key]}/ack", json={"by": "bob"}).status_code == 200
    h.gateway.deliver_pending()
    replies, mails = len(rx.slack.replies), len(rx.smtp.messages)

    assert remind(h, clock) == 1, "only the instance still firing is reminded"
    assert_in_grouped_threads(rx, f"[WARNING] LLMBudgetWarning: LLMBudgetWarning for {last}", f"key: {last}")
    assert "Still firing since" in rx.slack.replies[-1]["text"]
    assert rx.slack.calls("chat.postMessage")[-1].json.get("reply_broadcast") is True
    assert (len(rx.slack.replies), len(rx.smtp.messages)) == (replies + 1, mails + 1)
    assert rx.pagerduty.pages == [incident]

    # It is still listed in the group: its resolve is told there, and ends the group's incident.
    h.gateway.resolve("LLMBudgetWarning", {**LABELS, "key": last})
    h.gateway.deliver_pending()
    assert_in_grouped_threads(rx, "[RESOLVED] LLMBudgetWarning", "Resolved at")
    assert rx.pagerduty.pages == [incident] and incident.status == "acknowledged"


def test_one_tick_reminding_two_grouped_messages_replies_in_each_thread(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    """Reminders due together for the instances of two grouped messages of one budget: one reply in each thread.

    Before, the tick's reminders of both were one new top-level post and one new mail thread listing all
    eight, and the instances left their groups for it (their next news went there).
    """
    incident_key = grouped_warnings(h, rx, clock)
    later = ["n0", "n1", "n2"]
    h.gateway.fire_many(instances("LLMBudgetWarning", later))  # three more projects, two minutes later
    h.gateway.deliver_pending()
    first_post, second_post = rx.slack.posted
    first_mail, second_mail = [m.message for m in rx.smtp.messages]
    assert "3 instances" in second_post["text"] and "3 instances" in second_mail["Subject"]

    assert remind(h, clock) == len(FIRST_KEYS) + len(later), "one tick reminds both messages' instances"

    assert len(rx.slack.posted) == 2, "the reminder was posted as a new message: " + rx.slack.posted[-1]["text"]
    by_thread = {r["thread_ts"]: r for r in rx.slack.replies}
    assert sorted(by_thread) == sorted([first_post["ts"], second_post["ts"]])
    first, second = by_thread[first_post["ts"]], by_thread[second_post["ts"]]
    assert first["text"].startswith("5 instances of budget per-project still firing")
    assert second["text"].startswith("3 instances of budget per-project still firing")
    assert sorted(listed(first)) == FIRST_KEYS and sorted(listed(second)) == later
    assert all(c.json.get("reply_broadcast") is True for c in rx.slack.calls("chat.postMessage")[-2:])
    replies = {m.message["In-Reply-To"]: m for m in rx.smtp.messages[2:]}
    assert sorted(replies) == sorted([first_mail["Message-ID"], second_mail["Message-ID"]]), "a new mail thread"
    assert replies[first_mail["Message-ID"]].message["Subject"] == f"Re: {first_mail['Subject']}"
    assert replies[second_mail["Message-ID"]].message["Subject"] == f"Re: {second_mail['Subject']}"
    assert sorted(mailed(replies[first_mail["Message-ID"]].part("text/plain"))) == FIRST_KEYS
    assert sorted(mailed(replies[second_mail["Message-ID"]].part("text/plain"))) == later
    # PagerDuty: the later instances joined the group's incident, still paging: one trigger logged there.
    assert [i.dedup_key for i in rx.pagerduty.pages] == [incident_key]

    # Each instance is still listed in its own group: "Acknowledge all" (on either message) and the
    # resolve reply in each thread too.
    replies = len(rx.slack.replies)
    click = slack_action_body(incident_key, action_id="llmcost_ack_digest")
    assert h.slack_click(click).status_code == 200
    h.gateway.deliver_pending()
    assert len(rx.slack.posted) == 2
    acked = rx.slack.replies[replies:]
    assert sorted(r["thread_ts"] for r in acked) == sorted([first_post["ts"], second_post["ts"]])
    assert all("acknowledged by alice via slack" in r["text"] for r in acked)
    h.gateway.resolve_many([("LLMBudgetWarning", {**LABELS, "key": k}) for k in [*FIRST_KEYS, *later]])
    h.gateway.deliver_pending()
    assert len(rx.slack.posted) == 2
    resolved = [r for r in rx.slack.replies if "resolved" in r["text"]]
    assert sorted(r["thread_ts"] for r in resolved) == sorted([first_post["ts"], second_post["ts"]])


def listed(message: dict[str, Any]) -> list[str]:
    """The instances a grouped Slack message lists (its bullet lines, `• p0: LLMBudgetWarning …`)."""
    [section] = [b for b in message["blocks"] if b["type"] == "section"]
    return [item.removeprefix("• ").partition(":")[0] for item in section["text"]["text"].splitlines()]


def mailed(text: str) -> list[str]:
    """The instances a grouped mail's text part lists (`- p0: LLMBudgetWarning …`)."""
    return [line[2:].partition(":")[0] for line in text.splitlines() if line.startswith("- ")]


def burst(h: Harness, project: str, start: float, end: float, usd: float) -> None:
    """`usd` per 5 minutes more for `project`, on its usual model, from `start` to `end`."""
    provider, model, _ = PROJECTS[project]
    events = [
        call(f"burst-{project}-{b}", b + 20, project, provider, model, usd) for b in range(int(start), int(end), BUCKET)
    ]
    h.services.store.write_events(events)


def test_the_reminder_of_one_bursts_spikes_replies_in_their_one_thread(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    usual_spend(h.services.store, D0, NOW + 3600)
    burst(h, "a", NOW - 1800, NOW, usd=5.0)  # the total, project a and gpt-4o spike in one pass
    clock.set(NOW)
    SpikeService(h.services.store, SpikeSettings(), GatewaySink(h.gateway), clock=clock).evaluate()
    h.gateway.deliver_pending()
    assert len(rx.slack.posted) == 1 and len(rx.pagerduty.pages) == 1

    assert remind(h, clock) == 3
    assert_in_grouped_threads(rx, "3 series of total, project and model,provider still firing (LLMCostSpike")
    assert len(rx.pagerduty.pages) == 1


def test_a_single_alerts_reminder_replies_in_its_own_thread(h: Harness, rx: Receivers, clock: FakeClock) -> None:
    h.gateway.fire("LLMBudgetWarning", {"budget": "monthly"}, severity="warning", annotations={"summary": "80%"})
    h.gateway.deliver_pending()
    [post] = rx.slack.posted
    [first] = [m.message for m in rx.smtp.messages]
    [incident] = rx.pagerduty.pages

    assert remind(h, clock) == 1
    assert [r["thread_ts"] for r in rx.slack.replies] == [post["ts"]]
    assert not rx.slack.calls("chat.postMessage")[-1].json.get("reply_broadcast")  # as before: its message is edited
    assert [c.json["ts"] for c in rx.slack.calls("chat.update")] == [post["ts"]]  # the living message
    reminder = rx.smtp.messages[-1].message
    assert reminder["In-Reply-To"] == reminder["References"] == first["Message-ID"]
    assert len(rx.slack.posted) == 1 and len(rx.smtp.messages) == 2
    assert {e["dedup_key"] for e in rx.pagerduty.events} == {incident.dedup_key}
    assert rx.pagerduty.pages == [incident]


def test_instances_notified_one_by_one_are_reminded_and_acknowledged_in_their_own_threads(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    """Instances each notified on their own (fewer than `group_threshold` at a time) whose news falls due together.

    Defect: two projects crossing in one pass and a third ten minutes later were three messages of their
    own (below the threshold of 3), but their reminders, due in one tick four hours later, were folded into
    ONE new grouped Slack post and mail thread ("3 instances of budget per-project still firing") and one
    new PagerDuty trigger on the group's key: a new incident, an extra page, for three problems already
    paging in their own. So were their acknowledgements: the group's key had no incident, so the three
    incidents were never acknowledged and went on escalating. An upgrade from the first release, which
    notified every instance on its own, hit it at its first reminder. Now what is told in an alert's own
    thread (reminder, acknowledgement, unacknowledgement, resolve) goes there, however many fall due at once.
    """
    h.gateway.fire_many(instances("LLMBudgetWarning", ["a", "b"]))
    h.gateway.deliver_pending()
    clock.advance(600)
    h.gateway.fire_many(instances("LLMBudgetWarning", ["c"]))
    h.gateway.deliver_pending()
    posts = {p["ts"] for p in rx.slack.posted}
    roots = {m.message["Message-ID"] for m in rx.smtp.messages}
    incidents = list(rx.pagerduty.pages)
    assert len(posts) == len(roots) == len(incidents) == 3
    assert not any(i.dedup_key.startswith("llmcost-group-") for i in incidents)

    assert remind(h, clock) == 3
    assert len(rx.slack.posted) == 3, "a new post: " + rx.slack.posted[-1]["text"]
    assert sorted(r["thread_ts"] for r in rx.slack.replies) == sorted(posts)
    assert all("Still firing since" in r["text"] for r in rx.slack.replies)
    replies = [m.message for m in rx.smtp.messages[3:]]
    assert sorted(m["In-Reply-To"] for m in replies) == sorted(roots), "a new mail thread"
    assert rx.pagerduty.pages == incidents, "paged again"
    assert {e["dedup_key"] for e in rx.pagerduty.events} == {i.dedup_key for i in incidents}

    for alert in h.alerts():  # the console's "acknowledge" on each, before the gateway's next delivery
        assert h.admin("POST", f"/v1/alerts/{alert['id']}/ack", json={"by": "bob"}).status_code == 200
    h.gateway.deliver_pending()
    assert len(rx.slack.posted) == 3 and rx.pagerduty.pages == incidents
    assert [i.status for i in incidents] == ["acknowledged"] * 3, "PagerDuty escalates on"
    updates = rx.slack.calls("chat.update")[-3:]  # each alert's own message says so, as for any single alert
    assert sorted(c.json["ts"] for c in updates) == sorted(posts)
    assert all("Acknowledged" in c.json["text"] and "bob" in str(c.json["blocks"]) for c in updates)
