"""A hard `key: "*"` budget holds for values past its `max_instances` too (SQLite and PostgreSQL).

Values past `max_instances` share one `__other__` spend row; the check must still count what *this*
value spent, or a per-user cap stops holding at the 1,001st user of the day.
"""

from __future__ import annotations

from tests.support.budgets import NOON, build, call, ingest
from tests.support.clock import FakeClock

PER_USER = {"name": "per-user", "scope": "user", "key": "*", "period": "daily", "limit": 1.0, "mode": "hard",
            "max_instances": 2}  # fmt: skip


def test_a_value_past_max_instances_is_refused_at_its_own_limit(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON + 600)
    services, budgets, _ = build(db_url, [PER_USER], clock)
    ingest(services, call("a", NOON + 1, 0.1, user="alice"), call("b", NOON + 2, 0.1, user="bob"))
    ingest(services, *(call(f"c{i}", NOON + 10 + i, 0.3, user="carol") for i in range(4)))  # folded: $1.20
    answer = budgets.check({"user": "carol", "estimated_cost_usd": 0.01})
    assert answer["allowed"] is False, answer["reason"]
    assert "carol" in answer["reason"]
    entry = answer["budgets"][0]
    assert entry["key"] == "carol" and round(entry["spent"], 9) == 1.2
    # Another folded value that has spent little is let through: the folded total is not its spend.
    ingest(services, call("d", NOON + 20, 0.2, user="dave"))
    fits = budgets.check({"user": "dave", "estimated_cost_usd": 0.5})
    assert fits["allowed"] is True and round(fits["budgets"][0]["spent"], 9) == 0.2
    # Its next calls count at once in this process's cached answers.
    ingest(services, call("e", NOON + 21, 0.7, user="dave"))
    assert budgets.check({"user": "dave", "estimated_cost_usd": 0.5})["allowed"] is False
    services.close()


def test_a_reset_of_a_value_past_max_instances_lets_it_spend_again(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON + 600)
    services, budgets, _ = build(db_url, [PER_USER], clock)
    ingest(services, call("a", NOON + 1, 0.1, user="alice"), call("b", NOON + 2, 0.1, user="bob"))
    ingest(services, *(call(f"c{i}", NOON + 10 + i, 0.3, user="carol") for i in range(4)))  # folded: $1.20
    assert budgets.check({"user": "carol", "estimated_cost_usd": 0.01})["allowed"] is False
    records = budgets.reset("per-user", by="carol's manager", reason="quota raised", key="carol")
    assert round(records[0]["spent_before"], 9) == 1.2
    answer = budgets.check({"user": "carol", "estimated_cost_usd": 0.5})
    assert answer["allowed"] is True and answer["budgets"][0]["spent"] == 0
    ingest(services, call("c9", NOON + 700, 0.9, user="carol"))
    assert budgets.check({"user": "carol", "estimated_cost_usd": 0.5})["allowed"] is False
    services.close()
