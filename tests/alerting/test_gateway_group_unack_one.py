"""Un-acknowledging one alert a grouped message listed is told in the group's threads.

Five instances of a per-key budget crossing together are one Slack message, one mail thread and one
PagerDuty incident; acknowledged one by one, the acknowledgements reply in those threads.

Defect: un-acknowledging ONE of them (the console, `POST /v1/alerts/{id}/unack`) posted a NEW top-level
Slack message and a new mail thread, and the alert left the group there: a second thread for the same
problem. Now it replies in the grouped message's thread (broadcast to the channel: it re-opens a problem
people stopped watching) and in the grouped mail's thread, and stays listed in the group. On PagerDuty it
opened a second incident on the alert's own dedup_key, which its acknowledgement then left paging (that
went to the group's incident); now the group's incident is resolved and triggered anew, which pages.

Defect: that resolve and trigger also went out while the group's incident was still paging (another
instance firing, so never acknowledged): on-call was paged a second time for a page already ringing.
Now the unack is one trigger logged on that incident; re-opening (and paging) is for an acknowledged one,
acknowledged through llmcost or in PagerDuty.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers
from tests.support.grouped_budget import FIRST_KEYS, LABELS, grouped_harness, grouped_warnings, states


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    with grouped_harness(db, rx, clock) as harness:
        yield harness


def deliver_webhooks(h: Harness, rx: Receivers, start: int) -> None:
    """Deliver what PagerDuty sends llmcost about its incidents since webhook number `start`."""
    for body in rx.pagerduty.webhooks[start:]:
        assert h.pagerduty_webhook(body).status_code == 200


def assert_last_in_grouped_threads(rx: Receivers, says: str, mail_says: str | None = None) -> None:
    """The only Slack post and mail thread are the grouped ones, and their last replies say `says`

    (the mail's text part: `mail_says`, by default `says`)."""
    [grouped_post] = rx.slack.posted
    reply = rx.slack.replies[-1]
    assert reply["thread_ts"] == grouped_post["ts"], "not told in the grouped message's thread"
    assert says in reply["text"], reply["text"]
    root, *rest = [m.message for m in rx.smtp.messages]
    assert rest[-1]["Subject"] == f"Re: {root['Subject']}", "a changed subject splits the thread"
    assert rest[-1]["In-Reply-To"] == rest[-1]["References"] == root["Message-ID"]
    assert (mail_says or says) in rx.smtp.messages[-1].part("text/plain")


def test_unacknowledging_one_grouped_alert_replies_in_the_groups_threads_and_pages_again(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    incident_key = grouped_warnings(h, rx, clock)
    ids = {a["labels"]["key"]: a["id"] for a in h.alerts()}
    for key in FIRST_KEYS:  # the console, `llmcost alerts ack`: one by one
        assert h.admin("POST", f"/v1/alerts/{ids[key]}/ack", json={"by": "bob"}).status_code == 200
    h.gateway.deliver_pending()
    [incident] = rx.pagerduty.pages
    assert incident.status == "acknowledged"
    replies, mails = len(rx.slack.replies), len(rx.smtp.messages)
    seen = len(rx.pagerduty.webhooks)

    clock.advance(60)
    one = FIRST_KEYS[2]
    assert h.admin("POST", f"/v1/alerts/{ids[one]}/unack").status_code == 200
    h.gateway.deliver_pending()

    assert_last_in_grouped_threads(rx, f"LLMBudgetWarning for {one}", f"key: {one}")
    assert (len(rx.slack.replies), len(rx.smtp.messages)) == (replies + 1, mails + 1)
    assert rx.slack.calls("chat.postMessage")[-1].json.get("reply_broadcast") is True  # re-opened: seen in the channel
    assert states(h)[one] == ("firing", None)
    # PagerDuty: the group's incident, acknowledged, would only log a trigger: it is resolved and
    # triggered anew, which pages (before, the alert's own dedup_key opened a second incident, which
    # its acknowledgement below then left paging).
    old, page = rx.pagerduty.pages
    assert old is incident and not old.open
    assert page.status == "triggered" and page.dedup_key == incident_key
    assert [(e["event_action"], e["dedup_key"]) for e in rx.pagerduty.events[-2:]] == [
        ("resolve", incident_key),
        ("trigger", incident_key),
    ]
    deliver_webhooks(h, rx, seen)  # the replaced incident's resolve ends none of the others
    assert sorted(state for state, _ in states(h).values()) == ["acknowledged"] * 4 + ["firing"]

    # It is still listed in the group: its acknowledgement and resolve are told there too; the ack quiets the page.
    assert h.admin("POST", f"/v1/alerts/{ids[one]}/ack", json={"by": "carol"}).status_code == 200
    h.gateway.deliver_pending()
    assert_last_in_grouped_threads(rx, "carol")
    assert page.status == "acknowledged" and len(rx.pagerduty.pages) == 2, "the page it raised escalates on"
    h.gateway.resolve("LLMBudgetWarning", {**LABELS, "key": one})
    h.gateway.deliver_pending()
    assert_last_in_grouped_threads(rx, "[RESOLVED] LLMBudgetWarning", "Resolved at")
    assert page.status == "acknowledged" and len(rx.pagerduty.pages) == 2  # the others are still acknowledged


def test_unacknowledging_one_while_the_group_still_pages_keeps_one_open_incident(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    incident_key = grouped_warnings(h, rx, clock)
    ids = {a["labels"]["key"]: a["id"] for a in h.alerts()}
    one = FIRST_KEYS[0]
    assert h.admin("POST", f"/v1/alerts/{ids[one]}/ack", json={"by": "bob"}).status_code == 200
    h.gateway.deliver_pending()
    assert rx.pagerduty.pages[0].status == "triggered"  # the others still fire
    seen = len(rx.pagerduty.webhooks)

    clock.advance(60)
    assert h.admin("POST", f"/v1/alerts/{ids[one]}/unack").status_code == 200
    h.gateway.deliver_pending()
    assert_last_in_grouped_threads(rx, f"LLMBudgetWarning for {one}", f"key: {one}")
    deliver_webhooks(h, rx, seen)
    # One problem, one incident: the group's, open and paging; no incident on the alert's own key.
    assert [(i.dedup_key, i.status) for i in rx.pagerduty.incidents if i.open] == [(incident_key, "triggered")]
    assert all(state == ("firing", None) for state in states(h).values())

    # Acknowledged one by one, the incident is acknowledged with the last.
    for key in FIRST_KEYS:
        assert h.admin("POST", f"/v1/alerts/{ids[key]}/ack", json={"by": "bob"}).status_code == 200
    h.gateway.deliver_pending()
    assert [(i.dedup_key, i.status) for i in rx.pagerduty.incidents if i.open] == [(incident_key, "acknowledged")]


def test_unacknowledging_one_while_the_group_still_pages_pages_nobody_anew(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    """The incident is triggered and unacknowledged: the unack is an update of it, not a second page."""
    incident_key = grouped_warnings(h, rx, clock)
    [incident] = rx.pagerduty.pages
    ids = {a["labels"]["key"]: a["id"] for a in h.alerts()}
    one = FIRST_KEYS[0]
    assert h.admin("POST", f"/v1/alerts/{ids[one]}/ack", json={"by": "bob"}).status_code == 200
    h.gateway.deliver_pending()
    events = len(rx.pagerduty.events)

    clock.advance(60)
    assert h.admin("POST", f"/v1/alerts/{ids[one]}/unack").status_code == 200
    h.gateway.deliver_pending()

    # Told in the group's threads, as ever.
    assert_last_in_grouped_threads(rx, f"LLMBudgetWarning for {one}", f"key: {one}")
    # PagerDuty: the same incident, still paging, gets one trigger (logged there); nobody is paged anew
    # (before, it was resolved and triggered again: a second page for a page already ringing).
    assert rx.pagerduty.pages == [incident] and incident.status == "triggered"
    assert [(e["event_action"], e["dedup_key"]) for e in rx.pagerduty.events[events:]] == [("trigger", incident_key)]
    assert rx.pagerduty.events[-1]["payload"]["custom_details"]["notification"] == "unacknowledged"


def test_two_unacknowledged_one_by_one_while_the_group_still_pages_page_nobody_anew(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    """Unacked together (both delivered in one round), neither takes the other for a paging incident's reason."""
    grouped_warnings(h, rx, clock)
    [incident] = rx.pagerduty.pages
    ids = {a["labels"]["key"]: a["id"] for a in h.alerts()}
    two = FIRST_KEYS[:2]
    for key in two:
        assert h.admin("POST", f"/v1/alerts/{ids[key]}/ack", json={"by": "bob"}).status_code == 200
    h.gateway.deliver_pending()

    clock.advance(60)
    for key in two:
        assert h.admin("POST", f"/v1/alerts/{ids[key]}/unack").status_code == 200
    h.gateway.deliver_pending()
    assert rx.pagerduty.pages == [incident] and incident.status == "triggered"
    assert "resolve" not in [e["event_action"] for e in rx.pagerduty.events]


def test_unacknowledging_one_after_the_incident_was_acknowledged_in_pagerduty_pages_again(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    """Acknowledged in PagerDuty (which acknowledges every instance here), an unack re-opens: it pages."""
    incident_key = grouped_warnings(h, rx, clock)
    [incident] = rx.pagerduty.pages
    ack = rx.pagerduty.acknowledge_in_pagerduty(incident_key)
    assert h.pagerduty_webhook(ack).status_code == 200
    h.gateway.deliver_pending()
    assert all(state == "acknowledged" for state, _ in states(h).values())
    ids = {a["labels"]["key"]: a["id"] for a in h.alerts()}

    clock.advance(60)
    assert h.admin("POST", f"/v1/alerts/{ids[FIRST_KEYS[1]]}/unack").status_code == 200
    h.gateway.deliver_pending()

    old, page = rx.pagerduty.pages
    assert old is incident and not old.open
    assert page.dedup_key == incident_key and page.status == "triggered"


def test_two_unacknowledged_together_after_every_ack_page_once(h: Harness, rx: Receivers, clock: FakeClock) -> None:
    """The incident acknowledged with the last ack: two unacks delivered in one round re-open it once."""
    incident_key = grouped_warnings(h, rx, clock)
    ids = {a["labels"]["key"]: a["id"] for a in h.alerts()}
    for key in FIRST_KEYS:
        assert h.admin("POST", f"/v1/alerts/{ids[key]}/ack", json={"by": "bob"}).status_code == 200
    h.gateway.deliver_pending()
    [incident] = rx.pagerduty.pages
    assert incident.status == "acknowledged"
    events = len(rx.pagerduty.events)

    clock.advance(60)
    for key in FIRST_KEYS[:2]:
        assert h.admin("POST", f"/v1/alerts/{ids[key]}/unack").status_code == 200
    h.gateway.deliver_pending()
    old, page = rx.pagerduty.pages
    assert old is incident and not old.open and page.status == "triggered"
    assert [(e["event_action"], e["dedup_key"]) for e in rx.pagerduty.events[events:]] == [
        ("resolve", incident_key),
        ("trigger", incident_key),
        ("trigger", incident_key),
    ]
