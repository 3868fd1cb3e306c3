"""`/v1/alerts*`, `/v1/notifications` and `/v1/alertmanager` through the real ASGI app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from alerting.gateway.records import API_FIELDS
from tests.support.clock import FakeClock
from tests.support.gateway_harness import (
    ADMIN,
    BUDGET_LABELS,
    WEBHOOK,
    Harness,
    Receivers,
    am_alert,
    am_payload,
)


@pytest.fixture
def h(sqlite_url: str, rx: Receivers) -> Iterator[Harness]:
    with Harness(sqlite_url, rx) as harness:
        yield harness


def test_alerts_list_has_exactly_the_spec_fields_and_filters_by_state(h: Harness) -> None:
    other = {**BUDGET_LABELS, "budget": "team-b-monthly", "key": "team-b"}  # another budget: its own alert
    h.gateway.fire("LLMBudgetForecastOverrun", other, severity="warning", annotations={"summary": "80%"})
    critical = h.gateway.fire("LLMBudgetCritical", BUDGET_LABELS, severity="critical").alert
    h.gateway.ack(critical.id, by="alice")
    alerts = h.alerts()
    assert [tuple(a) for a in alerts] == [API_FIELDS, API_FIELDS]
    newest = alerts[0]
    assert newest["id"] == critical.id and newest["state"] == "acknowledged"
    assert newest["labels"] == BUDGET_LABELS and newest["acknowledged_by"] == "alice"
    assert newest["starts_at"].endswith("Z") and newest["acknowledged_at"].endswith("Z")
    assert newest["resolved_at"] is None
    assert [a["alertname"] for a in h.alerts("firing")] == ["LLMBudgetForecastOverrun"]
    assert h.alerts("resolved") == []
    assert h.admin("GET", "/v1/alerts", params={"state": "open"}).status_code == 400
    assert h.client.get("/v1/alerts").status_code == 401
    assert h.client.get("/v1/alerts", headers={"Authorization": f"Bearer {WEBHOOK}"}).status_code == 401


def test_ack_and_unack_through_the_api(h: Harness, rx: Receivers) -> None:
    alert_id = h.gateway.fire("LLMBudgetCritical", BUDGET_LABELS, severity="critical").alert.id
    h.gateway.deliver_pending()
    response = h.admin("POST", f"/v1/alerts/{alert_id}/ack", json={"by": "alice", "comment": "looking"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "acknowledged" and body["acknowledged_by"] == "alice" and body["changed"] is True
    assert h.admin("POST", f"/v1/alerts/{alert_id}/ack", json={"by": "bob"}).json()["changed"] is False
    h.gateway.deliver_pending()
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "acknowledge"]

    detail = h.admin("GET", f"/v1/alerts/{alert_id}").json()
    assert [e["action"] for e in detail["history"]] == ["fired", "acknowledged"]
    assert detail["history"][1]["comment"] == "looking"
    assert {n["kind"] for n in detail["notifications"]} == {"firing", "acknowledged"}

    assert h.admin("POST", f"/v1/alerts/{alert_id}/unack").json()["state"] == "firing"
    assert h.client.post(f"/v1/alerts/{alert_id}/ack", json={"by": "mallory"}).status_code == 401
    assert h.admin("POST", "/v1/alerts/999/ack", json={"by": "a"}).status_code == 404
    assert h.admin("POST", "/v1/alerts/abc/ack", json={"by": "a"}).status_code == 404
    assert (
        h.admin(
            "POST", f"/v1/alerts/{alert_id}/ack", content=b"{", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    bad = h.admin("POST", f"/v1/alerts/{alert_id}/ack", json={"by": 5})
    assert bad.status_code == 422 and bad.json()["detail"] == {"field": "by"}
    h.gateway.resolve("LLMBudgetCritical", BUDGET_LABELS)
    assert h.admin("POST", f"/v1/alerts/{alert_id}/ack", json={"by": "a"}).status_code == 409


def test_alertmanager_alerts_fire_and_resolve_once(h: Harness, rx: Receivers) -> None:
    firing = am_payload([am_alert(severity="critical")], truncated=7)
    response = h.post_alertmanager(firing)
    assert response.status_code == 200 and response.json() == {"status": "ok", "alerts": {"fired": 1}}
    assert h.post_alertmanager(firing).json() == {"status": "duplicate"}
    h.gateway.deliver_pending()
    assert rx.counts() == {"slack": 1, "email": 1, "pagerduty": 1}
    [alert] = h.alerts()
    assert alert["labels"] == {"project": "search", "severity": "critical"}
    assert alert["starts_at"] == "2026-11-23T10:00:00.123456Z"
    # The group had more alerts than Alertmanager sent: people see how many are missing.
    post = rx.slack.calls("chat.postMessage")[0].json
    assert "left 7 more alerts" in orjson.dumps(post["blocks"]).decode()
    assert "left 7 more alerts" in rx.smtp.messages[0].part("text/plain")

    resolved = am_payload([am_alert(severity="critical", status="resolved")])
    assert h.post_alertmanager(resolved).json()["alerts"] == {"resolved": 1}
    assert h.post_alertmanager(resolved).json() == {"status": "duplicate"}
    # A late retry of the old firing payload from an HA peer must not reopen the incident.
    late = am_payload([am_alert(severity="critical")], truncated=7, external_url="http://am-1:9093")
    assert h.post_alertmanager(late).json()["status"] == "duplicate"
    late_changed = am_payload([am_alert(severity="critical", annotations={"value": "2"})])
    assert h.post_alertmanager(late_changed).json()["alerts"] == {"ignored": 1}
    h.gateway.deliver_pending()
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "resolve"]
    assert [a["state"] for a in h.alerts()] == ["resolved"]

    # The same alert firing again later (a new startsAt) is a new incident.
    again = am_payload([am_alert(severity="critical", starts_at="2026-11-23T12:00:00Z")])
    assert h.post_alertmanager(again).json()["alerts"] == {"fired": 1}


def test_a_group_gaining_an_alert_notifies_only_the_new_one(h: Harness, rx: Receivers) -> None:
    h.post_alertmanager(am_payload([am_alert(labels={"model": "a"})]))
    h.post_alertmanager(am_payload([am_alert(labels={"model": "a"}), am_alert(labels={"model": "b"})]))
    h.gateway.deliver_pending()
    assert rx.counts() == {"slack": 2, "email": 2, "pagerduty": 0}
    assert sorted(a["labels"]["model"] for a in h.alerts()) == ["a", "b"]


def test_bad_alertmanager_requests_are_refused_with_fitting_statuses(h: Harness) -> None:
    assert h.client.post("/v1/alertmanager", json=am_payload([am_alert()])).status_code == 401
    assert h.post_alertmanager(b"{not json").status_code == 400
    wrong_type = h.post_alertmanager(am_payload([am_alert()]), **{"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    huge = am_payload([am_alert(annotations={"description": "x" * (1024 * 1024)})])
    assert h.post_alertmanager(huge).status_code == 413
    invalid = h.post_alertmanager({**am_payload([am_alert()]), "version": "3"})
    assert invalid.status_code == 422 and invalid.json()["detail"] == {"field": "version"}
    nameless = h.post_alertmanager(am_payload([{**am_alert(), "labels": {"severity": "warning"}}]))
    assert nameless.status_code == 422 and nameless.json()["detail"] == {"field": "alerts[0].labels.alertname"}
    assert h.alerts() == []


def test_dead_letters_are_listed_and_can_be_retried(h: Harness, rx: Receivers) -> None:
    rx.slack.enqueue(200, body={"ok": False, "error": "channel_not_found"})
    h.gateway.fire("LLMBudgetWarning", BUDGET_LABELS, severity="warning")
    h.gateway.deliver_pending()
    [dead] = h.admin("GET", "/v1/notifications", params={"status": "dead"}).json()
    assert dead["channel"] == "slack" and dead["kind"] == "firing" and "channel_not_found" in dead["last_error"]
    assert no_secrets(dead["last_error"])
    assert h.admin("GET", "/v1/notifications", params={"status": "sent"}).json()[0]["channel"] == "email"
    assert h.admin("GET", "/v1/notifications", params={"status": "lost"}).status_code == 400
    assert h.client.get("/v1/notifications").status_code == 401
    assert h.admin("POST", f"/v1/notifications/{dead['id']}/retry").status_code == 200
    assert h.admin("POST", f"/v1/notifications/{dead['id']}/retry").status_code == 409
    assert h.admin("POST", f"/v1/notifications/{dead['id'] + 1000}/retry").status_code == 404  # was 409: not dead
    h.gateway.deliver_pending()
    assert h.admin("GET", "/v1/notifications", params={"status": "dead"}).json() == []
    assert len(rx.slack.calls("chat.postMessage")) == 2


def no_secrets(text: str) -> bool:
    return "xoxb-" not in text and ADMIN not in text


def test_alertmanager_endpoint_is_open_without_webhook_tokens(sqlite_url: str, rx: Receivers) -> None:
    with Harness(sqlite_url, rx, auth=False, clock=FakeClock()) as h:
        assert h.client.post("/v1/alertmanager", json=am_payload([am_alert()])).status_code == 200


def test_an_acknowledged_alertmanager_alert_is_silenced_until_unack_or_resolve(sqlite_url: str, rx: Receivers) -> None:
    from tests.support.recording_servers import RecordingServer

    with RecordingServer() as am:
        am.enqueue(200, body={"silenceID": "sil-1"})
        am.enqueue(200, body={})  # expired on unack
        am.enqueue(503, body="busy")  # the second silence is retried
        am.enqueue(200, body={"silenceID": "sil-2"})
        alerting = {"alertmanager": {"url": am.url, "silence_on_ack": True, "silence_duration": "2h"}}
        with Harness(sqlite_url, rx, alerting=alerting) as h:
            h.post_alertmanager(am_payload([am_alert(severity="critical")]))
            scheduler_alert = h.gateway.fire("LLMBudgetWarning", BUDGET_LABELS, severity="warning").alert
            alert_id = next(a["id"] for a in h.alerts() if a["alertname"] == "LLMCostSpike")
            h.admin("POST", f"/v1/alerts/{alert_id}/ack", json={"by": "alice", "comment": "deploy"})
            h.admin("POST", f"/v1/alerts/{scheduler_alert.id}/ack", json={"by": "alice"})  # not Alertmanager's
            h.gateway.deliver_pending()
            [create] = am.requests
            assert (create.method, create.path) == ("POST", "/api/v2/silences")
            assert {m["name"]: m["value"] for m in create.json["matchers"]} == {
                "alertname": "LLMCostSpike",
                "project": "search",
                "severity": "critical",
            }
            assert create.json["createdBy"] == "llmcost (alice)" and "deploy" in create.json["comment"]

            h.admin("POST", f"/v1/alerts/{alert_id}/unack")
            h.admin("POST", f"/v1/alerts/{alert_id}/ack", json={"by": "bob"})
            h.gateway.deliver_pending()
            h.gateway.clock.advance(60)  # type: ignore[attr-defined]
            h.post_alertmanager(am_payload([am_alert(severity="critical", status="resolved")]))
            h.gateway.deliver_pending()
            calls = [(r.method, r.path) for r in am.requests]
            assert calls == [
                ("POST", "/api/v2/silences"),
                ("DELETE", "/api/v2/silence/sil-1"),
                ("POST", "/api/v2/silences"),
                ("POST", "/api/v2/silences"),
                ("DELETE", "/api/v2/silence/sil-2"),
            ]


def test_untrusted_alertmanager_values_cannot_ping_link_or_inject_mail_headers(h: Harness, rx: Receivers) -> None:
    labels = {"aaa": "<!channel> <http://evil.example|click>", **{f"l{i:02d}": "v" for i in range(40)}}
    summary = "spend up\r\nBcc: victim@example.com\r\n\r\nhello"
    h.post_alertmanager(am_payload([am_alert(labels=labels, annotations={"summary": summary})]))
    h.gateway.deliver_pending()
    post = rx.slack.calls("chat.postMessage")[0].json
    text = orjson.dumps(post).decode()
    assert "<!channel>" not in text and "<http://evil" not in text
    assert "&lt;!channel&gt;" in text and "more labels" in text
    [mail] = rx.smtp.messages
    assert mail.rcpt_tos == ["oncall@example.com"]
    assert mail.message["Bcc"] is None
    assert "\n" not in mail.message["Subject"] and "\r" not in mail.message["Subject"]


def test_a_misspelt_channel_filter_is_refused_not_answered_with_nothing(h: Harness, rx: Receivers) -> None:
    # `?channel=slak` answered `[]`, so the person looking for Slack's dead letters was told there were none.
    rx.slack.enqueue(200, body={"ok": False, "error": "channel_not_found"})
    h.gateway.fire("LLMBudgetWarning", BUDGET_LABELS, severity="warning")
    h.gateway.deliver_pending()
    misspelt = h.admin("GET", "/v1/notifications", params={"status": "dead", "channel": "slak"})
    assert misspelt.status_code == 400
    assert misspelt.json() == {
        "error": "channel must be one of slack, email, pagerduty",
        "detail": {"field": "channel"},
    }
    [dead] = h.admin("GET", "/v1/notifications", params={"status": "dead", "channel": "slack"}).json()
    assert dead["channel"] == "slack"
    assert h.admin("GET", "/v1/notifications", params={"channel": "pagerduty"}).json() == []


def test_an_ack_with_a_misspelt_field_is_refused_rather_than_recorded_as_api(h: Harness) -> None:
    # `{"by_": "alice"}` acknowledged the alert as "api": the audit trail lost who took it.
    alert_id = h.gateway.fire("LLMBudgetCritical", BUDGET_LABELS, severity="critical").alert.id
    for action in ("ack", "unack"):
        refused = h.admin("POST", f"/v1/alerts/{alert_id}/{action}", json={"by_": "alice", "comment": "on it"})
        assert refused.status_code == 422
        assert refused.json() == {"error": "by_: unknown field (allowed: by, comment)", "detail": {"field": "by_"}}
    assert h.alerts()[0]["state"] == "firing"
    assert h.admin("POST", f"/v1/alerts/{alert_id}/ack", json={"by": "alice"}).json()["acknowledged_by"] == "alice"


def test_notifications_filter_by_alert_id(h: Harness, rx: Receivers) -> None:
    """`?alert_id=` lists one alert's rows: scripts watching one page passed it while it was ignored."""
    first = h.gateway.fire("LLMBudgetWarning", BUDGET_LABELS, severity="warning").alert
    second = h.gateway.fire("LLMBudgetWarning", {**BUDGET_LABELS, "budget": "other"}, severity="warning").alert
    h.gateway.deliver_pending()
    assert first is not None and second is not None
    every = h.admin("GET", "/v1/notifications").json()
    assert {row["alert_id"] for row in every} == {first.id, second.id}
    mine = h.admin("GET", "/v1/notifications", params={"alert_id": str(first.id)}).json()
    assert mine and {row["alert_id"] for row in mine} == {first.id}
    assert len(mine) == len([row for row in every if row["alert_id"] == first.id])
    assert h.admin("GET", "/v1/notifications", params={"alert_id": "9999"}).json() == []
    bad = h.admin("GET", "/v1/notifications", params={"alert_id": "x"})
    assert bad.status_code == 400 and bad.json()["detail"] == {"field": "alert_id"}


