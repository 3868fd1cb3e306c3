"""alertmanager/alertmanager.yml: amtool check-config and route tests for real; inhibition by structure.

amtool only tests routes, so inhibit rules are evaluated here with Alertmanager's semantics: the source
and target matchers must match, and every `equal` label must have the same value on both alerts (a
label missing on both counts as equal). amtool check-config does not open credentials_file, so the
config is checked as committed, with the path of the compose secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import live_stack
from tests.support import monitoring_assets as assets

pytestmark = pytest.mark.real_process

GATEWAY_RECEIVERS = {"llmcost-default", "llmcost-critical", "llmcost-warning", "llmcost-info"}
EXPORTER_ALERTS = {"LLMCostExporterDown", "LLMCostExporterAbsent", "LLMCostStoreDown"}
_MATCHER = re.compile(r'^\s*(?P<label>\w+)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>.*)"\s*$')


@cache
def _config() -> dict[str, Any]:
    return assets.load_yaml(assets.ALERTMANAGER_CONFIG)


def _route(labels: Mapping[str, str], receivers: Sequence[str]) -> tuple[Mapping[str, str], str, str]:
    result = assets.run(
        [
            "amtool",
            "config",
            "routes",
            "test",
            f"--config.file={assets.ALERTMANAGER_CONFIG}",
            f"--verify.receivers={','.join(receivers)}",
            *(f"{name}={value}" for name, value in labels.items()),
        ]
    )
    return labels, ",".join(receivers), f"exit {result.returncode}: {result.stdout.strip()} {result.stderr.strip()}"


def _matches(matchers: Sequence[str], labels: Mapping[str, str]) -> bool:
    for text in matchers:
        match = _MATCHER.match(text)
        assert match, f"cannot parse matcher {text!r}"
        value = labels.get(match["label"], "")
        op, expected = match["op"], match["value"]
        ok = {
            "=": value == expected,
            "!=": value != expected,
            "=~": re.fullmatch(expected, value) is not None,
            "!~": re.fullmatch(expected, value) is None,
        }[op]
        if not ok:
            return False
    return True


def _inhibited(target: Mapping[str, str], source: Mapping[str, str]) -> bool:
    """Whether any inhibit rule lets the `source` alert mute the `target` alert."""
    return any(
        _matches(rule["source_matchers"], source)
        and _matches(rule["target_matchers"], target)
        and all(source.get(label, "") == target.get(label, "") for label in rule.get("equal", []))
        for rule in _config()["inhibit_rules"]
    )


def _prometheus_alerts() -> dict[str, dict[str, str]]:
    """Each Prometheus-side alert with the labels it fires with (alertname, severity, job)."""
    return {
        rule["alert"]: {"alertname": rule["alert"], "severity": rule["labels"]["severity"], "job": "llmcost"}
        for rule in assets.alerting_rules()
    }


def test_amtool_check_config() -> None:
    result = assets.run(["amtool", "check-config", str(assets.ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert f"{len(_config()['inhibit_rules'])} inhibit rules" in result.stdout


BUDGET = {"budget": "search-monthly", "scope": "project", "key": "search"}
DOWN = ["llmcost-fallback", "llmcost-critical"]
OURS = {"llmcost_origin": "llmcost"}
ROUTE_CASES: list[tuple[dict[str, str], list[str]]] = [
    ({"alertname": "LLMCostSchedulerStalled", "severity": "critical"}, ["llmcost-critical"]),
    ({"alertname": "LLMCostIngestStalled", "severity": "warning"}, ["llmcost-warning"]),
    ({"alertname": "LLMCostUnpricedModel", "severity": "info"}, ["llmcost-info"]),
    ({"alertname": "SomethingWithoutSeverity"}, ["llmcost-default"]),
    ({"alertname": "SomethingElse", "severity": "page"}, ["llmcost-default"]),
    # The gateway cannot announce its own outage: these also go to the fallback receiver.
    ({"alertname": "LLMCostExporterDown", "severity": "critical", "job": "llmcost"}, DOWN),
    ({"alertname": "LLMCostExporterAbsent", "severity": "critical", "job": "llmcost"}, DOWN),
    ({"alertname": "LLMCostStoreDown", "severity": "critical", "job": "llmcost"}, DOWN),
    # llmcost's own alerts, as it pushes them (`alertmanager:` configured): back to its gateway by severity.
    ({"alertname": "LLMBudgetCritical", "severity": "critical", **BUDGET, **OURS}, ["llmcost-critical"]),
    ({"alertname": "LLMBudgetWarning", "severity": "warning", **BUDGET, **OURS}, ["llmcost-warning"]),
    ({"alertname": "LLMBudgetForecastOverrun", "severity": "warning", **BUDGET, **OURS}, ["llmcost-warning"]),
    ({"alertname": "LLMBudgetExceeded", "severity": "critical", **BUDGET, **OURS}, ["llmcost-critical"]),
    ({"alertname": "LLMCostSpike", "severity": "warning", "project": "search", **OURS}, ["llmcost-warning"]),
]


def test_amtool_routes_every_severity_to_its_receiver() -> None:
    cases = ROUTE_CASES + [
        (labels, [*(["llmcost-fallback"] if name in EXPORTER_ALERTS else []), f"llmcost-{labels['severity']}"])
        for name, labels in _prometheus_alerts().items()
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: _route(*case), cases))
    failures = [result for result in results if not result[2].startswith("exit 0")]
    assert failures == []


def test_every_alert_severity_has_its_own_route() -> None:
    routed = {
        matcher
        for route in _config()["route"]["routes"]
        for matcher in route.get("matchers", [])
        if matcher.startswith("severity=")
    }
    assert routed == {f'severity="{severity}"' for severity in assets.SEVERITIES}
    assert {labels["severity"] for labels in _prometheus_alerts().values()} <= set(assets.SEVERITIES)


def test_gateway_receivers_post_to_llmcost_with_a_bearer_token_file() -> None:
    receivers = {receiver["name"]: receiver for receiver in _config()["receivers"]}
    assert set(receivers) == GATEWAY_RECEIVERS | {"llmcost-fallback"}
    for name in GATEWAY_RECEIVERS:
        [hook] = receivers[name]["webhook_configs"]
        assert hook["url"] == "http://llmcost:9800/v1/alertmanager"
        assert hook["send_resolved"] is True
        assert hook["http_config"]["authorization"] == {
            "type": "Bearer",
            "credentials_file": "/run/secrets/llmcost_webhook_token",
        }
    # Left for the operator to point at something independent of llmcost (see the config comment).
    assert set(receivers["llmcost-fallback"]) == {"name"}


def test_grouping_and_timing() -> None:
    route = _config()["route"]
    assert route["receiver"] == "llmcost-default"
    assert {"alertname", "budget", "scope", "key", "project"} <= set(route["group_by"])

    def seconds(duration: str) -> int:
        value, unit = re.fullmatch(r"(\d+)([smh])", duration).groups()  # type: ignore[union-attr]
        return int(value) * {"s": 1, "m": 60, "h": 3600}[unit]

    for child in [route, *route["routes"]]:
        merged = {**route, **child}
        assert seconds(merged["group_wait"]) < seconds(merged["group_interval"]) < seconds(merged["repeat_interval"])


def _with_instance(name: str, labels: Mapping[str, str], instance: str = "llmcost:9800") -> dict[str, str]:
    """The alert as it fires: every rule alert but LLMCostUnpricedModel (summed over instances) keeps `instance`."""
    return {**labels, "instance": instance} if name not in NO_INSTANCE else dict(labels)


NO_INSTANCE = {"LLMCostExporterAbsent", "LLMCostUnpricedModel", "LLMCostTotalsScrapedTwice"}


def test_exporter_down_inhibits_every_alert_computed_from_its_metrics() -> None:
    alerts = _prometheus_alerts()
    dependent = set(alerts) - EXPORTER_ALERTS
    assert dependent
    for source in EXPORTER_ALERTS:
        for name in dependent:
            target = _with_instance(name, alerts[name])
            assert _inhibited(target, _with_instance(source, alerts[source])), f"{source} -> {name}"
        for name in EXPORTER_ALERTS:
            assert not _inhibited(alerts[name], alerts[source]), f"{source} must not mute {name}"


def test_exporter_down_of_another_job_does_not_inhibit() -> None:
    alerts = _prometheus_alerts()
    other = _with_instance("LLMCostExporterDown", alerts["LLMCostExporterDown"]) | {"job": "llmcost-staging"}
    assert not _inhibited(_with_instance("LLMCostIngestStalled", alerts["LLMCostIngestStalled"]), other)


def test_exporter_down_of_another_instance_does_not_inhibit_its_alerts() -> None:
    """One llmcost down (a dead scheduler leader, or another store under the same job) muted the alerts of
    the instances still scraped, a critical LLMCostSchedulerStalled included."""
    alerts = _prometheus_alerts()
    down = _with_instance("LLMCostExporterDown", alerts["LLMCostExporterDown"], "llmcost-eu:9800")
    for name in set(alerts) - EXPORTER_ALERTS - NO_INSTANCE:
        assert not _inhibited(_with_instance(name, alerts[name], "llmcost-us:9800"), down), name
    assert _inhibited(alerts["LLMCostUnpricedModel"], down)


def test_an_exporter_alert_of_one_cluster_does_not_inhibit_another_clusters_alerts() -> None:
    """Two installations scraped under one job, told apart by `cluster`: the rules matched on `job` alone, so
    one installation's LLMCostExporterAbsent (or Down on an instance of the same name) muted the other's."""
    alerts = _prometheus_alerts()
    for source in EXPORTER_ALERTS:
        gone = {**_with_instance(source, alerts[source]), "cluster": "eu-1"}
        for name in set(alerts) - EXPORTER_ALERTS:
            target = _with_instance(name, alerts[name])
            assert not _inhibited({**target, "cluster": "eu-2"}, gone), f"{source} -> {name}"
            assert _inhibited({**target, "cluster": "eu-1"}, gone), f"{source} -> {name}"


def test_the_real_alertmanager_mutes_only_the_absent_clusters_alerts(tmp_path: Any) -> None:
    """The same, as Alertmanager itself decides it: one job, two clusters, one of them absent."""
    alerts = _prometheus_alerts()
    with _shipped_alertmanager(tmp_path) as am:
        stalled = _with_instance("LLMCostSchedulerStalled", alerts["LLMCostSchedulerStalled"])
        posted = [
            {**alerts["LLMCostExporterAbsent"], "cluster": "eu-1"},
            {**stalled, "cluster": "eu-1", "task": "budgets"},
            {**stalled, "cluster": "eu-2", "task": "budgets"},
        ]
        body = [{"labels": labels} for labels in posted]
        assert httpx.post(f"{am}/api/v2/alerts", json=body, timeout=5).status_code == 200

        def inhibited() -> dict[str, bool] | None:
            found = httpx.get(f"{am}/api/v2/alerts", timeout=5).json()
            by_cluster = {
                a["labels"]["cluster"]: bool(a["status"]["inhibitedBy"])
                for a in found
                if a["labels"]["alertname"] == "LLMCostSchedulerStalled"
            }
            # Inhibition is decided once Alertmanager holds the source: wait for the muted one.
            return by_cluster if len(by_cluster) == 2 and any(by_cluster.values()) else None

        assert live_stack.wait_until(inhibited, 20), httpx.get(f"{am}/api/v2/alerts", timeout=5).text
        assert inhibited() == {"eu-1": True, "eu-2": False}


def test_inhibit_target_list_names_only_existing_alerts() -> None:
    targets: set[str] = set()
    for rule in _config()["inhibit_rules"]:
        if any("LLMCostExporter" in m for m in rule["source_matchers"]):
            [target] = rule["target_matchers"]
            targets |= set(_MATCHER.match(target)["value"].split("|"))  # type: ignore[index]
    assert targets == set(_prometheus_alerts()) - EXPORTER_ALERTS


@contextmanager
def _shipped_alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on the shipped config, its webhook on a port where no llmcost listens; its URL."""
    token = tmp_path / "token"
    token.write_text("inhibit-test-token\n", encoding="utf-8")
    dead_llmcost, am_port = live_stack.free_ports(2)
    server = live_stack.alertmanager_server(
        tmp_path / "am", live_stack.Ports(dead_llmcost, 0, am_port), credentials_file=token, timings={}
    )
    server.start()
    try:
        yield f"http://127.0.0.1:{am_port}"
    finally:
        server.stop()


