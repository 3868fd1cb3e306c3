"""Acknowledging from Slack (signed interactions) and PagerDuty (signed webhooks v3), and forgeries."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest

from alerting.model import fingerprint
from alerting.signatures import sign_slack
from tests.support.clock import FakeClock
from tests.support.gateway_harness import (
    BUDGET_LABELS,
    PD_SECRET,
    SIGNING_SECRET,
    Harness,
    Receivers,
    pd_event,
    slack_action_body,
)

FP = fingerprint("LLMBudgetCritical", BUDGET_LABELS)


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    with Harness(db, rx, clock=clock) as harness:
        yield harness


@pytest.fixture
def alert_id(h: Harness) -> int:
    change = h.gateway.fire("LLMBudgetCritical", BUDGET_LABELS, severity="critical", annotations={"summary": "96%"})
    h.gateway.deliver_pending()
    return int(change.alert.id)


def state(h: Harness, alert_id: int) -> str:
    alert = h.gateway.alert(alert_id)
    assert alert is not None
    return alert.state


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # same SQL paths run on PostgreSQL elsewhere
def test_the_slack_button_acknowledges_and_the_message_is_updated_by_the_outbox(
    h: Harness, rx: Receivers, alert_id: int
) -> None:
    started = time.perf_counter()
    response = h.slack_click(slack_action_body(alert_id, user="carol"))
    assert response.status_code == 200
    assert time.perf_counter() - started < 3  # Slack's limit; the Slack update is not made inline
    assert not rx.slack.calls("chat.update")
    alert = h.gateway.alert(alert_id)
    assert alert is not None and alert.state == "acknowledged" and alert.acknowledged_by == "carol"
    assert h.gateway.history(alert_id)[-1]["via"] == "slack"

    h.gateway.deliver_pending()
    [update] = rx.slack.calls("chat.update")
    blocks = orjson.dumps(update.json["blocks"]).decode()
    assert "llmcost_unack" in blocks and 'llmcost_ack"' not in blocks
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "acknowledge"]

    # The same click replayed (Slack retries, double clicks): no second update anywhere.
    assert h.slack_click(slack_action_body(alert_id, user="carol")).status_code == 200
    h.gateway.deliver_pending()
    assert len(rx.slack.calls("chat.update")) == 1 and len(rx.pagerduty.events) == 2

    assert h.slack_click(slack_action_body(alert_id, action_id="llmcost_unack")).status_code == 200
    assert state(h, alert_id) == "firing"


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # no SQL difference to cover
def test_forged_tampered_stale_and_malformed_slack_requests_are_refused(
    h: Harness, alert_id: int, clock: FakeClock
) -> None:
    body = slack_action_body(alert_id)
    ts = str(int(clock()))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts}
    attempts = [
        (body, {**headers, "X-Slack-Signature": sign_slack("not-the-secret", ts, body)}),  # forged
        (body + b"&x=1", {**headers, "X-Slack-Signature": sign_slack(SIGNING_SECRET, ts, body)}),  # tampered
        (body, headers),  # unsigned
        (body, {**headers, "X-Slack-Signature": "v0=" + "0" * 64}),
        (body, {**headers, "X-Slack-Signature": "garbage\u00e9".encode()}),
        (
            body,
            {
                **headers,
                "X-Slack-Request-Timestamp": "1e9",
                "X-Slack-Signature": sign_slack(SIGNING_SECRET, "1e9", body),
            },
        ),
        (
            body,
            {**headers, "X-Slack-Request-Timestamp": "-1", "X-Slack-Signature": sign_slack(SIGNING_SECRET, "-1", body)},
        ),
        (body, {**headers, "X-Slack-Request-Timestamp": "9" * 40, "X-Slack-Signature": "v0=00"}),
    ]
    for content, hdrs in attempts:
        response = h.client.post("/v1/slack/interactions", content=content, headers=hdrs)
        assert response.status_code == 401, (hdrs, response.text)
    stale = h.slack_click(body, timestamp=clock() - 301)
    assert stale.status_code == 401
    assert h.slack_click(body, timestamp=clock() + 301).status_code == 401
    assert state(h, alert_id) == "firing"
    # Signed but malformed: a clear 400, never a 500.
    assert h.slack_click(b"payload=%7Bbroken").status_code == 400
    assert h.slack_click(slack_action_body("12; DROP TABLE alerts")).status_code == 400
    assert h.slack_click(slack_action_body(alert_id + 1000)).status_code == 200  # unknown alert: ignored
    assert state(h, alert_id) == "firing"
    assert h.gateway.history(alert_id)[-1]["action"] == "fired"


def test_a_pagerduty_ack_is_applied_everywhere_but_not_echoed_to_pagerduty(
    h: Harness, rx: Receivers, alert_id: int
) -> None:
    response = h.pagerduty_webhook(pd_event("incident.acknowledged", FP, event_id="E1", agent="Bob Oncall"))
    assert response.status_code == 200 and response.json() == {"status": "ok", "alerts": {"acknowledged": 1}}
    alert = h.gateway.alert(alert_id)
    assert alert is not None and alert.acknowledged_by == "Bob Oncall"
    h.gateway.deliver_pending()
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger"]  # not echoed back
    assert "Acknowledged by Bob Oncall via pagerduty" in orjson.dumps(rx.slack.calls("chat.update")[0].json).decode()
    assert len(rx.smtp.messages) == 2
    skipped = h.admin("GET", "/v1/notifications", params={"status": "skipped"}).json()
    assert [(n["channel"], n["kind"]) for n in skipped] == [("pagerduty", "acknowledged")]

    # PagerDuty unacknowledges (ack timeout), then redelivers the old ack event: it stays unacknowledged.
    h.pagerduty_webhook(pd_event("incident.unacknowledged", FP, event_id="E2"))
    assert state(h, alert_id) == "firing"
    assert h.pagerduty_webhook(pd_event("incident.acknowledged", FP, event_id="E1")).json() == {"status": "duplicate"}
    assert state(h, alert_id) == "firing"

    # Resolved in PagerDuty: acknowledged here (whether its condition ended is llmcost's to tell), not echoed.
    resolved = h.pagerduty_webhook(pd_event("incident.resolved", FP, event_id="E3", agent="Bob Oncall"))
    assert resolved.json()["alerts"] == {"acknowledged": 1}
    h.gateway.deliver_pending()
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger"]
    assert state(h, alert_id) == "acknowledged"
    assert "Bob Oncall via pagerduty" in orjson.dumps(rx.slack.calls("chat.update")[-1].json).decode()
    assert "resolved the incident in PagerDuty" in orjson.dumps(rx.slack.calls("chat.update")[-1].json).decode()
    assert [e["via"] for e in h.gateway.history(alert_id)][-3:] == ["pagerduty"] * 3


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # no SQL difference to cover
def test_pagerduty_signatures_during_rotation_and_forgeries(h: Harness, alert_id: int) -> None:
    event = pd_event("incident.acknowledged", FP, event_id="E9")
    for secrets in (["some-other-secret"], [], ["old-secret", "newer-secret"]):
        assert h.pagerduty_webhook(event, secrets=secrets).status_code == 401
    body = orjson.dumps(event)
    for header in ("", "v1=zz", "v0=" + "0" * 64, "v1=" + "0" * 64 + ",,", "v1=\u00e9".encode()):
        response = h.client.post(
            "/v1/pagerduty/webhook",
            content=body,
            headers={"Content-Type": "application/json", "X-PagerDuty-Signature": header},
        )
        assert response.status_code == 401
    assert state(h, alert_id) == "firing"
    # Several v1= values while a secret is rotated: one valid signature is enough.
    assert h.pagerduty_webhook(event, secrets=["retired-secret", PD_SECRET]).status_code == 200
    assert state(h, alert_id) == "acknowledged"


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # no SQL difference to cover
def test_a_request_without_a_usable_signature_is_a_401_whatever_its_body(
    h: Harness, alert_id: int, clock: FakeClock
) -> None:
    # Defect: the body was read before the signature was looked at, so an unsigned or stale request with a
    # body over `alerting.max_body_bytes` was answered 413, not 401. Now the headers are checked first and
    # such a request is refused without reading its body.
    huge = b"x" * (h.gateway.settings.max_body_bytes + 1)
    ts = str(int(clock()))
    slack = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts}
    stale = str(int(clock()) - 301)
    for headers in (
        slack,  # unsigned
        {**slack, "X-Slack-Signature": "garbage"},
        {**slack, "X-Slack-Request-Timestamp": stale, "X-Slack-Signature": sign_slack(SIGNING_SECRET, stale, huge)},
    ):
        assert h.client.post("/v1/slack/interactions", content=huge, headers=headers).status_code == 401
    for signature in ("", "sha256=" + "0" * 64, "v1="):
        headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": signature}
        assert h.client.post("/v1/pagerduty/webhook", content=huge, headers=headers).status_code == 401
    # A plausible signature over a body too large to check: 413, as before.
    signed = {**slack, "X-Slack-Signature": sign_slack(SIGNING_SECRET, ts, huge)}
    assert h.client.post("/v1/slack/interactions", content=huge, headers=signed).status_code == 413
    assert state(h, alert_id) == "firing"


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # no SQL difference to cover
def test_pagerduty_events_that_are_not_ours_are_ignored(h: Harness, alert_id: int, clock: FakeClock) -> None:
    assert h.pagerduty_webhook(pd_event("incident.annotated", FP, event_id="N1")).status_code == 200
    assert h.pagerduty_webhook(pd_event("incident.acknowledged", "ffff", event_id="N2")).status_code == 200
    foreign = pd_event("incident.acknowledged", FP, event_id="N3")
    foreign["event"]["data"]["incident_key"] = "somebody-elses-key"
    assert h.pagerduty_webhook(foreign).json()["reason"] == "not an llmcost incident"
    old = pd_event("incident.resolved", FP, event_id="N4", created_at="2020-01-01T00:00:00Z")
    assert h.pagerduty_webhook(old).json()["reason"] == "the incident is older than the alert"
    assert h.pagerduty_webhook(b"{", secrets=[PD_SECRET]).status_code == 400
    invalid = h.pagerduty_webhook({"event": {"id": "x"}})
    assert invalid.status_code == 422 and invalid.json()["detail"] == {"field": "event.event_type"}
    assert state(h, alert_id) == "firing"


def test_a_pagerduty_ack_replayed_after_its_receipt_is_purged_is_not_applied(
    h: Harness, rx: Receivers, clock: FakeClock, alert_id: int
) -> None:
    # PagerDuty's v3 signature covers no time. An alert left open (a month-long budget) was acknowledged,
    # then un-acknowledged; once the ack's receipt was purged (alerting.receipt_retention, 7 days), the
    # captured ack sent again passed the signature and the dedup, and acknowledged the alert once more.
    acked_at = clock()
    ack = pd_event("incident.acknowledged", FP, event_id="E1", occurred_at=acked_at)
    assert h.pagerduty_webhook(ack).json() == {"status": "ok", "alerts": {"acknowledged": 1}}
    clock.advance(60)
    h.pagerduty_webhook(pd_event("incident.unacknowledged", FP, event_id="E2", occurred_at=clock()))
    assert state(h, alert_id) == "firing"
    clock.advance(8 * 86400)
    assert h.gateway.tick().receipts_purged == 2
    replayed = h.pagerduty_webhook(ack)
    assert replayed.status_code == 200 and replayed.json()["status"] == "duplicate"
    assert state(h, alert_id) == "firing"
    # A live delivery, even one PagerDuty retried for hours, is applied.
    late = pd_event("incident.acknowledged", FP, event_id="E3", occurred_at=clock() - 6 * 3600)
    assert h.pagerduty_webhook(late).json() == {"status": "ok", "alerts": {"acknowledged": 1}}
    assert state(h, alert_id) == "acknowledged"


def test_a_slack_or_pagerduty_name_with_a_nul_or_control_character_still_acknowledges(
    h: Harness, rx: Receivers, alert_id: int
) -> None:
    # Slack's user name and PagerDuty's agent summary are display names, written into the alert's row: a
    # NUL failed that write on PostgreSQL, and the signed click or webhook was answered 500 (Slack showed
    # an error, PagerDuty retried) while the alert kept paging.
    clicked = h.slack_click(slack_action_body(alert_id, user="car\x00ol\n"))
    assert clicked.status_code == 200, clicked.text
    alert = h.gateway.alert(alert_id)
    assert alert is not None and alert.state == "acknowledged" and alert.acknowledged_by == "carol"
    h.admin("POST", f"/v1/alerts/{alert_id}/unack", json={"by": "carol"})
    webhook = h.pagerduty_webhook(pd_event("incident.acknowledged", FP, event_id="E9", agent="Bob\x00 On\x1bcall"))
    assert webhook.status_code == 200, webhook.text
    alert = h.gateway.alert(alert_id)
    assert alert is not None and alert.state == "acknowledged" and alert.acknowledged_by == "Bob Oncall"
