"""The check answer explains itself; resets, per-request caps and fallback models (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from alerting.budgets.http import budget_routes
from exporter.http.app import build_app
from tests.support.budgets import NOON, build, call, ingest
from tests.support.clock import FakeClock

SEARCH_DAILY = {"name": "search-daily", "scope": "project", "key": "search", "period": "daily", "limit": 50.0,
                "mode": "hard"}  # fmt: skip
TOKENS = {"name": "search-tokens", "scope": "project", "key": "search", "period": "daily", "unit": "tokens",
          "limit": 1000, "mode": "hard"}  # fmt: skip
REQUESTS = {"name": "search-requests", "scope": "project", "key": "search", "period": "hourly", "unit": "requests",
            "limit": 10, "mode": "hard"}  # fmt: skip


def entry(answer: dict[str, Any], name: str) -> dict[str, Any]:
    return next(b for b in answer["budgets"] if b["name"] == name)


def test_unknown_fields_are_refused_by_name(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON)
    services, budgets, _ = build(db_url, [SEARCH_DAILY], clock)
    with TestClient(build_app(services, budget_routes(budgets, services.config.auth))) as client:
        answer = client.post("/v1/budgets/check", json={"projectt": "search", "estimated_cost_usd": 1.0})
        assert answer.status_code == 422
        assert "projectt: unknown field" in answer.json()["error"]
        assert any("projectt" in p for p in answer.json()["detail"])
        bad = client.post("/v1/budgets/check", json={"project": "search", "estimated_tokens": -1})
        assert bad.status_code == 422 and "estimated_tokens" in bad.json()["error"]
        ok = client.post("/v1/budgets/check", json={"project": "search", "estimated_tokens": 10})
        assert ok.status_code == 200
    services.close()


def test_a_refusal_names_the_budget_and_its_numbers(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON + 600)
    services, budgets, _ = build(db_url, [SEARCH_DAILY, REQUESTS], clock)
    ingest(services, call("a", NOON + 5, 49.8))
    answer = budgets.check({"project": "search", "estimated_cost_usd": 0.3})
    assert answer["allowed"] is False
    assert answer["state"] == "exceeded"  # never "ok" beside a refusal
    assert answer["reason"] == (
        "project search daily budget search-daily: $49.80 of $50.00 spent, this call's $0.30 would exceed it"
    )
    daily = entry(answer, "search-daily")
    assert daily["spent"] == pytest.approx(49.8) and daily["estimate"] == pytest.approx(0.3)
    assert daily["limit"] == 50.0 and daily["state_after"] == "exceeded" and daily["decided"] is True
    assert daily["state"] == "critical"  # the status fields stay
    requests = entry(answer, "search-requests")
    assert requests["estimate"] == 1 and requests["decided"] is False and requests["state_after"] == "ok"
    fits = budgets.check({"project": "search", "estimated_cost_usd": 0.1})
    assert fits["allowed"] is True and fits["state"] == "critical"
    assert fits["reason"].startswith("allowed: closest is project search daily budget search-daily: $49.80 of $50.00")
    assert budgets.check({"project": "chat"})["reason"] == "no budget applies to project chat"
    services.close()


def test_the_answer_state_never_contradicts_allowed(db_url: str, clock: FakeClock) -> None:
    """`exceeded` is the state of a refusal only: a call a soft or track budget over its limit lets through is
    `critical` at most, while that budget's own entry still says `exceeded` (a client reading `state` alone
    must not block what llmcost allows)."""
    soft = {"name": "chat-soft", "scope": "project", "key": "chat", "period": "daily", "limit": 1.0, "mode": "soft"}
    track = {**soft, "name": "chat-track", "mode": "track"}
    clock.set(NOON + 600)
    services, budgets, _ = build(db_url, [SEARCH_DAILY, soft, track], clock)
    ingest(services, call("c1", NOON + 5, 1.5, project="chat"), call("s1", NOON + 6, 49.9))
    with TestClient(build_app(services, budget_routes(budgets, services.config.auth))) as client:
        let_through = client.post("/v1/budgets/check", json={"project": "chat", "estimated_cost_usd": 0.1}).json()
        assert let_through["allowed"] is True and let_through["state"] == "critical"
        assert {b["name"]: b["state"] for b in let_through["budgets"]} == {
            "chat-soft": "exceeded",
            "chat-track": "exceeded",
        }
        assert "only hard budgets refuse" in let_through["reason"]
        refused = client.post("/v1/budgets/check", json={"project": "search", "estimated_cost_usd": 0.2}).json()
        assert refused["allowed"] is False and refused["state"] == "exceeded"
        for body in ({"project": "chat"}, {"project": "search", "estimated_cost_usd": 0.05}, {"project": "x"}):
            answer = client.post("/v1/budgets/check", json=body).json()
            assert (answer["state"] == "exceeded") is (answer["allowed"] is False), answer
    services.close()


def test_token_and_request_estimates_count_against_their_budgets(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON + 600)
    services, budgets, _ = build(db_url, [TOKENS, REQUESTS], clock)
    ingest(services, *[call(f"r{i}", NOON + i, 0.01) for i in range(8)])  # 110 tokens and 1 request each
    answer = budgets.check({"project": "search", "estimated_tokens": 150})
    assert answer["allowed"] is False
    assert entry(answer, "search-tokens")["decided"] is True
    assert "search-tokens: 880 tokens of 1,000 tokens spent, this call's 150 tokens would exceed it" in answer["reason"]
    assert budgets.check({"project": "search", "estimated_tokens": 100})["allowed"] is True
    answer = budgets.check({"project": "search", "estimated_tokens": 10, "estimated_requests": 3})
    assert answer["allowed"] is False and entry(answer, "search-requests")["decided"] is True
    assert entry(answer, "search-requests")["estimate"] == 3
    services.close()


def test_per_request_caps_refuse_whatever_the_spend_and_suggest_the_fallback(db_url: str, clock: FakeClock) -> None:
    capped = {**SEARCH_DAILY, "limit": 1000.0, "max_cost_per_request": 0.5, "max_tokens_per_request": 4000,
              "fallback_model": "gpt-4o-mini"}  # fmt: skip
    soft = {"name": "chat-soft", "scope": "project", "key": "chat", "period": "daily", "limit": 1.0, "mode": "soft",
            "fallback_model": "claude-haiku-4-5"}  # fmt: skip
    clock.set(NOON + 600)
    services, budgets, _ = build(db_url, [capped, soft], clock)
    answer = budgets.check({"project": "search", "estimated_cost_usd": 0.8})
    assert answer["allowed"] is False and answer["fallback_model"] == "gpt-4o-mini"
    assert "per-request cap of $0.50" in answer["reason"]
    answer = budgets.check({"project": "search", "estimated_cost_usd": 0.1, "estimated_tokens": 5000})
    assert answer["allowed"] is False and "per-request cap of 4,000 tokens" in answer["reason"]
    fine = budgets.check({"project": "search", "estimated_cost_usd": 0.1, "estimated_tokens": 100})
    assert fine["allowed"] is True and "fallback_model" not in fine
    ingest(services, call("c1", NOON + 5, 1.2, project="chat"))
    over = budgets.check({"project": "chat", "estimated_cost_usd": 0.1})
    assert over["allowed"] is True  # a soft budget never refuses, it suggests the cheaper model
    assert over["fallback_model"] == "claude-haiku-4-5"
    assert over["state"] == "critical" and entry(over, "chat-soft")["state"] == "exceeded"  # its own entry only
    assert "only hard budgets refuse" in over["reason"]
    services.close()


def test_an_ingested_call_over_a_per_request_cap_is_counted_and_alerts(db_url: str, clock: FakeClock) -> None:
    capped = {**SEARCH_DAILY, "limit": 1000.0, "max_cost_per_request": 0.5}
    clock.set(NOON + 600)
    services, budgets, sink = build(db_url, [capped], clock)
    ingest(services, call("small", NOON + 5, 0.2), call("big", NOON + 6, 2.5))
    assert budgets.status("search-daily")["spent"] == pytest.approx(2.7)  # counted
    fired = [f for f in sink.fired if f[0] == "LLMBudgetRequestCapExceeded"]
    assert len(fired) == 1  # one alert for the one call over the cap
    assert fired[0][1].items() >= {"budget": "search-daily", "scope": "project", "key": "search"}.items()
    assert "call big cost $2.50, over the $0.50 cap" in sink.annotations(fired[0][0], fired[0][1])["summary"]
    services.close()


@pytest.mark.parametrize(
    ("cap", "cost", "alert", "check"),
    [
        # Rounded to cents, a $0.005 cap read "over the $0.01 cap" beside a call of $0.006 (budgets/amounts.py).
        (0.005, 0.006, "cost $0.006, over the $0.005 cap", "estimated $0.006 exceeds its per-request cap of $0.005"),
        # In cents, a $0.5049 call read "$0.50, over the $0.50 cap" in the alert and the check's reason.
        (0.5, 0.5049, "cost $0.505, over the $0.500 cap", "estimated $0.505 exceeds its per-request cap of $0.500"),
    ],
)
def test_a_per_request_cap_and_the_call_over_it_never_read_alike(
    db_url: str, clock: FakeClock, cap: float, cost: float, alert: str, check: str
) -> None:
    capped = {**SEARCH_DAILY, "limit": 1000.0, "max_cost_per_request": cap}
    clock.set(NOON + 600)
    services, budgets, sink = build(db_url, [capped], clock)
    ingest(services, call("big", NOON + 6, cost))
    fired = [f for f in sink.fired if f[0] == "LLMBudgetRequestCapExceeded"]
    assert alert in sink.annotations(fired[0][0], fired[0][1])["summary"]
    assert check in budgets.check({"project": "search", "estimated_cost_usd": cost})["reason"]
    services.close()


def test_reset_starts_a_fresh_count_is_audited_and_resolves_alerts(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON + 600)
    services, budgets, sink = build(db_url, [SEARCH_DAILY], clock)
    ingest(services, call("a", NOON + 5, 49.9))
    budgets.evaluate()
    assert "LLMBudgetCritical" in sink.names()
    assert budgets.check({"project": "search", "estimated_cost_usd": 1.0})["allowed"] is False
    clock.now += 60
    with TestClient(build_app(services, budget_routes(budgets, services.config.auth))) as client:
        assert client.post("/v1/budgets/search-daily/reset", json={}).status_code == 422  # who resets is required
        done = client.post("/v1/budgets/search-daily/reset", json={"by": "carol", "reason": "new quota"})
        assert done.status_code == 200, done.text
        record = done.json()["resets"][0]
        assert record["reset_by"] == "carol" and record["spent_before"] == pytest.approx(49.9)
        status = client.get("/v1/budgets/search-daily").json()
        assert status["spent"] == 0 and status["reset_at"] == record["reset_at"]
    assert not sink.names()  # resolved by the reset
    assert budgets.check({"project": "search", "estimated_cost_usd": 1.0})["allowed"] is True
    ingest(services, call("b", NOON + 700, 2.0))
    assert budgets.status("search-daily")["spent"] == pytest.approx(2.0)
    # A definition change rebuilds the period from the rollups, and keeps the reset.
    budgets.apply_config((), origin_ref="nothing")  # another file's apply leaves it alone
    from alerting.budgets.definition import parse_budgets_section

    problems: list[str] = []
    section = parse_budgets_section([{**SEARCH_DAILY, "limit": 60.0}], problems)
    budgets.apply_config(section.items, origin_ref="/etc/llmcost/test.yml")
    assert budgets.status("search-daily")["spent"] == pytest.approx(2.0)
    assert budgets.resets("search-daily")[0]["reason"] == "new quota"
    services.close()


def test_a_reset_retried_with_nothing_spent_since_is_recorded_once(db_url: str, clock: FakeClock) -> None:
    """A reset whose first attempt landed after its client was told 503 (the database paused) and was
    retried wrote a second audit record; the retry is that reset now. A reset after new spend is a new one."""
    clock.set(NOON + 600)
    services, budgets, _ = build(db_url, [SEARCH_DAILY], clock)
    ingest(services, call("a", NOON + 5, 12.5))
    first = budgets.reset("search-daily", by="carol", reason="new quota")
    clock.now += 30
    again = budgets.reset("search-daily", by="carol", reason="new quota")
    assert again == first and again[0]["spent_before"] == pytest.approx(12.5)
    assert len(budgets.resets("search-daily")) == 1
    budgets.reset("search-daily", by="dave", reason="new quota")  # someone else's reset is their own
    ingest(services, call("b", NOON + 700, 2.0))
    clock.now += 30
    budgets.reset("search-daily", by="carol", reason="new quota")
    assert [(r["reset_by"], r["cost_usd"]) for r in budgets.resets("search-daily")] == [
        ("carol", pytest.approx(2.0)),
        ("dave", 0),
        ("carol", pytest.approx(12.5)),
    ]
    services.close()


def test_api_and_cli_budgets_use_the_config_validation(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON)
    services, budgets, _ = build(db_url, [SEARCH_DAILY], clock)
    from alerting.budgets.service import BudgetError

    with pytest.raises(BudgetError) as info:
        budgets.put("x", {"scope": "project", "period": "daily", "limit": 1, "max_cost_per_request": -2}, origin="cli")
    assert info.value.status == 422
    assert any("max_cost_per_request" in p for p in info.value.detail)
    budgets.put("mine", {"scope": "user", "key": "bob", "period": "daily", "limit": 5}, origin="cli", mode="create")
    with pytest.raises(BudgetError) as info:
        budgets.put("mine", {"scope": "user", "key": "bob", "period": "daily", "limit": 5}, mode="create")
    assert info.value.status == 409
    budgets.put("mine", {"limit": 7, "fallback_model": "gpt-4o-mini"}, origin="cli", mode="update")
    assert budgets.get("mine").limit == 7 and budgets.get("mine").fallback_model == "gpt-4o-mini"
    assert budgets.origin("mine")["origin"] == "cli"
    with pytest.raises(BudgetError) as info:
        budgets.put("search-daily", {"limit": 1}, origin="cli", mode="update")
    assert info.value.status == 409  # the config file owns it
    with pytest.raises(BudgetError) as info:
        budgets.delete("search-daily")
    assert info.value.status == 409
    services.close()


def test_a_reset_resolves_the_gateway_alerts_saying_who_and_why(sqlite_url: str, clock: FakeClock) -> None:
    from alerting.budgets.definition import parse_budgets_section
    from llmcost.services import open_services
    from llmcost.wiring import attach_alerting
    from tests.support.helpers import make_config

    clock.set(NOON + 600)  # on the real clock, a call 5 s back was yesterday's from 00:00:00 to 00:00:05 UTC
    services = open_services(make_config(sqlite_url, budgets=[SEARCH_DAILY]), clock=clock, start_writer=False)
    parts = attach_alerting(services, "ingest")
    budgets, gateway = parts.budgets, parts.gateway
    budgets.apply_config(parse_budgets_section([SEARCH_DAILY], []).items, origin_ref="test")
    ingest(services, call("a", budgets.clock() - 5, 60.0))
    firing = gateway.alerts("firing")
    assert {a.alertname for a in firing} >= {"LLMBudgetExceeded"}
    budgets.reset("search-daily", by="carol", reason="quota raised")
    assert not gateway.alerts("firing")
    history = gateway.history(firing[0].id)
    assert history[-1]["action"] == "resolved" and history[-1]["by"] == "carol"
    assert history[-1]["comment"] == "budget reset by carol: quota raised"
    services.close()


def test_a_delete_retried_after_its_budget_went_but_not_its_alerts_resolves_them(
    sqlite_url: str, clock: FakeClock
) -> None:
    """A DELETE removes the budget, then resolves its alerts, in two transactions. When the database went
    away between them (the client told 503), the budget was gone and its alerts fired on; the client's
    retry got 404 and left them so. The retry still answers 404, and resolves them."""
    from alerting.budgets.definition import parse_budgets_section
    from llmcost.services import open_services
    from llmcost.wiring import attach_alerting
    from tests.support.helpers import make_config

    clock.set(NOON + 600)  # on the real clock, a call 5 s back was yesterday's from 00:00:00 to 00:00:05 UTC
    services = open_services(make_config(sqlite_url), clock=clock, start_writer=False)
    parts = attach_alerting(services, "ingest")
    budgets, gateway = parts.budgets, parts.gateway
    budgets.put("search-daily", parse_budgets_section([SEARCH_DAILY], []).items[0].to_json())
    ingest(services, call("a", budgets.clock() - 5, 60.0))
    assert {a.alertname for a in gateway.alerts("firing")} >= {"LLMBudgetExceeded"}
    budgets.registry.delete("search-daily")  # the first attempt's removal landed; its resolves did not
    with TestClient(build_app(services, budget_routes(budgets, services.config.auth))) as client:
        retried = client.delete("/v1/budgets/search-daily")
    assert retried.status_code == 404, retried.text
    assert not gateway.alerts("firing")
    services.close()