def test_the_real_alertmanager_mutes_only_the_down_instances_alerts(tmp_path: Any) -> None:
    """The same, as Alertmanager itself decides it (`GET /api/v2/alerts`, `status.inhibitedBy`)."""
    alerts = _prometheus_alerts()
    with _shipped_alertmanager(tmp_path) as am:
        posted = {
            "down": _with_instance("LLMCostExporterDown", alerts["LLMCostExporterDown"], "llmcost-eu:9800"),
            "same": _with_instance("LLMCostSchedulerStalled", alerts["LLMCostSchedulerStalled"], "llmcost-eu:9800"),
            "other": _with_instance("LLMCostSchedulerStalled", alerts["LLMCostSchedulerStalled"], "llmcost-us:9800"),
        }
        body = [{"labels": {**labels, "task": "budgets"}} for labels in posted.values()]
        assert httpx.post(f"{am}/api/v2/alerts", json=body, timeout=5).status_code == 200

        def inhibited() -> dict[str, bool] | None:
            found = httpx.get(f"{am}/api/v2/alerts", timeout=5).json()
            by_instance = {
                a["labels"]["instance"]: bool(a["status"]["inhibitedBy"])
                for a in found
                if a["labels"]["alertname"] == "LLMCostSchedulerStalled"
            }
            # Inhibition is decided once Alertmanager holds the source: wait for the muted one.
            return by_instance if len(by_instance) == 2 and any(by_instance.values()) else None

        assert live_stack.wait_until(inhibited, 20), httpx.get(f"{am}/api/v2/alerts", timeout=5).text
        assert inhibited() == {"llmcost-eu:9800": True, "llmcost-us:9800": False}