def test_a_nul_in_a_webhook_or_an_ack_is_a_422_naming_the_field_not_a_500(db_url: str, rx: Receivers) -> None:
    # PostgreSQL's text columns cannot hold U+0000: a NUL in the alertname, a label's name, generatorURL or
    # groupKey failed the write and Alertmanager was answered 500 (it retries the group, valid alerts
    # included); an ack said only "internal error". Label and annotation values, kept as JSON, are refused alike.
    with Harness(db_url, rx) as h:
        cases = {
            "alerts[0].labels.alertname": am_payload([am_alert("LLMCostSpike\x00")]),
            "alerts[0].labels.'pro\\x00ject'": am_payload([am_alert(labels={"pro\x00ject": "search"})]),
            "alerts[0].labels.project": am_payload([am_alert(labels={"project": "se\x00arch"})]),
            "alerts[0].annotations.summary": am_payload([am_alert(annotations={"summary": "\x00"})]),
            "alerts[0].generatorURL": am_payload([{**am_alert(), "generatorURL": "http://p/\x00"}]),
            "groupKey": {**am_payload([am_alert()]), "groupKey": "{}:\x00"},
        }
        for field, payload in cases.items():
            refused = h.post_alertmanager(payload)
            assert refused.status_code == 422, (field, refused.text)
            assert refused.json()["detail"] == {"field": field}
            assert "must not contain a NUL character" in refused.json()["error"]
        assert h.alerts() == []

        assert h.post_alertmanager(am_payload([am_alert()])).status_code == 200
        alert_id = h.alerts()[0]["id"]
        for action in ("ack", "unack"):
            for field, body in (("by", {"by": "al\x00ice"}), ("comment", {"by": "alice", "comment": "\x00"})):
                refused = h.admin("POST", f"/v1/alerts/{alert_id}/{action}", json=body)
                assert refused.status_code == 422, refused.text
                assert refused.json() == {
                    "error": f"{field} must not contain a NUL character",
                    "detail": {"field": field},
                }
        assert h.alerts()[0]["state"] == "firing"


