"""The links in a budget alert lead somewhere a person can open from Slack, a mail or PagerDuty.

Defect: through Alertmanager a budget alert's source link (`generatorURL`, which Alertmanager hands on
to every receiver) was `<external_url>/v1/budgets/NAME`, the JSON API, which answers 401 to a browser
once admin tokens are configured; on the direct path a budget alert carried no link to llmcost but the
runbook. Now both paths link to the budget's row in the console, `<external_url>/#budget-NAME` (NAME
percent-encoded whole, as the console's own links encode it), which opens without a token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from alerting.budgets.definition import parse_budgets_section
from exporter.http.app import build_app
from exporter.services import Services
from llmcost.services import open_services
from llmcost.wiring import AlertingParts, attach_alerting
from tests.support.budgets import NOON, call, ingest
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Receivers, gateway_config
from tests.support.helpers import make_config
from tests.support.recording_servers import RecordingServer
from tests.support.waiting import wait_until

BUDGET = "team/a monthly"  # a "/" and a space: both must survive the link
ENCODED = "team%2Fa%20monthly"
BUDGETS = [{"name": BUDGET, "scope": "project", "key": "search", "period": "monthly", "limit": 10.0}]
ADMIN = "admin-token-0123456789ab"  # gateway_config's admin token
LISTEN = "127.0.0.1:9800"
_HREF = re.compile(r'href="([^"]+)"')


def _start(config: Any, clock: FakeClock) -> tuple[Services, AlertingParts]:
    clock.set(NOON)
    services = open_services(config, clock=clock, start_writer=False)
    parts = attach_alerting(services, "ingest")
    parts.budgets.apply_config(parse_budgets_section(BUDGETS, []).items, origin_ref="/etc/llmcost/test.yml")
    ingest(services, call("r1", NOON - 60, 12.0))  # over the $10 limit: LLMBudgetExceeded
    parts.budgets.evaluate()
    return services, parts


def _open_each(services: Services, parts: AlertingParts, links: dict[str, str]) -> None:
    """Open every link as a browser does from a message: a GET without an Authorization header."""
    with TestClient(build_app(services, parts.routes), base_url=f"http://{LISTEN}") as browser:
        for name, url in links.items():
            page = browser.get(url)
            assert page.status_code == 200, (name, url, page.status_code)
            if "#budget-" in url:  # the console, with the row the fragment names
                assert url.endswith(f"/#budget-{ENCODED}"), url
                assert f'id="budget-{ENCODED}"' in page.text, "the console has no anchor for the budget"


def test_every_link_of_a_budget_alert_on_the_direct_path_opens_without_a_token(
    sqlite_url: str, rx: Receivers, clock: FakeClock
) -> None:
    config = gateway_config(sqlite_url, rx, alerting={"tick_interval": 0})
    config.listen = LISTEN
    services, parts = _start(config, clock)
    try:
        parts.gateway.deliver_pending()
        (message,) = rx.slack.posted
        actions = next(b for b in message["blocks"] if b["type"] == "actions")["elements"]
        slack = {f"slack {b['text']['text']}": b["url"] for b in actions if "url" in b}
        (mail,) = rx.smtp.messages
        html = {f"mail html {i}": url for i, url in enumerate(_HREF.findall(mail.part("text/html")))}
        text = {f"mail text {i}": u for i, u in enumerate(re.findall(r"https?://\S+", mail.part("text/plain")))}
        (event,) = rx.pagerduty.events
        pagerduty = {f"pagerduty {link['text']}": link["href"] for link in event["links"]}
        if "client_url" in event:
            pagerduty["pagerduty client_url"] = event["client_url"]
        links = {**slack, **html, **text, **pagerduty}
        assert set(slack) == {"slack Runbook", "slack Source"}, slack
        assert sum("#budget-" in url for url in links.values()) == 5, links  # Slack, 2 in mail, 2 in PagerDuty
        _open_each(services, parts, links)
    finally:
        services.close()


@pytest.fixture
def alertmanager() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


def _push_budget_alert(parts: AlertingParts, alertmanager: RecordingServer) -> dict[str, Any]:
    """Push llmcost's alerts to the recording Alertmanager once; the last budget alert it received."""
    assert parts.pusher is not None
    parts.pusher.push()
    pushed = wait_until(
        lambda: [a for r in alertmanager.requests for a in r.json if a["labels"].get("budget") == BUDGET],
        timeout=10,
        what="the budget alert pushed to Alertmanager",
    )
    return dict(pushed[-1])


def test_the_source_link_of_a_budget_alert_pushed_to_alertmanager_opens_without_a_token(
    sqlite_url: str, alertmanager: RecordingServer, clock: FakeClock
) -> None:
    config = make_config(
        sqlite_url,
        listen=LISTEN,
        auth={"admin_tokens": [ADMIN]},
        alertmanager={"urls": [alertmanager.url.rstrip("/")]},
        alerting={"tick_interval": 0},
    )
    services, parts = _start(config, clock)
    try:
        alert = _push_budget_alert(parts, alertmanager)
        links = {"generatorURL": alert["generatorURL"], "runbook_url": alert["annotations"]["runbook_url"]}
        _open_each(services, parts, links)
        assert links["generatorURL"] == f"http://{LISTEN}/#budget-{ENCODED}"
    finally:
        services.close()


def test_a_budget_alert_pushed_to_alertmanager_carries_its_dashboard_link(
    sqlite_url: str, alertmanager: RecordingServer, clock: FakeClock
) -> None:
    """With `grafana_url` set, the direct path gives a budget alert a Dashboard link (its `dashboard_url`
    annotation: Slack button, mail link, PagerDuty link). Through Alertmanager (`alertmanager:` configured, as
    in docker-compose.yml) the alert comes back to the gateway with the annotations llmcost pushed, and those
    lacked it: the same alert reached people without the way to its dashboard."""
    config = make_config(
        sqlite_url,
        listen=LISTEN,
        grafana_url="https://grafana.example.com/d/llmcost-overview",
        alertmanager={"urls": [alertmanager.url.rstrip("/")]},
        alerting={"tick_interval": 0},
    )
    services, parts = _start(config, clock)
    try:
        annotations = _push_budget_alert(parts, alertmanager)["annotations"]
        assert annotations.get("dashboard_url") == f"https://grafana.example.com/d/llmcost-budgets?var-budget={ENCODED}"
    finally:
        services.close()