@pytest.mark.parametrize(
    ("source", "target", "inhibited"),
    [
        ({"alertname": "LLMBudgetCritical", "severity": "critical", **BUDGET},
         {"alertname": "LLMBudgetWarning", "severity": "warning", **BUDGET}, True),
        ({"alertname": "LLMBudgetExceeded", "severity": "critical", **BUDGET},
         {"alertname": "LLMBudgetForecastOverrun", "severity": "warning", **BUDGET}, True),
        # Another budget, or the same name with another key ("*" budgets expand per key).
        ({"alertname": "LLMBudgetCritical", "severity": "critical", **BUDGET},
         {"alertname": "LLMBudgetWarning", "severity": "warning", **BUDGET, "budget": "chat-daily"}, False),
        ({"alertname": "LLMBudgetCritical", "severity": "critical", **BUDGET},
         {"alertname": "LLMBudgetWarning", "severity": "warning", **BUDGET, "key": "chat"}, False),
        # The budget of the same name of another installation (its external label `cluster`).
        ({"alertname": "LLMBudgetCritical", "severity": "critical", **BUDGET, "cluster": "team-a"},
         {"alertname": "LLMBudgetWarning", "severity": "warning", **BUDGET, "cluster": "team-b"}, False),
        ({"alertname": "LLMBudgetCritical", "severity": "critical", **BUDGET, "cluster": "team-a"},
         {"alertname": "LLMBudgetWarning", "severity": "warning", **BUDGET, "cluster": "team-a"}, True),
        # Critical never mutes critical.
        ({"alertname": "LLMBudgetExceeded", "severity": "critical", **BUDGET},
         {"alertname": "LLMBudgetCritical", "severity": "critical", **BUDGET}, False),
        # A call over the budget's per-request cap is news whatever the budget's level: it names the call.
        ({"alertname": "LLMBudgetExceeded", "severity": "critical", **BUDGET},
         {"alertname": "LLMBudgetRequestCapExceeded", "severity": "warning", **BUDGET}, False),
        ({"alertname": "LLMBudgetCritical", "severity": "critical", **BUDGET},
         {"alertname": "LLMBudgetRequestCapExceeded", "severity": "warning", **BUDGET}, False),
        # Alerts without a budget label are not "the same budget" just because both lack one.
        ({"alertname": "LLMCostSchedulerStalled", "severity": "critical", "job": "llmcost"},
         {"alertname": "LLMCostNotificationsFailing", "severity": "warning", "job": "llmcost"}, False),
        ({"alertname": "LLMBudgetCritical", "severity": "critical", **BUDGET},
         {"alertname": "LLMCostSpike", "severity": "warning", "project": "search"}, False),
    ],
)  # fmt: skip
def test_critical_inhibits_warning_of_the_same_budget_only(
    source: dict[str, str], target: dict[str, str], inhibited: bool
) -> None:
    assert _inhibited(target, source) is inhibited


