"""Dedup under load: duplicate storms, concurrent copies, and two gateways (processes) on one store.

Dedup is the database's job, so every test runs on SQLite and PostgreSQL and counts what the receivers
got: exactly one notification per channel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson

from alerting.model import fingerprint
from tests.support.clock import FakeClock
from tests.support.gateway_harness import (
    BUDGET_LABELS,
    WEBHOOK,
    Harness,
    Receivers,
    am_alert,
    am_payload,
    pd_event,
    serve,
    slack_action_body,
)
from tests.support.waiting import wait_until

ONE_EACH = {"slack": 1, "email": 1, "pagerduty": 1}


def together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls on their own threads, released at the same moment."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_the_same_alertmanager_payload_100_times_notifies_once(db: str, rx: Receivers) -> None:
    payload = am_payload([am_alert(severity="critical")])
    with Harness(db, rx) as h:
        statuses = [h.post_alertmanager(payload).json()["status"] for _ in range(100)]
        assert statuses.count("ok") == 1 and statuses.count("duplicate") == 99
        h.gateway.deliver_pending()
        assert rx.counts() == ONE_EACH


def test_20_concurrent_copies_over_http_notify_once(db: str, rx: Receivers) -> None:
    # Each copy differs in what the receipt digest covers (an annotation), so none is short-cut as a
    # duplicate delivery: the alert row itself must absorb the race.
    bodies = [
        orjson.dumps(am_payload([am_alert(severity="critical", annotations={"value": str(i)})])) for i in range(20)
    ]
    headers = {"Authorization": f"Bearer {WEBHOOK}", "Content-Type": "application/json"}
    with Harness(db, rx) as h, serve(h.app) as base, httpx.Client(base_url=base, timeout=30) as client:
        responses = together(
            [lambda b=body: client.post("/v1/alertmanager", content=b, headers=headers) for body in bodies]
        )
        assert [r.status_code for r in responses] == [200] * 20
        assert [r.json()["alerts"] for r in responses].count({"fired": 1}) == 1
        again = together(
            [lambda b=body: client.post("/v1/alertmanager", content=b, headers=headers) for body in bodies]
        )
        assert {r.json()["status"] for r in again} == {"duplicate"}
        h.gateway.deliver_pending()
        assert rx.counts() == ONE_EACH
        assert len(h.alerts()) == 1


def test_two_gateways_sharing_a_store_notify_once(db: str, rx: Receivers) -> None:
    clock = FakeClock()
    with Harness(db, rx, clock=clock) as one, Harness(db, rx, clock=clock) as two:
        # The scheduler of each process raises the same alert, several times at once.
        calls = [
            lambda g=g: g.fire("LLMBudgetExceeded", BUDGET_LABELS, severity="critical")
            for g in (one.gateway, two.gateway)
            for _ in range(5)
        ]
        actions = [c.action for c in together(calls)]
        assert actions.count("fired") == 1 and actions.count("unchanged") == 9
        # The same Alertmanager group delivered to both processes (HA peers).
        payload = am_payload([am_alert(severity="critical")])
        results = together(
            [lambda: one.post_alertmanager(payload).json(), lambda: two.post_alertmanager(payload).json()]
        )
        assert sorted(r["status"] for r in results) == ["duplicate", "ok"]
        one.gateway.deliver_pending()
        two.gateway.deliver_pending()
        assert rx.counts() == {"slack": 2, "email": 2, "pagerduty": 2}

        # Both processes' ticks find the repeat due at the same time: one repeat.
        clock.advance(4 * 3600)
        repeats = together([lambda: one.gateway.tick().repeats, lambda: two.gateway.tick().repeats])
        assert sorted(repeats) == [0, 2]

        # An ack arriving through every door at once is applied once, and any process sees it.
        alert_id = next(a["id"] for a in one.alerts() if a["alertname"] == "LLMBudgetExceeded")
        fp = fingerprint("LLMBudgetExceeded", BUDGET_LABELS)
        acks = together(
            [
                lambda: one.admin("POST", f"/v1/alerts/{alert_id}/ack", json={"by": "alice"}).status_code,
                lambda: two.slack_click(slack_action_body(alert_id)).status_code,
                lambda: one.pagerduty_webhook(pd_event("incident.acknowledged", fp, event_id="X")).status_code,
                lambda: two.pagerduty_webhook(pd_event("incident.acknowledged", fp, event_id="X")).status_code,
            ]
        )
        assert acks == [200, 200, 200, 200]
        assert [e["action"] for e in two.gateway.history(alert_id)].count("acknowledged") == 1
        one.gateway.deliver_pending()
        two.gateway.deliver_pending()
        counts = rx.counts()
        # Per channel: 2 firing + 2 repeats (Slack: update + thread reply each) + 1 ack (maybe skipped on PD).
        assert counts["email"] == 5 and counts["slack"] == 2 + 4 + 1
        assert counts["pagerduty"] in (4, 5)


def test_workers_of_two_gateways_never_send_a_row_twice(db: str, rx: Receivers) -> None:
    with Harness(db, rx, start_workers=True) as one, Harness(db, rx, start_workers=True) as two:
        together(
            [
                # Not a spike: spikes of many projects due together are grouped into one message.
                lambda i=i, g=g: g.gateway.fire("LLMProviderErrors", {"project": f"p{i}"}, severity="critical")
                for i in range(10)
                for g in (one, two)
            ]
        )
        wait_until(lambda: rx.counts() == {"slack": 10, "email": 10, "pagerduty": 10}, timeout=20)
        wait_until(lambda: one.gateway.notifications(status="pending") == [])
        assert rx.counts() == {"slack": 10, "email": 10, "pagerduty": 10}
        assert len(one.gateway.notifications(status="sent")) == 30
