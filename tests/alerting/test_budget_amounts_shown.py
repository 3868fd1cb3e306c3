"""A budget's spend reads the same to the cent in the console, `llmcost budgets list` and the check.

Defect: a hard budget at $4,999.60 of $5,000 showed "$5,000 / $5,000 / 100%" (state critical) in the
console, whose amounts above $1,000 were whole dollars, while the check refused a $0.50 call with
"$4,999.60 of $5,000.00 spent"; `budgets list` printed "3530.00 1000000.00" for a token budget (no unit)
and "0.00" for $0.0004.
"""

from __future__ import annotations

import re
import time
from html import unescape
from typing import Any

import pytest
from starlette.testclient import TestClient

from exporter.http.app import build_app
from llmcost.cli import main
from llmcost.services import open_services
from llmcost.wiring import attach_alerting
from tests.support.budgets import build
from tests.support.clock import FakeClock
from tests.support.helpers import apply_config_budgets, make_config
from tests.support.wall_clock import clear_of_period_end, stamp_in_period

NOW = time.time()  # `llmcost budgets list` reads the budgets' current period on the real clock


@pytest.fixture(autouse=True)
def _now_when_the_test_runs() -> None:
    """NOW read as each test starts, not at collection: a run collected before midnight UTC put its calls
    in the day before the daily budgets' period, and every figure read $0.00. Read clear of midnight, as
    `budgets list` reads today a moment later on the real clock."""
    global NOW
    NOW = clear_of_period_end("daily", 30)


BUDGETS = [
    {"name": "big", "scope": "project", "key": "big", "period": "daily", "limit": 5000, "mode": "hard"},
    {"name": "tiny", "scope": "project", "key": "tiny", "period": "daily", "limit": 1},
    {"name": "long", "scope": "project", "key": "a-very-long-project-name-0001", "period": "daily", "limit": 1},
    {"name": "tok", "scope": "project", "key": "big", "period": "daily", "limit": 1_000_000, "unit": "tokens"},
]


def event(rid: str, project: str, usd: float, tokens: int) -> tuple[int, dict[str, Any]]:
    body = {"request_id": rid, "timestamp": stamp_in_period(1, now=NOW), "provider": "openai", "model": "gpt-4o",
            "project": project, "cost_usd": usd, "input_tokens": tokens, "output_tokens": 0}  # fmt: skip
    return (0, body)


