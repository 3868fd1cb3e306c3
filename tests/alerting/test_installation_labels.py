"""`alertmanager.external_labels`: which installation an alert pushed to a shared Alertmanager belongs to.

Two installations pushing to one Alertmanager pushed the same label sets for their budgets of the same
name, so Alertmanager held one alert for both and whichever gateway it routed to acted on both. Each now
adds its external labels on the way out, and only takes back llmcost's alerts that carry them.
(`tests/e2e/test_alertmanager_installations.py` runs two installations and the real Alertmanager.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from alerting.gateway.alertmanager import parse_webhook
from alerting.gateway.config import settings_from_config
from alerting.gateway.silence_watch import gateway_fingerprint
from alerting.gateway.silences import matchers
from alerting.model import Alert, Notification, NotificationKind, fingerprint
from alerting.push.pusher import alert_body
from alerting.push.settings import parse_push_section
from exporter.config import ConfigError
from llmcost.config import parse_config

TEAM_A = {"cluster": "team-a"}
BUDGET = {"budget": "monthly", "scope": "project", "key": "search"}


def _pushed(labels: dict[str, str], alertname: str = "LLMBudgetCritical") -> dict[str, str]:
    return {**labels, "alertname": alertname, "severity": "critical", "llmcost_origin": "llmcost"}


def _webhook(*label_sets: dict[str, str]) -> dict[str, Any]:
    alerts = [{"status": "firing", "labels": labels, "startsAt": "2026-12-07T12:00:00Z"} for labels in label_sets]
    return {"version": "4", "groupKey": "{}:{}", "alerts": alerts}


class _Row:
    labels = '{"budget": "monthly", "key": "search", "scope": "project"}'
    alertname = "LLMBudgetCritical"
    severity = "critical"
    annotations = "{}"
    starts_at = 1_800_000_000.0
    ends_at = None
    generator_url = "http://llmcost-a:9800/#budget-monthly"


def test_every_pushed_alert_carries_the_external_labels() -> None:
    settings = parse_push_section({"url": "http://am:9093", "external_labels": TEAM_A}, [])
    assert alert_body(_Row(), 0.0, settings)["labels"] == {**_pushed(BUDGET), **TEAM_A}


def test_without_external_labels_the_pushed_label_set_is_as_before() -> None:
    settings = parse_push_section({"url": "http://am:9093"}, [])
    assert alert_body(_Row(), 0.0, settings)["labels"] == _pushed(BUDGET)


def test_the_gateway_takes_back_its_own_alerts_and_leaves_out_another_installations() -> None:
    rule = {"alertname": "LLMCostExporterDown", "severity": "critical", "job": "llmcost", "cluster": "team-b"}
    hook = parse_webhook(
        _webhook(_pushed({**BUDGET, **TEAM_A}), _pushed({**BUDGET, "cluster": "team-b"}), _pushed(BUDGET), rule),
        TEAM_A,
    )
    taken = {(w.alert.alertname, w.alert.fingerprint) for w in hook.alerts}
    # Its own, with the fingerprint the scheduler gave it; a rule's alert as Prometheus labelled it.
    rule_labels = {k: v for k, v in rule.items() if k != "alertname"}
    assert taken == {
        ("LLMBudgetCritical", fingerprint("LLMBudgetCritical", BUDGET)),
        ("LLMCostExporterDown", fingerprint("LLMCostExporterDown", rule_labels)),
    }
    assert hook.others == 2  # team B's, and one pushed by an installation without external labels


def test_without_external_labels_every_alert_of_llmcost_is_taken_as_before() -> None:
    hook = parse_webhook(_webhook(_pushed(BUDGET)))
    assert [w.alert.labels for w in hook.alerts] == [{**BUDGET, "alertname": "LLMBudgetCritical"}]
    assert hook.others == 0


def test_silence_watch_matches_only_its_own_installations_alerts() -> None:
    mine = fingerprint("LLMBudgetCritical", BUDGET)
    assert gateway_fingerprint(_pushed({**BUDGET, **TEAM_A}), TEAM_A) == mine
    assert gateway_fingerprint(_pushed({**BUDGET, "cluster": "team-b"}), TEAM_A) is None
    assert gateway_fingerprint(_pushed(BUDGET)) == mine


def _ack(alertname: str, labels: dict[str, str], severity: str = "critical") -> Notification:
    alert = Alert(
        fingerprint="f",
        alertname=alertname,
        labels=labels,
        severity=severity,  # type: ignore[arg-type]
        source="alertmanager",
        starts_at=datetime(2026, 12, 7, tzinfo=UTC),
    )
    return Notification(kind=NotificationKind.ACKNOWLEDGED, alert=alert, channel="alertmanager")


def test_an_ack_silences_the_alert_of_this_installation_only() -> None:
    def names(found: list[dict[str, Any]]) -> dict[str, str]:
        return {m["name"]: m["value"] for m in found}

    budget = names(matchers(_ack("LLMBudgetCritical", BUDGET), TEAM_A))
    assert budget.pop("alertname").startswith("LLMBudget")  # the levels the ack holds for
    assert budget == {**BUDGET, **TEAM_A}
    spike = {"project": "search"}
    assert names(matchers(_ack("LLMCostSpike", spike, "warning"), TEAM_A)) == {
        **spike,
        **TEAM_A,
        "alertname": "LLMCostSpike",
    }
    # A Prometheus rule's alert carries the labels Prometheus gave it; adding ours would miss it.
    rule = {"job": "llmcost", "instance": "a:9800"}
    assert names(matchers(_ack("LLMCostSchedulerStalled", rule), TEAM_A)) == {
        **rule,
        "alertname": "LLMCostSchedulerStalled",
    }


def test_the_gateway_reads_the_installations_external_labels() -> None:
    config = parse_config({"alertmanager": {"url": "http://am:9093", "external_labels": TEAM_A}})
    assert settings_from_config(config).external_labels == TEAM_A


@pytest.mark.parametrize(
    ("external_labels", "problem"),
    [
        ("team-a", "alertmanager.external_labels: must be a mapping of label names to values, got str"),
        ({"team-a": "x"}, "alertmanager.external_labels.team-a: not a label name"),
        ({"__name__": "x"}, "alertmanager.external_labels.__name__: not a label name"),
        ({"budget": "x"}, "alertmanager.external_labels.budget: llmcost's alerts carry this label already"),
        ({"severity": "x"}, "alertmanager.external_labels.severity: llmcost's alerts carry this label already"),
        ({"cluster": ""}, "alertmanager.external_labels.cluster: must be a non-empty string"),
        ({"cluster": 3}, "alertmanager.external_labels.cluster: must be a non-empty string"),
    ],
)
def test_bad_external_labels_are_named(external_labels: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"alertmanager": {"url": "http://am:9093", "external_labels": external_labels}})
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems
