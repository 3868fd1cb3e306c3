"""The check answer's `reason` says what happens: landing exactly on the limit, amounts before and after the
call, sub-cent amounts and calls without the budget's label (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from tests.support.budgets import NOON, build, call, ingest
from tests.support.clock import FakeClock

EDGE = {"name": "edge", "scope": "project", "key": "edge", "period": "daily", "unit": "requests", "limit": 2,
        "mode": "hard"}  # fmt: skip
DOLLAR = {"name": "dollar", "scope": "project", "key": "edge", "period": "daily", "limit": 1.0, "mode": "hard",
          "fallback_model": "gpt-4o-mini"}  # fmt: skip


def decided(answer: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in answer["budgets"] if b["decided"])


def test_a_call_that_lands_exactly_on_a_hard_limit_is_allowed_and_said_so(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON + 600)
    services, budgets, _ = build(db_url, [EDGE], clock)
    ingest(services, call("a", NOON + 5, 0.01, project="edge"))
    answer = budgets.check({"project": "edge"})  # estimated_requests defaults to 1: this call
    assert answer["allowed"] is True
    assert answer["reason"] == (
        "allowed: project edge daily budget edge (hard) reaches its limit exactly with this call "
        "(2 of 2 requests after it); the next call will be refused"
    )
    assert decided(answer)["state_after"] == "exceeded"  # its ratio is 1.0 once the call is recorded
    ingest(services, call("b", NOON + 6, 0.01, project="edge"))
    refused = budgets.check({"project": "edge"})
    assert refused["allowed"] is False
    assert refused["reason"] == (
        "project edge daily budget edge: 2 requests of 2 requests spent, this call's 1 request would exceed it"
    )
    services.close()


def test_the_fallback_model_is_only_suggested_past_the_limit(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON + 600)
    services, budgets, _ = build(db_url, [DOLLAR], clock)
    ingest(services, call("a", NOON + 5, 0.70, project="edge"))
    exact = budgets.check({"project": "edge", "estimated_cost_usd": 0.30})
    assert exact["allowed"] is True and "fallback_model" not in exact
    assert "reaches its limit exactly with this call ($1.00 of $1.00 after it)" in exact["reason"]
    assert "over its limit" not in exact["reason"]
    over = budgets.check({"project": "edge", "estimated_cost_usd": 0.31})
    assert over["allowed"] is False and over["fallback_model"] == "gpt-4o-mini"
    services.close()


def test_an_allowed_call_past_a_soft_limit_shows_spend_before_and_after(db_url: str, clock: FakeClock) -> None:
    soft = {**DOLLAR, "name": "soft", "limit": 0.5, "mode": "soft"}
    clock.set(NOON + 600)
    services, budgets, _ = build(db_url, [soft], clock)
    ingest(services, call("a", NOON + 5, 0.60, project="edge"))
    answer = budgets.check({"project": "edge", "estimated_cost_usd": 0.30})
    assert answer["allowed"] is True and answer["fallback_model"] == "gpt-4o-mini"
    assert answer["reason"] == (
        "allowed: project edge daily budget soft (soft) will be over its limit after this call "
        "($0.60 of $0.50 spent, $0.90 after this call's $0.30), but only hard budgets refuse"
    )
    services.close()


def test_amounts_below_a_cent_keep_their_digits(db_url: str, clock: FakeClock) -> None:
    capped = {**DOLLAR, "max_cost_per_request": 0.0005}
    clock.set(NOON + 600)
    services, budgets, _ = build(db_url, [capped], clock)
    ingest(services, call("a", NOON + 5, 0.0002, project="edge"))
    answer = budgets.check({"project": "edge", "estimated_cost_usd": 0.0003})
    assert answer["allowed"] is True
    assert "$0.0002 of $1.00 spent, $0.0005 (0%) after this call" in answer["reason"]
    refused = budgets.check({"project": "edge", "estimated_cost_usd": 0.0007})
    assert "this call's estimated $0.0007 exceeds its per-request cap of $0.0005" in refused["reason"]
    services.close()


def test_a_key_star_budget_checked_without_its_label_names_the_empty_key(db_url: str, clock: FakeClock) -> None:
    per_project = {"name": "perproj", "scope": "project", "key": "*", "period": "daily", "limit": 10.0}
    clock.set(NOON + 600)
    services, budgets, _ = build(db_url, [per_project], clock)
    answer = budgets.check({"model": "gpt-4o", "estimated_cost_usd": 1.0})
    assert answer["reason"].startswith('allowed: closest is project "" daily budget perproj: $0.00 of $10.00 spent')
    assert "  " not in answer["reason"]
    services.close()
