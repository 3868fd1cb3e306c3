"""A budget's past periods: the team lead closing the month asks how last month went against the budget.

A real `llmcost serve` records calls stamped across past periods of three budgets (a project's monthly
dollars, a per-project `key: "*"` monthly tokens, a global hourly requests budget kept in Asia/Kolkata,
whose hours start at half past in UTC); `llmcost budgets show` and `GET /v1/budgets/NAME?periods=N` are
read as a user reads them. Before, both showed the current period only.

The expected figures are computed here from the calls sent, by calendar arithmetic of their own (a UTC
month is the year and month of the time; a Kolkata hour is the UTC time plus 5:30 floored to the hour),
not by the code under test. The real clock runs the server: a test that straddles a period's end reads
the answer again.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.llmcost_server import ADMIN_TOKEN, ingest, running_llmcost
from tests.support.procs import LLMCOST, LlmcostProcess

pytestmark = pytest.mark.real_process

KOLKATA = timedelta(hours=5, minutes=30)
BUDGETS = [
    {"name": "team-monthly", "scope": "project", "key": "search", "period": "monthly", "limit": 10},
    {"name": "tokens-monthly", "scope": "project", "key": "*", "period": "monthly", "limit": 1000, "unit": "tokens"},
    {
        "name": "kolkata-hourly",
        "scope": "global",
        "period": "hourly",
        "limit": 3,
        "unit": "requests",
        "timezone": "Asia/Kolkata",
    },
]


def month_start(moment: datetime, back: int) -> datetime:
    """The first of the month `back` months before `moment`'s, at midnight UTC."""
    index = moment.year * 12 + moment.month - 1 - back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def kolkata_hour_start(moment: datetime, back: int) -> datetime:
    """The start, in UTC, of the Kolkata clock hour `back` hours before `moment`'s."""
    local = (moment + KOLKATA).replace(minute=0, second=0, microsecond=0)
    return local - timedelta(hours=back) - KOLKATA


def call(when: datetime, project: str, *, cost: float = 0.5, tokens: int = 10, n: int = 0) -> dict[str, Any]:
    return {
        "request_id": f"{project}-{when.timestamp():.0f}-{n}",
        "provider": "openai",
        "model": "gpt-4o",
        "timestamp": when.isoformat(),
        "input_tokens": tokens,
        "output_tokens": 0,
        "cost_usd": cost,
        "project": project,
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LlmcostProcess]:
    with running_llmcost(tmp_path, f"sqlite:///{tmp_path / 'llmcost.db'}", budgets={"items": BUDGETS}) as process:
        yield process


def budgets(server: LlmcostProcess, *argv: str) -> subprocess.CompletedProcess[str]:
    """`llmcost budgets ARGV --db <the server's store>`, its output captured."""
    return subprocess.run(
        [*LLMCOST, "budgets", *argv, "--db", server.db_url], capture_output=True, text=True, timeout=60, check=False
    )


def show(server: LlmcostProcess, name: str, *argv: str) -> dict[str, Any]:
    done = budgets(server, "show", name, *argv)
    assert done.returncode == 0, done.stdout + done.stderr
    body: dict[str, Any] = json.loads(done.stdout)
    return body


