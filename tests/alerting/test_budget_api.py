"""Budgets from outside: the HTTP API (list, create, refuse, check, delete) and a SIGHUP reload of the config file."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from alerting.budgets.http import budget_routes
from exporter.http.app import build_app
from tests.support.budgets import ADMIN, DAILY, INGEST, NOON, PER_PROJECT, build
from tests.support.clock import FakeClock
from tests.support.waiting import wait_until


def test_budget_http_api(sqlite_url: str, clock: FakeClock) -> None:
    clock.set(NOON)
    services, budgets, _ = build(sqlite_url, [DAILY], clock, auth={"admin_tokens": [ADMIN], "ingest_tokens": [INGEST]})
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(build_app(services, budget_routes(budgets, services.config.auth))) as client:
        assert client.get("/v1/budgets").status_code == 401
        listed = client.get("/v1/budgets", headers=admin).json()["budgets"]
        assert [b["name"] for b in listed] == ["daily"]
        created = client.put(
            "/v1/budgets/team", headers=admin, json={"scope": "project", "key": "chat", "period": "weekly", "limit": 5}
        )
        assert created.status_code == 200
        assert created.json()["status"]["period_start"] == "2026-11-09T00:00:00Z"  # Monday
        assert client.put("/v1/budgets/daily", headers=admin, json=DAILY).status_code == 409
        bad = client.put("/v1/budgets/x", headers=admin, json={"period": "daily"})
        assert bad.status_code == 422
        assert "budget.limit: must be a number > 0, got None" in bad.json()["detail"]
        assert (
            client.put(
                "/v1/budgets/x",
                headers=admin,
                content=b"{",
            ).status_code
            == 400
        )
        assert client.get("/v1/budgets/nope", headers=admin).status_code == 404
        assert client.post("/v1/budgets/check", json={"project": "chat"}).status_code == 401
        answer = client.post(
            "/v1/budgets/check", headers={"Authorization": f"Bearer {INGEST}"}, json={"project": "chat"}
        )
        assert answer.json()["allowed"] is True
        assert client.delete("/v1/budgets/team", headers=admin).status_code == 204
    services.close()


@pytest.mark.real_process  # starts a real `llmcost serve` and signals it
def test_sighup_reloads_budgets_from_the_config_file(tmp_path, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    import signal

    import httpx
    import yaml

    from tests.support.procs import LlmcostProcess

    config = tmp_path / "llmcost.yml"
    config.write_text(yaml.safe_dump({"budgets": [DAILY, PER_PROJECT]}))
    proc = LlmcostProcess(sqlite_url, config=config).start(tmp_path)
    try:
        assert httpx.get(f"{proc.base}/v1/budgets/daily").json()["limit"] == 100.0
        config.write_text(yaml.safe_dump({"budgets": [{**DAILY, "limit": 250.0}]}))
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: httpx.get(f"{proc.base}/v1/budgets/daily").json()["limit"] == 250.0,
            timeout=10,
            what="the reloaded limit",
        )
        assert httpx.get(f"{proc.base}/v1/budgets/per-project").status_code == 404
        config.write_text("budgets: [{name: broken}]")  # invalid: refused, the running budgets stay
        proc.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "config reload refused, nothing changed" in proc.log(), timeout=10, what="the refusal")
        assert httpx.get(f"{proc.base}/v1/budgets/daily").json()["limit"] == 250.0
        assert proc.proc.poll() is None
    finally:
        proc.stop()
    assert "config reload refused, nothing changed" in proc.log()


def test_a_budget_whose_name_has_a_slash_is_reachable_percent_encoded(sqlite_url: str, clock: FakeClock) -> None:
    # Names like "team/search" are valid in the config; the alert links already percent-encode the name
    # (`/v1/budgets/team%2Fsearch`), which the server decodes before routing, so it used to answer 404.
    clock.set(NOON)
    slashed = {**DAILY, "name": "team/search"}
    services, budgets, _ = build(sqlite_url, [slashed, {**DAILY, "name": "team"}], clock)
    with TestClient(build_app(services, budget_routes(budgets, services.config.auth))) as client:
        shown = client.get("/v1/budgets/team%2Fsearch")
        assert shown.status_code == 200, shown.text
        assert shown.json()["name"] == "team/search"
        assert client.get("/v1/budgets/team").json()["name"] == "team"

        weekly = {"scope": "project", "key": "chat", "period": "weekly", "limit": 5}
        created = client.put("/v1/budgets/chat%2Fweekly", json=weekly)
        assert created.status_code == 200, created.text
        assert created.json()["definition"]["name"] == "chat/weekly"
        assert "chat/weekly" in [b["name"] for b in client.get("/v1/budgets").json()["budgets"]]

        # The reset route ends in `/reset`: the budget is the whole name before it, slashes included.
        reset = client.post("/v1/budgets/team%2Fsearch/reset", json={"by": "ops", "reason": "test"})
        assert reset.status_code == 200, reset.text
        assert reset.json()["status"]["name"] == "team/search"

        assert client.delete("/v1/budgets/chat%2Fweekly").status_code == 204
        assert client.get("/v1/budgets/chat%2Fweekly").status_code == 404
        assert client.get("/v1/budgets/team%2Fsearch").status_code == 200  # its neighbour untouched
    services.close()


def test_a_reset_body_with_a_wrong_field_names_it(sqlite_url: str, clock: FakeClock) -> None:
    # `{"by": "ops", "reasn": "quota raised"}` got "body must be an object with by …, reason and … key"
    # (detail null): the person could not see which of the three fields was wrong.
    clock.set(NOON)
    services, budgets, _ = build(sqlite_url, [DAILY], clock)
    with TestClient(build_app(services, budget_routes(budgets, services.config.auth))) as client:
        misspelt = client.post("/v1/budgets/daily/reset", json={"by": "ops", "reasn": "quota raised"})
        assert misspelt.status_code == 422
        assert misspelt.json() == {
            "error": "reasn: unknown field (allowed: by, reason, key)",
            "detail": {"field": "reasn"},
        }
        nobody = client.post("/v1/budgets/daily/reset", json={"reason": "quota raised"})
        assert nobody.status_code == 422
        assert nobody.json() == {"error": "by: required (who resets; recorded)", "detail": {"field": "by"}}
        numeric = client.post("/v1/budgets/daily/reset", json={"by": "ops", "key": 5})
        assert numeric.status_code == 422 and numeric.json()["detail"] == {"field": "key"}
        assert client.post("/v1/budgets/daily/reset", json=["by"]).json()["detail"] == {"field": "body"}
        assert client.post("/v1/budgets/daily/reset", json={"by": "ops", "reason": "r"}).status_code == 200
    services.close()
