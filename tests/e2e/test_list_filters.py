"""The list endpoints' filters on a real `llmcost serve`: a misspelt one is refused, never ignored.

`GET /v1/alerts` filters by `state`, `GET /v1/notifications` by `status` and `channel`; the budgets API
takes no query parameter. The runbook's
`curl '…/v1/notifications?status=dead&channel=…'` typed with the other endpoint's word
(`?state=dead`), or `/v1/alerts?status=firing`, answered 200 with every row: resolved alerts read as
firing, sent notifications as dead letters. An unknown parameter is now a 400 naming it and the ones
the endpoint takes, as a bad value of a known one is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.llmcost_server import ADMIN_TOKEN, running_llmcost
from tests.support.procs import LlmcostProcess

pytestmark = pytest.mark.real_process

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[LlmcostProcess]:
    with running_llmcost(tmp_path, sqlite_url) as running:
        yield running


@pytest.mark.parametrize(
    ("query", "field", "allowed"),
    [
        ("/v1/alerts?status=firing", "status", "state, limit"),
        ("/v1/alerts?stat=firing", "stat", "state, limit"),
        ("/v1/notifications?state=dead", "state", "status, channel, alert_id, limit"),
        ("/v1/notifications?status=dead&chanel=slack", "chanel", "status, channel, alert_id, limit"),
    ],
)
def test_a_misspelt_filter_is_refused_naming_it(server: LlmcostProcess, query: str, field: str, allowed: str) -> None:
    answer = httpx.get(server.base + query, headers=ADMIN, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json() == {
        "error": f"{field}: unknown query parameter (allowed: {allowed})",
        "detail": {"field": field},
    }


@pytest.mark.parametrize(
    ("method", "query", "field", "takes"),
    [
        ("GET", "/v1/budgets?name=team-a", "name", "this endpoint takes none"),
        ("GET", "/v1/budgets/team-a?period=last", "period", "allowed: periods"),  # periods: the budget's history
        ("PUT", "/v1/budgets/team-a?dry_run=true", "dry_run", "this endpoint takes none"),
    ],
)
def test_a_query_parameter_on_the_budgets_api_is_refused_naming_it(
    server: LlmcostProcess, method: str, query: str, field: str, takes: str
) -> None:
    # `GET /v1/budgets?name=team-a` answered every budget as if filtered; `PUT …?dry_run=true` changed it.
    body = {"limit_usd": 100, "period": "monthly", "scope": "global"}
    answer = httpx.request(method, server.base + query, headers=ADMIN, json=body, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json() == {
        "error": f"{field}: unknown query parameter ({takes})",
        "detail": {"field": field},
    }
    assert httpx.get(server.base + "/v1/budgets", headers=ADMIN, timeout=10).json() == {"budgets": []}


def test_a_filter_given_twice_is_refused(server: LlmcostProcess) -> None:
    answer = httpx.get(server.base + "/v1/alerts?state=firing&state=resolved", headers=ADMIN, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "state: given more than once"


def test_the_documented_filters_still_answer(server: LlmcostProcess) -> None:
    for query in ("/v1/alerts?state=firing&limit=5", "/v1/notifications?status=dead&channel=slack&limit=5"):
        answer = httpx.get(server.base + query, headers=ADMIN, timeout=10)
        assert answer.status_code == 200 and answer.json() == [], (query, answer.text)
