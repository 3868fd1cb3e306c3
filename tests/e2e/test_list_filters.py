"""The list endpoints' filters on a real `llmcost serve`: a misspelt one is refused, never ignored.

`GET /v1/alerts` filters by `state`, `GET /v1/notifications` by `status` and `channel`. The runbook's
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
        ("/v1/notifications?state=dead", "state", "status, channel, limit"),
        ("/v1/notifications?status=dead&chanel=slack", "chanel", "status, channel, limit"),
    ],
)
def test_a_misspelt_filter_is_refused_naming_it(server: LlmcostProcess, query: str, field: str, allowed: str) -> None:
    answer = httpx.get(server.base + query, headers=ADMIN, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json() == {
        "error": f"{field}: unknown query parameter (allowed: {allowed})",
        "detail": {"field": field},
    }


def test_a_filter_given_twice_is_refused(server: LlmcostProcess) -> None:
    answer = httpx.get(server.base + "/v1/alerts?state=firing&state=resolved", headers=ADMIN, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "state: given more than once"


def test_the_documented_filters_still_answer(server: LlmcostProcess) -> None:
    for query in ("/v1/alerts?state=firing&limit=5", "/v1/notifications?status=dead&channel=slack&limit=5"):
        answer = httpx.get(server.base + query, headers=ADMIN, timeout=10)
        assert answer.status_code == 200 and answer.json() == [], (query, answer.text)