def test_bidi_and_zero_width_characters_in_alertmanager_labels_show_in_every_message(h: Harness, rx: Receivers) -> None:
    # "\u202e" showed "search" on screen for a label holding "hcraes", "\u200b" made two labels read alike:
    # on-call read a name the alert did not carry. What a person reads shows them; machines keep the value.
    project = "\u202ehcraes\u200b"
    summary = "spend up on \u202ehcraes"
    alert = am_alert(labels={"project": project}, annotations={"summary": summary}, severity="critical")
    h.post_alertmanager(am_payload([alert]))
    h.gateway.deliver_pending()
    shown = "[U+202E]hcraes[U+200B]"
    slack = orjson.dumps(rx.slack.calls("chat.postMessage")[0].json).decode()
    assert shown in slack and "\u202e" not in slack and "\u200b" not in slack
    [event] = rx.pagerduty.events
    assert "[U+202E]hcraes" in event["payload"]["summary"] and "\u202e" not in event["payload"]["summary"]
    assert event["payload"]["custom_details"]["labels"]["project"] == project  # read by machines: as received
    [mail] = rx.smtp.messages
    for text in (mail.message["Subject"], mail.part("text/plain"), mail.part("text/html")):
        assert "[U+202E]" in text and "\u202e" not in text and "\u200b" not in text
    assert h.alerts()[0]["labels"]["project"] == project  # the API answers what was received


