"""The links in a spike alert lead somewhere a person can open from Slack: the runbook and the console.

Defect: on the direct path (no Alertmanager, the default) a spike's Slack message, mail and PagerDuty
event carried no link to llmcost but the runbook; through Alertmanager its source link was
`/v1/alerts?state=firing&alertname=LLMCostSpike`, a JSON endpoint that answers 401 to a browser once
admin tokens are configured. Now both paths link to the console's spikes section, which shows the
series' window against its baseline without a token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.testclient import TestClient

from exporter.http.app import build_app
from llmcost.services import open_services
from llmcost.wiring import attach_alerting
from tests.support.clock import FakeClock
from tests.support.gateway_harness import SLACK_TOKEN, Receivers
from tests.support.helpers import make_config
from tests.support.spikes import D0, NOW, spike, usual_spend

ADMIN = "admin-token-0123456789abcdef"


def buttons(message: dict[str, Any]) -> dict[str, str]:
    actions = next(b for b in message["blocks"] if b["type"] == "actions")["elements"]
    return {b["text"]["text"]: b["url"] for b in actions if "url" in b}


def test_a_spike_alert_links_to_the_console_and_the_runbook_and_both_open_without_a_token(
    sqlite_url: str, rx: Receivers, clock: FakeClock
) -> None:
    config = make_config(
        sqlite_url,
        listen="127.0.0.1:9800",
        auth={"admin_tokens": [ADMIN]},
        detection={"series": [["project"]]},
        notifications={"slack": {"token": SLACK_TOKEN, "channel": "#llm-cost", "api_url": rx.slack.api_url}},
        alerting={"tick_interval": 0},
    )
    clock.set(NOW)
    services = open_services(config, clock=clock, start_writer=False)
    try:
        parts = attach_alerting(services, "ingest")
        usual_spend(services.store, D0, NOW)
        spike(services.store)
        parts.spikes.evaluate()
        parts.gateway.deliver_pending()
        (message,) = rx.slack.posted
        links = buttons(message)
        assert set(links) == {"Runbook", "Source"}, links
        with TestClient(build_app(services, parts.routes), base_url="http://127.0.0.1:9800") as browser:
            for name, url in links.items():
                page = browser.get(url)  # as a browser opens it: no Authorization header
                assert page.status_code == 200, (name, url, page.status_code)
            console = browser.get(links["Source"]).text
            assert links["Source"].endswith("/#spikes") and 'id="spikes"' in console
            assert "LLMCostSpike" in console or 'project="a"' in console or ">a<" in console
    finally:
        services.close()


def test_with_grafana_url_a_spike_links_to_the_spikes_dashboard_filtered_on_its_series(
    sqlite_url: str, rx: Receivers, clock: FakeClock
) -> None:
    config = make_config(
        sqlite_url,
        listen="127.0.0.1:9800",
        # Grafana's second organisation, on one of two installations (the dashboard variable filters on project).
        grafana_url="https://grafana.example.com/d/llmcost-overview?orgId=2&var-job=llmcost-prod&var-project=b",
        detection={"series": [["project"]]},
        notifications={"slack": {"token": SLACK_TOKEN, "channel": "#llm-cost", "api_url": rx.slack.api_url}},
        alerting={"tick_interval": 0},
    )
    clock.set(NOW)
    services = open_services(config, clock=clock, start_writer=False)
    try:
        parts = attach_alerting(services, "ingest")
        usual_spend(services.store, D0, NOW)
        spike(services.store)
        parts.spikes.evaluate()
        parts.gateway.deliver_pending()
        (message,) = rx.slack.posted
        link = urlsplit(buttons(message)["Dashboard"])
        query = dict(parse_qsl(link.query))
        assert (link.netloc, link.path) == ("grafana.example.com", "/d/llmcost-spikes-alerts")
        assert query["var-project"] == "a" and query["to"] == "now"
        # The installation and organisation grafana_url names, once each: not the first one Grafana finds.
        assert [k for k, _ in parse_qsl(link.query)].count("orgId") == 1 and query["orgId"] == "2"
        assert query["var-job"] == "llmcost-prod"
        assert int(query["from"]) <= (NOW - 3600) * 1000  # the hour before the spike started, and after
        board = json.loads((Path(__file__).parents[2] / "grafana/dashboards/llmcost-spikes-alerts.json").read_text())
        assert {"project", "job"} <= {v["name"] for v in board["templating"]["list"]}
    finally:
        services.close()
