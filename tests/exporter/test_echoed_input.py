"""What a client sent, echoed in a 4xx answer: escaped when it is not printable, bounded, with a hint."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from exporter.http.bounded_requests import BoundedRequests
from exporter.http.store_refusals import StoreRefusals
from tests.support.llmcost_server import ADMIN_TOKEN, INGEST_TOKEN, running_llmcost


@pytest.mark.real_process
def test_a_hostile_parameter_name_or_path_comes_back_escaped_and_a_label_filter_gets_a_hint(tmp_path: Path) -> None:
    with running_llmcost(tmp_path, f"sqlite:///{tmp_path / 'llmcost.db'}") as server:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=server.base, headers=admin, timeout=10) as http:
            # A bidi control in a name turned the rest of the answer around on screen: now escaped.
            alerts = http.get("/v1/alerts?pro%E2%80%AEject=x")
            assert alerts.status_code == 400
            assert alerts.json()["error"] == "'pro\\u202eject': unknown query parameter (allowed: state, limit)"

            summary = http.get("/v1/usage/summary?by=project&pro%E2%80%AEject=x")
            assert summary.status_code == 422
            assert "'pro\\u202eject' (allowed: by, since, until, timezone, session, limit)" in summary.json()["error"]
            assert "\u202e" not in summary.text

            # ?project=search is not a filter here: the answer says which parameter groups by project.
            label = http.get("/v1/usage/summary?project=search").json()["error"]
            allowed = "(allowed: by, since, until, timezone, session, limit)"
            assert label.endswith(f"{allowed}; to list by project: by=project")

            missing = http.get("/nope%E2%80%AE%00").json()
            assert missing["detail"]["path"] == "'/nope\\u202e\\x00'"

            # Field names of a JSON body are the client's too.
            check = http.post(
                "/v1/budgets/check",
                json={"pro\u202eject": "search"},
                headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
            )
            assert check.status_code == 422
            assert "'pro\\u202eject': unknown field (allowed: project," in check.json()["error"]
            reset = http.put("/v1/budgets/b", json={"scope": "global", "period": "daily", "limit": 1})
            assert reset.status_code in (200, 201), reset.text
            reset = http.post("/v1/budgets/b/reset", json={"by": "al", "reason": "r", "\u202ekey": "x"})
            assert reset.json()["error"] == "'\\u202ekey': unknown field (allowed: by, reason, key)"

            # A budget's scope, period, unit or mode is echoed once, bounded (a 3,000-character scope came
            # back twice, whole); a field name is escaped.
            put = http.put("/v1/budgets/c", json={"scope": "s" * 3000, "period": "daily", "limit": 1, "\u202ex": 1})
            assert put.status_code == 422
            assert put.json()["detail"] == [
                "budget.'\\u202ex': unknown field (allowed: description, fallback_model, key, limit, "
                "max_cost_per_request, max_instances, max_tokens_per_request, mode, name, period, scope, "
                "thresholds, timezone, unit)",
                f"budget.scope: must be one of global, project, user, service, model, got '{'s' * 63}…",
                'budget.key: required: a value, or "*" for each value separately',
            ]

            long_name = http.get("/v1/alerts", params={"x" * 5000: "1"}).json()["error"]
            assert long_name.startswith("x" * 64 + "…: unknown query parameter") and len(long_name) < 200


def test_a_path_logged_when_the_store_is_silent_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    # `GET /v1/budgets/x%0aERROR ...` decodes to a path holding a line break, logged with the 503.
    class Silent:
        def known_silent(self) -> bool:
            return False

        async def answers_soon(self) -> bool:
            return False  # refuses connections

    async def never_answers(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.Event().wait()

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    refusals = StoreRefusals(logging.getLogger("exporter.http.app"))
    middleware = BoundedRequests(never_answers, probe=Silent(), retry_headers={}, refusals=refusals, wait=0)  # type: ignore[arg-type]
    scope = {"type": "http", "method": "GET", "path": "/v1/budgets/x\nERROR forged", "headers": []}
    with caplog.at_level(logging.WARNING, logger="exporter.http.app"):
        asyncio.run(middleware(scope, receive, send))
    assert sent[0]["status"] == 503
    [record] = caplog.records
    assert "\n" not in record.getMessage()
    assert record.getMessage() == (
        "store unavailable: the database refuses connections (GET '/v1/budgets/x\\nERROR forged'); answering 503 "
        "with Retry-After until it answers"
    )