def get(server: LlmcostProcess, path: str) -> httpx.Response:
    return httpx.get(f"{server.base}{path}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)


def steady(read: Callable[[datetime], tuple[Any, Any]]) -> tuple[Any, Any]:
    """`read(now)` -> (what was read, what was expected), read again if a period ended meanwhile."""
    for _ in range(3):
        before = datetime.now(UTC)
        got, expected = read(before)
        after = datetime.now(UTC)
        if kolkata_hour_start(before, 0) == kolkata_hour_start(after, 0):
            return got, expected
    raise AssertionError("periods kept ending while reading")


def calls_at(now: datetime) -> list[dict[str, Any]]:
    """Calls over three months and four Kolkata hours, the store's first one mid-way through month -2."""
    m2, m1, m0 = month_start(now, 2), month_start(now, 1), month_start(now, 0)
    h1, h3 = kolkata_hour_start(now, 1), kolkata_hour_start(now, 3)
    events = [
        call(m2 + timedelta(days=14), "search", cost=6.0, tokens=700),  # the store's first call
        call(m2 + timedelta(days=20), "search", cost=7.0, tokens=400),  # month -2: $13 of $10, over
        call(m2 + timedelta(days=21), "chat", cost=1.0, tokens=300),
        call(m1 + timedelta(days=9), "chat", cost=2.0, tokens=50),  # month -1: nothing for search
        # The current month, and the current Kolkata hour (the hourly budget is global: it counts this call too).
        call(max(m0, kolkata_hour_start(now, 0), now - timedelta(seconds=30)), "search", cost=1.0, tokens=5),
    ]
    # Kolkata hours: -1 two calls, -2 none, -3 four (over its 3 requests). Project ops, which the
    # monthly dollar budget does not count; the tokens budget counts them in their month.
    events += [call(h1 + timedelta(minutes=10 + i), "ops", cost=0.0, tokens=1, n=i) for i in range(2)]
    events += [call(h3 + timedelta(minutes=5 * i), "ops", cost=0.0, tokens=1, n=i) for i in range(4)]
    return events


def monthly_expected(events: list[dict[str, Any]], now: datetime, back: int, project: str, field: str) -> float:
    """What `project`'s calls in the UTC month `back` months ago add up to in `field` (cost_usd, input_tokens)."""
    start = month_start(now, back)
    return sum(
        e[field]
        for e in events
        if e["project"] == project and month_start(datetime.fromisoformat(e["timestamp"]), 0) == start
    )


@pytest.mark.within_period("hourly", 120, "Asia/Kolkata")  # from the calls to the last reading, one hour and month
@pytest.mark.within_period("monthly", 120)
def test_show_and_get_list_the_last_completed_periods_against_the_limit(server: LlmcostProcess) -> None:
    events = calls_at(datetime.now(UTC))
    ingest(server, events)
    first = datetime.fromisoformat(events[0]["timestamp"])

    def read_monthly(now: datetime) -> tuple[Any, Any]:
        body = show(server, "team-monthly", "--periods", "5")
        expected = [
            {
                "period_start": month_start(now, back).isoformat(),
                "period_end": month_start(now, back - 1).isoformat(),
                "spent": monthly_expected(events, now, back, "search", "cost_usd"),
            }
            for back in (1, 2, 3, 4, 5)
            if month_start(now, back - 1) > first  # none before the store's first call
        ]
        got = [{k: h[k] for k in ("period_start", "period_end", "spent")} for h in body["history"]]
        return (got, body["spent"], [h["over_limit"] for h in body["history"]]), (
            expected,
            1.0,
            [e["spent"] > 10 for e in expected],
        )

    got, expected = steady(read_monthly)
    assert got == expected
    assert [h["spent"] for h in got[0]] == [0.0, 13.0]  # last month: nothing; the month before: over

    # The same figure as `llmcost report` over the month, the way a user had to get it before.
    over = month_start(datetime.fromisoformat(got[0][1]["period_start"]), 0)
    bounds = ["--since", over.date().isoformat(), "--until", month_start(over, -1).date().isoformat()]
    report = subprocess.run(
        [*LLMCOST, "report", *bounds, "--by", "project", "--format", "json", "--db", server.db_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = {row["project"]: row["cost_usd"] for row in json.loads(report.stdout)["rows"]}
    assert rows["search"] == got[0][1]["spent"] == 13.0

    # The default is three completed periods; the status fields are what they were.
    body = show(server, "team-monthly")
    assert len(body["history"]) == 2 and body["history"][1]["ratio"] == 1.3 and body["history"][1]["limit"] == 10
    assert [h["state"] for h in body["history"]] == ["ok", "exceeded"]
    assert "current definition" in body["history_note"]
    assert show(server, "team-monthly", "--periods", "0")["history"] == []

    def read_tokens(now: datetime) -> tuple[Any, Any]:
        history = show(server, "tokens-monthly")["history"]
        got = [(h["unit"], h["worst_key"], h["spent"], {i["key"]: i["spent"] for i in h["instances"]}) for h in history]
        expected = []
        for back in (1, 2):
            per_project = {
                p: float(monthly_expected(events, now, back, p, "input_tokens"))
                for p in ("search", "chat", "ops")
                if monthly_expected(events, now, back, p, "input_tokens")
            }
            worst = max(per_project, key=lambda p: per_project[p])
            expected.append(("tokens", worst, per_project[worst], per_project))
        return got, expected

    got, expected = steady(read_tokens)
    assert got == expected

    def read_hourly(now: datetime) -> tuple[Any, Any]:
        history = show(server, "kolkata-hourly")["history"]
        got = [(h["period_start"], h["period_end"], h["spent"], h["over_limit"]) for h in history]
        expected = [
            (
                (kolkata_hour_start(now, back) + KOLKATA).replace(tzinfo=None).isoformat() + "+05:30",
                (kolkata_hour_start(now, back - 1) + KOLKATA).replace(tzinfo=None).isoformat() + "+05:30",
                float(
                    sum(
                        1
                        for e in events
                        if e["project"] == "ops"
                        and kolkata_hour_start(datetime.fromisoformat(e["timestamp"]), 0)
                        == kolkata_hour_start(now, back)
                    )
                ),
                False,
            )
            for back in (1, 2, 3)
        ]
        expected = [(s, e, n, n > 3) for s, e, n, _ in expected]
        return got, expected

    got, expected = steady(read_hourly)
    assert got == expected
    assert [spent for *_, spent, _ in got] == [2.0, 0.0, 4.0]

    # The HTTP answer: unchanged without the parameter, the same history with it.
    plain = get(server, "/v1/budgets/team-monthly")
    assert plain.status_code == 200 and "history" not in plain.json()
    with_history = get(server, "/v1/budgets/team-monthly?periods=5").json()
    assert with_history["history"] == show(server, "team-monthly", "--periods", "5")["history"]
    refused = get(server, "/v1/budgets/team-monthly?periods=lots")
    assert refused.status_code == 400
    assert refused.json()["error"] == "periods: must be a whole number from 0 to 100, got 'lots'"
    assert get(server, "/v1/budgets?periods=3").status_code == 400  # the listing takes none


def test_a_bad_periods_option_is_a_usage_error_naming_it(server: LlmcostProcess) -> None:
    done = budgets(server, "show", "team-monthly", "--periods", "-1")
    assert done.returncode == 2
    assert "--periods: must be a whole number from 0 to 100, got '-1'" in done.stderr
    done = budgets(server, "list", "--periods", "2")
    assert done.returncode == 2 and "--periods not used by list" in done.stderr


def test_periods_is_ascii_digits_only(server: LlmcostProcess) -> None:
    """Defect: Python's int() read `1_0` as 10 and `٣` (an Arabic-Indic three) as 3, so both were listed."""
    for odd in ("1_0", "\u0663", "-0"):
        refused = get(server, f"/v1/budgets/team-monthly?periods={quote(odd)}")
        assert refused.status_code == 400, (odd, refused.text)
        assert refused.json()["error"] == f"periods: must be a whole number from 0 to 100, got {odd!r}"
    done = budgets(server, "show", "team-monthly", "--periods", "1_0")
    assert done.returncode == 2 and "--periods: must be a whole number from 0 to 100, got '1_0'" in done.stderr