def test_the_real_alertmanager_delivers_a_request_cap_alert_while_its_budget_is_exceeded(tmp_path: Any) -> None:
    """A budget over its limit and then a call over its per-request cap, as llmcost pushes them (`alertmanager:`
    configured, as in docker-compose.yml): the shipped inhibit rule muted the cap alert as a "warning about the
    same budget", so it never reached the gateway and nobody heard of the runaway call. The budget's own
    forecast warning is still muted."""
    with _shipped_alertmanager(tmp_path) as am:
        pushed = [
            ("LLMBudgetExceeded", "critical", {}),
            ("LLMBudgetForecastOverrun", "warning", {}),
            ("LLMBudgetRequestCapExceeded", "warning", {"period_start": "2026-12-07T00:00:00Z"}),
        ]
        body = [
            {"labels": {"alertname": name, "severity": severity, **BUDGET, **extra, **OURS}}
            for name, severity, extra in pushed
        ]
        assert httpx.post(f"{am}/api/v2/alerts", json=body, timeout=5).status_code == 200

        def muted() -> dict[str, bool] | None:
            found = httpx.get(f"{am}/api/v2/alerts", timeout=5).json()
            by_name = {a["labels"]["alertname"]: bool(a["status"]["inhibitedBy"]) for a in found}
            # Inhibition is decided once Alertmanager holds the source: wait for the muted warning.
            return by_name if len(by_name) == len(pushed) and by_name["LLMBudgetForecastOverrun"] else None

        assert live_stack.wait_until(muted, 20), httpx.get(f"{am}/api/v2/alerts", timeout=5).text
        assert muted() == {
            "LLMBudgetExceeded": False,
            "LLMBudgetForecastOverrun": True,
            "LLMBudgetRequestCapExceeded": False,
        }


def test_llmcost_spikes_are_one_alertmanager_group() -> None:
    """The spikes one detection pass starts (the total, a project, its model) must reach the gateway in one
    delivery to be one message there: a route grouping them by series delivered each on its own, and
    each became its own Slack message and PagerDuty incident (`tests/e2e/test_alertmanager_spike_thread.py`)."""
    spike = {"alertname": "LLMCostSpike", "severity": "warning", **OURS}
    [route] = [r for r in _config()["route"]["routes"] if r.get("matchers") == ['severity="warning"']]
    [child] = [c for c in route.get("routes", []) if c.get("matchers") == ['alertname="LLMCostSpike"']]
    # One group per installation: `cluster` is the external label each installation pushes with.
    assert child["group_by"] == ["alertname", "cluster"]
    assert "receiver" not in child  # the warning route's: the severity still picks the receiver
    for labels in ({}, {"project": "a"}, {"provider": "openai", "model": "gpt-4o"}):
        assert _route({**spike, **labels}, ["llmcost-warning"])[2].startswith("exit 0")
