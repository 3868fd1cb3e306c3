"""Requests refused while the store is down are logged once per outage per process, whichever path they took.

Before, the gateway's routes (the Alertmanager, Slack and PagerDuty webhooks, the alerts API) logged
`WARNING store unavailable: …` once per refused request, with libpq's hint on a second line, beside the
once-per-outage warning of ingest (exporter/http/store_refusals.py): Alertmanager retrying every few
seconds, and PagerDuty retrying its webhooks, wrote a warning per attempt for as long as the outage
lasted, and nothing said when it ended. Requests answered 503 because a hung store did not answer
(exporter/http/bounded_requests.py) were logged the same way, one line each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from starlette.types import Message, Receive, Scope, Send

from exporter.http.bounded_requests import BoundedRequests
from exporter.http.store_refusals import StoreRefusals
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers, am_alert, am_payload, pd_event
from tests.support.pg import PostgresCluster


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    started = PostgresCluster().start()  # its own: stopped and started again below
    try:
        yield started
    finally:
        started.destroy()


def store_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if "store" in r.getMessage()]


@pytest.mark.real_process
def test_webhooks_and_api_refused_during_an_outage_log_one_warning_and_one_line_at_its_end(
    cluster: PostgresCluster, rx: Receivers, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with Harness(cluster.create_database(), rx, clock=clock) as h:
        assert h.post_alertmanager(am_payload([am_alert("LLMCostSpike")])).status_code == 200
        caplog.set_level(logging.INFO)
        cluster.stop()
        try:
            for n in range(5):  # Alertmanager and PagerDuty retrying, someone reloading the alerts
                new_alert = am_alert("LLMCostSpike", labels={"project": f"p{n}"})
                assert h.post_alertmanager(am_payload([new_alert])).status_code == 503
                answer = h.pagerduty_webhook(pd_event("incident.acknowledged", "0123456789abcdef"))
                assert answer.status_code == 503
                assert answer.headers["Retry-After"] == "5"
                assert h.admin("GET", "/v1/alerts").status_code == 503
        finally:
            cluster.restart()
        lines = store_lines(caplog)
        assert len(lines) == 1, lines
        [(level, message)] = lines
        assert level == "WARNING"
        assert message.startswith("store unavailable: ") and "\n" not in message, message
        assert message.endswith("; answering 503 with Retry-After until it answers"), message

        assert h.client.get("/readyz").status_code == 200
        assert h.admin("GET", "/v1/alerts").status_code == 200
        ended = store_lines(caplog)[1:]
        assert len(ended) == 1, ended
        assert ended[0][0] == "INFO"
        assert ended[0][1].startswith("store answers again after ")
        assert ended[0][1].endswith("; 15 requests were answered 503 meanwhile"), ended


def test_requests_a_hung_store_leaves_unanswered_are_logged_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    class Silent:  # the store probe finding the database silent
        def known_silent(self) -> bool:
            return True

        async def answers_soon(self) -> bool | None:
            return None

    async def waits_on_the_store(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.Event().wait()

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    answered: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answered.append(message["status"])

    refusals = StoreRefusals(logging.getLogger("test.refusals"))
    middleware = BoundedRequests(waits_on_the_store, probe=Silent(), retry_headers={}, refusals=refusals, wait=0)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO)

    async def requests() -> None:
        for path in ("/v1/alerts", "/v1/budgets", "/v1/alertmanager", "/v1/budgets/check"):
            await middleware({"type": "http", "method": "GET", "path": path, "headers": []}, receive, send)

    asyncio.run(requests())
    assert answered == [503] * 4
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "store unavailable: the database does not answer (GET /v1/alerts); answering 503 with Retry-After "
            "until it answers",
        )
    ]
