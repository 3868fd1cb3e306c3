"""With `auth.metrics_tokens` set, the console shows spend only to a holder of a metrics or admin token.

Defect: with `/metrics` guarded by `auth.metrics_tokens` (and admin tokens set), `GET /` with no token
still showed project, model and budget names and every spend figure: the console justified it by
`/metrics` being open, which it no longer was. Now, without a valid bearer token, the page keeps its
structure and its alerts section but leaves the figures out and says why; with a metrics or admin
token in the `Authorization` header it is the full page, as before. Without `auth.metrics_tokens`
nothing changes (tests/alerting/test_console.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from starlette.testclient import TestClient

from exporter.http.app import build_app
from exporter.services import Services
from llmcost.services import open_services
from llmcost.wiring import attach_alerting
from tests.support.clock import FakeClock
from tests.support.helpers import apply_config_budgets, make_config

NOW = 1_796_300_000.0  # 2026-12-03 09:33:20 UTC
ADMIN = "admin-token-0123456789ab"
METRICS = "metrics-token-0123456789"
PROJECT = "zebra-secret-project"
MODEL = "gpt-guarded-model"
BUDGET = "quokka-budget"
BUDGETS = [
    {"name": BUDGET, "scope": "project", "key": PROJECT, "period": "monthly", "limit": 50.0},
    {"name": "wild-wombats", "scope": "project", "key": "*", "period": "daily", "limit": 1.0},
]
SECRETS = (PROJECT, MODEL, BUDGET, "wild-wombats", "$12.34", "12.34")


@contextmanager
def serve(db_url: str, clock: FakeClock, **auth: Any) -> Iterator[TestClient]:
    """The app as `llmcost serve` builds it, with spend for PROJECT on MODEL; the client sends no token."""
    clock.set(NOW)
    config = make_config(db_url, listen="127.0.0.1:9800", auth=auth, budgets=BUDGETS)
    services = open_services(config, clock=clock, start_writer=False)
    try:
        parts = attach_alerting(services, "ingest")
        apply_config_budgets(parts.budgets)
        spend(services)
        with TestClient(build_app(services, parts.routes), base_url="http://127.0.0.1:9800") as client:
            yield client
    finally:
        services.close()


def spend(services: Services) -> None:
    body: dict[str, Any] = {
        "request_id": "guarded-1",
        "timestamp": NOW - 60,
        "provider": "openai",
        "model": MODEL,
        "project": PROJECT,
        "service": "api",
        "cost_usd": 12.34,
        "input_tokens": 100,
        "output_tokens": 10,
    }
    out = services.pipeline.ingest([(0, body)])
    assert not out.rejected, out.rejected


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_hidden(html: str, echoed: str = "") -> None:
    """No name or figure on the page; `echoed`, the budget the request named, only in its refresh link."""
    if echoed:
        assert html.count(echoed) == 1 and f'href="/?budget={echoed}&amp;by=project">refresh' in html
        html = html.replace(echoed, "")
    for secret in SECRETS:
        assert secret not in html, secret
    assert 'data-figures="hidden"' in html
    assert 'id="figures-locked"' in html and "/metrics" in html
    # The page keeps its structure: every section is there, the figures are not.
    for section in ("now", "spend", "budgets", "alerts", "spikes"):
        assert f'<section id="{section}"' in html
    assert "data-usd=" not in html and "<svg" not in html and "data-budget=" not in html


AUTH = {"metrics_tokens": [METRICS], "admin_tokens": [ADMIN]}


@pytest.mark.parametrize("path", ["/", "/?by=model", f"/?budget={BUDGET}", "/?budget=no-such-budget"])
def test_without_a_token_the_page_shows_no_names_and_no_figures(sqlite_url: str, clock: FakeClock, path: str) -> None:
    with serve(sqlite_url, clock, **AUTH) as client:
        page = client.get(path)
        # 200 even for an unknown budget: a 404 would tell who exists.
        assert page.status_code == 200
        echoed = BUDGET if BUDGET in path else ""
        assert_hidden(page.text, echoed)
        # The alerts section is as before: a token form, no alerts.
        assert 'id="token-form"' in page.text and 'id="alerts-locked"' in page.text
        for bad in ("Bearer wrong-token", "Basic " + METRICS, f"Bearer {METRICS}x", ""):
            assert_hidden(client.get(path, headers={"Authorization": bad}).text, echoed)
        # Nothing the page loads carries data either.
        for asset in ("/console/console.js", "/console/console.css"):
            body = client.get(asset).text
            assert all(secret not in body for secret in SECRETS)


@pytest.mark.parametrize("token", [METRICS, ADMIN])
def test_with_a_metrics_or_admin_token_the_page_is_complete(sqlite_url: str, clock: FakeClock, token: str) -> None:
    with serve(sqlite_url, clock, **AUTH) as client:
        html = client.get("/", headers=bearer(token)).text
        assert 'data-figures="hidden"' not in html and 'id="figures-locked"' not in html
        assert PROJECT in html and BUDGET in html and "$12.34" in html
        assert client.get("/?by=model", headers=bearer(token)).text.count(MODEL) >= 1
        one = client.get(f"/?budget={BUDGET}", headers=bearer(token))
        assert one.status_code == 200 and re.search(rf'data-budget="{BUDGET}" data-key="{PROJECT}"', one.text)
        assert client.get("/?budget=no-such-budget", headers=bearer(token)).status_code == 404
        # The metrics token shows figures, not alerts: those stay an admin token's.
        alerts_inline = 'id="alerts-locked"' not in html
        assert alerts_inline is (token == ADMIN)


def test_metrics_tokens_without_admin_tokens_still_offer_a_token_field(sqlite_url: str, clock: FakeClock) -> None:
    with serve(sqlite_url, clock, metrics_tokens=[METRICS]) as client:
        html = client.get("/").text
        assert 'id="token-form"' in html  # else a browser could never show the figures
        # Alerts are open, as `GET /v1/alerts` is without admin tokens (their summaries carry names
        # and figures: guarding them is what admin tokens are for); everything else is hidden.
        assert 'id="alerts-locked"' not in html and "LLMBudgetExceeded" in html
        before, _, rest = html.partition('<section id="alerts">')
        assert_hidden(before + '<section id="alerts">' + rest[rest.index("</section>") :])
        assert PROJECT in client.get("/", headers=bearer(METRICS)).text


def test_without_metrics_tokens_the_figures_are_shown_to_anyone(sqlite_url: str, clock: FakeClock) -> None:
    with serve(sqlite_url, clock, admin_tokens=[ADMIN]) as client:
        html = client.get("/").text
        assert PROJECT in html and BUDGET in html and "$12.34" in html
        assert 'data-figures="hidden"' not in html