def test_console_list_and_check_show_the_same_cents(
    sqlite_url: str, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    clock.set(NOW)
    config = make_config(sqlite_url, budgets=BUDGETS)
    services = open_services(config, clock=clock, start_writer=False)
    parts = attach_alerting(services, "ingest")
    apply_config_budgets(parts.budgets)
    assert not services.pipeline.ingest([event("a", "big", 4999.6, 3530), event("b", "tiny", 0.0004, 1)]).rejected
    answer = parts.budgets.check({"project": "big", "estimated_cost_usd": 0.5})
    assert "$4,999.60 of $5,000.00 spent" in answer["reason"]
    with TestClient(build_app(services, parts.routes)) as browser:
        text = unescape(re.sub(r"<[^>]+>", " ", browser.get("/").text))
    services.close()
    flat = " ".join(text.split())
    row = flat[flat.index("big big daily hard") :][:120]
    assert "$4,999.60 $5,000.00" in row and "99%" in row, row
    assert "100%" not in row  # not at its limit yet
    assert "3,530 tokens 1,000,000 tokens" in " ".join(text.split())
    assert "$0.0004 $1.00" in " ".join(text.split())

    capsys.readouterr()
    assert main(["budgets", "list", "--db", sqlite_url]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "$4,999.60" in listed["big"] and "$5,000.00" in listed["big"] and "99.9%" in listed["big"]
    assert "3,530 tokens" in listed["tok"] and "1,000,000 tokens" in listed["tok"]
    assert "$0.0004" in listed["tiny"]
    assert "a-very-long-project-name-0001" in listed["long"]  # whole, not cut to 16 characters


def test_console_and_list_tell_spend_a_fraction_of_a_cent_short_from_the_limit(
    sqlite_url: str, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    # At $4,999.996 both showed "$5,000.00 $5,000.00" beside a critical state and 99%.
    clock.set(NOW)
    services = open_services(make_config(sqlite_url, budgets=BUDGETS[:1]), clock=clock, start_writer=False)
    parts = attach_alerting(services, "ingest")
    apply_config_budgets(parts.budgets)
    assert not services.pipeline.ingest([event("a", "big", 4999.996, 3530)]).rejected
    with TestClient(build_app(services, parts.routes)) as browser:
        text = " ".join(unescape(re.sub(r"<[^>]+>", " ", browser.get("/").text)).split())
    services.close()
    assert "$4,999.996 $5,000.00" in text
    capsys.readouterr()
    assert main(["budgets", "list", "--db", sqlite_url]) == 0
    assert "$4,999.996" in capsys.readouterr().out


def test_a_critical_alert_short_of_the_limit_does_not_say_100_percent(db_url: str, clock: FakeClock) -> None:
    clock.set(NOW)
    services, _, sink = build(db_url, BUDGETS[:2], clock)
    assert not services.pipeline.ingest([event("a", "big", 4999.6, 3530), event("b", "tiny", 0.0097, 1)]).rejected
    services.close()
    big = sink.annotations("LLMBudgetCritical", {"budget": "big", "scope": "project", "key": "big"})
    assert big["summary"] == "Budget big is at 99% ($4,999.60 of $5,000.00)"


def test_a_critical_alert_a_fraction_of_a_cent_short_tells_spend_from_limit(db_url: str, clock: FakeClock) -> None:
    clock.set(NOW)
    services, _, sink = build(db_url, BUDGETS[:1], clock)
    assert not services.pipeline.ingest([event("a", "big", 4999.996, 3530)]).rejected
    services.close()
    big = sink.annotations("LLMBudgetCritical", {"budget": "big", "scope": "project", "key": "big"})
    assert big["summary"] == "Budget big is at 99% ($4,999.996 of $5,000.000)"  # not "$5,000.00 of $5,000.00"


def test_an_amount_below_a_nano_dollar_reads_as_zero_not_a_bare_point() -> None:
    # A projection or a float sum left a few 1e-12 dollars, which read "$0." (all nine decimals
    # stripped): spend is kept in nano-dollars, so anything below one is $0.00.
    from alerting.budgets.amounts import usd

    assert usd(3e-12) == "$0.00" and usd(-3e-12) == "$0.00"
    assert usd(1e-9) == "$0.000000001" and usd(0.0004) == "$0.0004"


def test_a_negative_amount_reads_with_its_sign_before_the_dollar() -> None:
    # The console's figures include repricing's corrections, which can take a day below zero: it read
    # "$-1,234.50"; a sub-cent one "$-0.0004".
    from alerting.budgets.amounts import usd

    assert usd(-1234.5) == "-$1,234.50" and usd(-0.0004) == "-$0.0004"


def test_a_count_that_reads_one_is_singular() -> None:
    # A projected 0.8 requests read "1 requests" beside "1 request" for a count of exactly one.
    from alerting.budgets.amounts import amount

    assert amount("requests", 0.8) == "1 request" and amount("requests", 1) == "1 request"
    assert amount("requests", 1.6) == "2 requests" and amount("tokens", 3530) == "3,530 tokens"


def test_two_different_amounts_never_read_alike() -> None:
    # The check's "spent of limit" at $4,999.996 of $5,000 read "$5,000.00 of $5,000.00" (state critical).
    from alerting.budgets.amounts import usd_apart

    assert usd_apart(4999.996, 5000) == ("$4,999.996", "$5,000.000")
    assert usd_apart(4999.60, 5000) == ("$4,999.60", "$5,000.00") and usd_apart(1.0, 1.0) == ("$1.00", "$1.00")
    assert usd_apart(0.00501, 0.005) == ("$0.00501", "$0.00500")


def test_console_totals_and_tables_keep_their_cents_above_a_thousand_dollars(sqlite_url: str, clock: FakeClock) -> None:
    """Today, this month, all time and the spend tables read "$1,234.56" as `llmcost report` does, not "$1,235"."""
    clock.set(NOW)
    config = make_config(sqlite_url)
    services = open_services(config, clock=clock, start_writer=False)
    parts = attach_alerting(services, "ingest")
    assert not services.pipeline.ingest([event("a", "big", 1234.56, 10)]).rejected
    with TestClient(build_app(services, parts.routes)) as browser:
        page = browser.get("/").text
    services.close()
    figures = re.findall(r'class="figure (?:today|month|alltime)"[^>]*>([^<]+)<', page)
    assert figures == ["$1,234.56"] * 3, figures
    assert "$1,235" not in unescape(page)
    assert "$1,234.56 ·" in unescape(page)  # a bar's tooltip
