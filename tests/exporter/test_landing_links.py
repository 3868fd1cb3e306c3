"""The plain page at `/` (served when no console takes it) links only to what a browser may open.

Defect: it always linked `/metrics`, `/v1/budgets` and `/v1/alerts`; once tokens guard them, a link only
ever answers 401 (a browser sends no `Authorization` header), and it listed `/v1/budgets` and `/v1/alerts`
even where nothing serves them (404). Now a guarded path is named as text with the token it needs, as the
console does (`exporter.http.auth.followable`), and the budget and alert paths appear only when served.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from exporter.http.app import build_app
from exporter.services import Services
from tests.support.helpers import make_config

METRICS = "metrics-token-0123456789"
ADMIN = "admin-token-0123456789ab"


async def stand_in(_request: Any) -> PlainTextResponse:
    """Where alerting serves budgets and alerts (guarded by `auth.admin_tokens` there)."""
    return PlainTextResponse("listed\n")


API = [Route("/v1/budgets", stand_in), Route("/v1/alerts", stand_in)]


def followed(html: str) -> set[str]:
    return {part.split('"', 1)[0] for part in html.split('href="')[1:] if part.startswith("/")}


@pytest.mark.parametrize(
    ("auth", "links", "as_text"),
    [
        ({}, {"/metrics", "/v1/budgets", "/v1/alerts"}, set()),
        ({"metrics_tokens": [METRICS]}, {"/v1/budgets", "/v1/alerts"}, {"/metrics"}),
        ({"admin_tokens": [ADMIN]}, {"/metrics"}, {"/v1/budgets", "/v1/alerts"}),
        ({"metrics_tokens": [METRICS], "admin_tokens": [ADMIN]}, set(), {"/metrics", "/v1/budgets", "/v1/alerts"}),
    ],
)
def test_a_guarded_path_is_named_as_text_not_linked(
    sqlite_url: str, auth: dict[str, list[str]], links: set[str], as_text: set[str]
) -> None:
    services = Services.build(make_config(sqlite_url, auth=auth))
    try:
        with TestClient(build_app(services, API)) as client:
            page = client.get("/")
            assert page.status_code == 200
            assert followed(page.text) - {"/healthz", "/readyz"} == links
            for path in as_text:
                assert f"<code>{path}</code>" in page.text
            # The metrics link opens as a browser would follow it (the API paths here are stand-ins).
            assert client.get("/metrics").status_code == (401 if "/metrics" in as_text else 200)
            assert ("(with a metrics token)" in page.text) is ("/metrics" in as_text)
            assert ("(with an admin token)" in page.text) is ("/v1/alerts" in as_text)
    finally:
        services.close()


def test_budget_and_alert_paths_are_listed_only_where_served(sqlite_url: str) -> None:
    services = Services.build(make_config(sqlite_url))
    try:
        with TestClient(build_app(services)) as client:
            page = client.get("/").text
            assert "/v1/budgets" not in page and "/v1/alerts" not in page
            assert client.get("/v1/budgets").status_code == 404
            assert followed(page) == {"/metrics", "/healthz", "/readyz"}
    finally:
        services.close()
