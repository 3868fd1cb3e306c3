"""Budget alerts an older release left open: after the upgrade, one alert per budget instance.

Defect: before `LLMBudgetInfo` … `LLMBudgetExceeded` became the levels of one alert, each level was an
alert of its own (fingerprinted by its own name), so a store written by such a release (stamped up to
`0005_budgets_origin`; the `0004_scheduler` era of the `llmcost` Python client package, for one) holds, for
an instance past its limit, warning, critical and exceeded all open, each with a Slack message and the last
two with a PagerDuty incident. The upgraded gateway looked the instance's alert up under the family's
fingerprint, found none, and opened a fourth alert that paged again, even when the exceeded one was
acknowledged; the old ones were never resolved and were reminded every `repeat_interval` for ever, and
PagerDuty's webhooks about their incidents were ignored. Found by running the old release, then this one,
on the same store (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from alerting.model import fingerprint
from alerting.push.sink import level_key
from exporter.store.engine import create_store_engine
from tests.support.clock import FakeClock
from tests.support.gateway_harness import ROUTING_KEY, Harness, Receivers
from tests.support.legacy_schema import T0, build_legacy_store, legacy_alert, level_fingerprint

SEARCH = {"budget": "per-project-daily", "key": "search", "scope": "project"}
TOTAL = {"budget": "monthly-total", "key": "", "scope": "global"}
SEVERITY = {"LLMBudgetWarning": "warning", "LLMBudgetCritical": "critical", "LLMBudgetExceeded": "critical"}
HOUR = 3600.0


def open_incident(rx: Receivers, dedup_key: str, severity: str) -> None:
    """The PagerDuty incident the old release opened for a critical level."""
    event = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {"summary": dedup_key, "source": "llmcost", "severity": severity},
    }
    assert httpx.post(rx.pagerduty.events_url, json=event).status_code == 202


def build_old_store(db: str, rx: Receivers) -> dict[tuple[str, str], int]:
    """What the per-level release left: `search` past its limit with all three levels open (exceeded
    acknowledged by alice), `monthly-total` at critical with warning and critical open, and a critical
    alert of `monthly-total` resolved in an earlier period. Ids by (alertname, budget)."""
    build_legacy_store(db, "0004_scheduler")
    engine = create_store_engine(db)
    ids = {}
    open_alerts = [
        ("LLMBudgetWarning", SEARCH, None),
        ("LLMBudgetCritical", SEARCH, None),
        ("LLMBudgetExceeded", SEARCH, "alice"),
        ("LLMBudgetWarning", TOTAL, None),
        ("LLMBudgetCritical", TOTAL, None),
    ]
    try:
        # Last month's, under the fingerprint this month's critical alert had until the upgrade.
        legacy_alert(engine, "LLMBudgetCritical", TOTAL, severity="critical", state="resolved", at=T0 - 40 * 86400)
        for n, (name, labels, acked_by) in enumerate(open_alerts, start=1):
            channels: dict[str, Any] = {"slack": {"channel": "C123", "ts": f"1600000000.{n:06d}"}, "email": None}
            if SEVERITY[name] == "critical":
                channels["pagerduty"] = {"dedup_key": "llmcost-" + level_fingerprint(name, labels)}
                open_incident(rx, channels["pagerduty"]["dedup_key"], "critical")
            ids[(name, labels["budget"])] = legacy_alert(
                engine,
                name,
                labels,
                severity=SEVERITY[name],
                state="acknowledged" if acked_by else "firing",
                acknowledged_by=acked_by,
                at=T0 + n,
                channels=channels,
            )
    finally:
        engine.dispose()
    return ids


@pytest.fixture
def upgraded(db_url: str, rx: Receivers, clock: FakeClock) -> Iterator[tuple[Harness, dict[tuple[str, str], int]]]:
    """The old store, opened by this release (which upgrades it)."""
    rx.pagerduty.clock = clock
    ids = build_old_store(db_url, rx)
    with Harness(db_url, rx, clock=clock) as h:
        clock.set(time.time() + 1)  # the upgrade ran on the wall clock: its resolves are due from then
        yield h, ids


def test_each_instance_keeps_its_highest_level_and_the_others_are_resolved_once(
    upgraded: tuple[Harness, dict[tuple[str, str], int]], rx: Receivers
) -> None:
    h, ids = upgraded
    open_alerts = {
        (a["id"], a["alertname"], a["state"], a["acknowledged_by"]) for a in h.alerts() if a["state"] != "resolved"
    }
    assert open_alerts == {
        (ids[("LLMBudgetExceeded", "per-project-daily")], "LLMBudgetExceeded", "acknowledged", "alice"),
        (ids[("LLMBudgetCritical", "monthly-total")], "LLMBudgetCritical", "firing", None),
    }
    superseded = [("LLMBudgetWarning", "per-project-daily"), ("LLMBudgetCritical", "per-project-daily")]
    superseded.append(("LLMBudgetWarning", "monthly-total"))
    history = h.gateway.history(ids[superseded[0]])
    assert history[-1]["action"] == "resolved" and "superseded by alert" in history[-1]["comment"]

    pages = len(rx.pagerduty.pages)
    h.gateway.deliver_pending()
    # Their Slack messages say resolved, their mail threads get a resolve, the critical's incident closes.
    updated = sorted(json.loads(r.body)["ts"] for r in rx.slack.calls("chat.update"))
    assert updated == ["1600000000.000001", "1600000000.000002", "1600000000.000004"]
    assert len(rx.smtp.messages) == 3
    incidents = {i.dedup_key: i.status for i in rx.pagerduty.incidents}
    assert incidents == {
        "llmcost-" + level_fingerprint("LLMBudgetCritical", SEARCH): "resolved",
        "llmcost-" + level_fingerprint("LLMBudgetExceeded", SEARCH): "triggered",
        "llmcost-" + level_fingerprint("LLMBudgetCritical", TOTAL): "triggered",
    }
    assert len(rx.pagerduty.pages) == pages

    # The next budget evaluation reaches the kept alerts: nothing new opens, nobody is paged again.
    still = h.gateway.fire("LLMBudgetExceeded", SEARCH, severity="critical", annotations={"summary": "at 274%"})
    assert still.alert is not None and still.alert.id == ids[("LLMBudgetExceeded", "per-project-daily")]
    assert still.action == "unchanged"
    risen = h.gateway.fire("LLMBudgetExceeded", TOTAL, severity="critical", annotations={"summary": "at 118%"})
    assert risen.alert is not None and risen.alert.id == ids[("LLMBudgetCritical", "monthly-total")]
    assert risen.action == "escalated"
    h.gateway.deliver_pending()
    assert len(rx.pagerduty.pages) == pages  # the escalation went to the incident already open
    assert len([a for a in h.alerts() if a["state"] != "resolved"]) == 2


def test_only_the_kept_alerts_are_reminded(
    upgraded: tuple[Harness, dict[tuple[str, str], int]], clock: FakeClock
) -> None:
    h, ids = upgraded
    h.gateway.deliver_pending()
    clock.advance(5 * HOUR)
    assert h.gateway.tick().repeats == 1
    # The firing one (monthly-total, critical); the acknowledged one is not reminded, the superseded are resolved.
    repeats = {n["alert_id"] for n in h.gateway.notifications(status="pending") if n["kind"] == "repeat"}
    assert repeats == {ids[("LLMBudgetCritical", "monthly-total")]}


def test_pagerduty_webhooks_about_a_kept_alerts_incident_reach_it(
    upgraded: tuple[Harness, dict[tuple[str, str], int]], rx: Receivers
) -> None:
    h, ids = upgraded
    kept = ids[("LLMBudgetCritical", "monthly-total")]
    assert next(a for a in h.alerts() if a["id"] == kept)["fingerprint"] == fingerprint("LLMBudget", TOTAL)
    webhook = rx.pagerduty.acknowledge_in_pagerduty("llmcost-" + level_fingerprint("LLMBudgetCritical", TOTAL))
    answer = h.pagerduty_webhook(webhook)
    assert answer.status_code == 200, answer.text
    alert = next(a for a in h.alerts() if a["id"] == kept)
    assert (alert["state"], alert["acknowledged_by"]) == ("acknowledged", "Bob Oncall")


def test_alerts_pushed_to_alertmanager_keep_one_row_per_instance(db_url: str, rx: Receivers, clock: FakeClock) -> None:
    """With `alertmanager:` set, the per-level release pushed each level; the lower ones are now ended levels."""
    build_legacy_store(db_url, "0009_alertmanager_push")
    clean = {k: v for k, v in SEARCH.items() if v}
    engine = create_store_engine(db_url)
    try:
        with engine.begin() as conn:
            for n, name in enumerate(("LLMBudgetWarning", "LLMBudgetCritical", "LLMBudgetExceeded")):
                conn.execute(
                    text(
                        "INSERT INTO alertmanager_alerts (fingerprint, alertname, labels, annotations, severity, "
                        "generator_url, starts_at, updated_at) VALUES (:fp, :name, :labels, '{}', :sev, '', :at, :at)"
                    ),
                    {
                        "fp": level_fingerprint(name, clean),
                        "name": name,
                        "labels": json.dumps(clean),
                        "sev": SEVERITY[name],
                        "at": T0 + n,
                    },
                )
    finally:
        engine.dispose()
    with Harness(db_url, rx, clock=clock) as h, h.services.store.reading() as conn:
        pushed = conn.execute(text("SELECT fingerprint, alertname, ends_at FROM alertmanager_alerts"))
        rows = {r.fingerprint: (r.alertname, r.ends_at is None) for r in pushed}
    family = fingerprint("LLMBudget", clean)
    assert rows == {
        family: ("LLMBudgetExceeded", True),
        level_key(family, "LLMBudgetWarning"): ("LLMBudgetWarning", False),
        level_key(family, "LLMBudgetCritical"): ("LLMBudgetCritical", False),
    }