def _texts_people_read(
    h: Harness, rx: Receivers, labels: dict[str, str], summary: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """Raise one critical alert through Alertmanager; what Slack, mail and PagerDuty's summary show, and the event."""
    h.post_alertmanager(am_payload([am_alert(labels=labels, annotations={"summary": summary}, severity="critical")]))
    h.gateway.deliver_pending()
    [mail] = rx.smtp.messages
    [event] = rx.pagerduty.events
    texts = {
        "slack": orjson.dumps(rx.slack.calls("chat.postMessage")[0].json).decode(),
        "mail subject": mail.message["Subject"],
        "mail text": mail.part("text/plain"),
        "mail html": mail.part("text/html"),
        "pagerduty summary": event["payload"]["summary"],
    }
    return texts, event


# Real project names: a family (man, ZWJ, woman, ZWJ, girl), the rainbow flag (white flag, VS16, ZWJ,
# rainbow), a technologist with a skin tone, a heart on fire (heart, VS16, ZWJ, fire).
EMOJI_NAMES = (
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 family-app",
    "pride-\U0001f3f3\ufe0f\u200d\U0001f308",
    "\U0001f9d1\U0001f3fd\u200d\U0001f4bb devs",
    "\u2764\ufe0f\u200d\U0001f525 hot",
)


def test_an_emoji_zwj_sequence_in_a_label_reaches_every_message_whole(h: Harness, rx: Receivers) -> None:
    # The ZWJ inside an emoji showed as [U+200D]: "👨[U+200D]👩[U+200D]👧 family-app" in Slack, mail and
    # PagerDuty. Between letters it is still shown: there it makes two names read alike.
    labels = {f"p{i}": name for i, name in enumerate(EMOJI_NAMES)} | {"spoof": "sea\u200drch"}
    summary = " / ".join(EMOJI_NAMES)
    texts, _event = _texts_people_read(h, rx, labels, summary)
    for where, text in texts.items():
        for name in EMOJI_NAMES:
            assert name in text, (where, name)
        assert "[U+200D]" not in text.replace("sea[U+200D]rch", ""), where
    for where in ("slack", "mail subject", "mail text", "mail html"):
        assert "sea[U+200D]rch" in texts[where], where


# Invisible characters other than bidi and zero-width ones: a variation selector after a letter, a word
# joiner's neighbours, the Mongolian vowel separator, an interlinear annotation anchor, a tag letter
# outside a flag, Hangul fillers. Each made a label read as "search" on every channel.
SPOOFS = {
    "sea\ufe0frch": "sea[U+FE0F]rch",
    "sea\ufe0erch": "sea[U+FE0E]rch",
    "sea\u2061rch": "sea[U+2061]rch",
    "sea\u180erch": "sea[U+180E]rch",
    "sea\ufff9rch": "sea[U+FFF9]rch",
    "sea\U000e0072rch": "sea[U+E0072]rch",
    "sea\u115f\u1160\u3164rch": "sea[U+115F][U+1160][U+3164]rch",
}
# Emoji that hold the same characters legitimately: a keycap (1, VS16, keycap), a red heart and a smiling
# face in emoji presentation, Scotland's flag (black flag, tag letters g b s c t, cancel tag).
EMOJI_WITH_SELECTORS = (
    "\u0031\ufe0f\u20e3 first",
    "\u2764\ufe0f fans",
    "\u263a\ufe0f happy",
    "scots-\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
)


def test_variation_selectors_tags_and_fillers_after_letters_show_but_emoji_stay_whole(
    h: Harness, rx: Receivers
) -> None:
    # "sea\ufe0frch" and "search" read alike in Slack, mail, PagerDuty's summary: only the bidi controls
    # and zero-width characters were shown. Now every invisible character is, except inside an emoji.
    labels = {f"s{i}": spoof for i, spoof in enumerate(SPOOFS)}
    labels |= {f"e{i}": name for i, name in enumerate(EMOJI_WITH_SELECTORS)}
    summary = " / ".join([*SPOOFS, *EMOJI_WITH_SELECTORS])
    texts, event = _texts_people_read(h, rx, labels, summary)
    for where, text in texts.items():
        for name in EMOJI_WITH_SELECTORS:
            assert name in text, (where, name)
    for where in ("slack", "mail text", "mail html", "pagerduty summary"):
        for spoof, shown in SPOOFS.items():
            assert shown in texts[where] and spoof not in texts[where], (where, spoof)
    assert event["payload"]["custom_details"]["labels"]["s0"] == "sea\ufe0frch"  # read by machines: as received
