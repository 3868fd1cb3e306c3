"""Per-user and per-session spend: `GET /v1/usage/summary` on real SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from exporter.http.app import build_app
from exporter.services import Services
from exporter.usage_summary import summarize
from tests.support.helpers import make_config

T0 = 1_796_000_000.0  # 2026-11-30


def event(i: int, **kw: Any) -> tuple[int, dict[str, Any]]:
    body = {"request_id": f"e{i}", "timestamp": T0 + i, "provider": "openai", "model": "gpt-4o", "project": "p",
            "user": f"u{i % 3}", "cost_usd": 0.01, "input_tokens": 10, "output_tokens": 5}  # fmt: skip
    body.update(kw)
    return (i, body)


def test_summary_by_user_from_rollups_and_by_session_from_the_index(db_url: str) -> None:
    services = Services.build(make_config(db_url, auth={"admin_tokens": ["admin-0123456789abcdef"]}))
    events = [event(i) for i in range(30)]
    events += [event(100 + i, session="chat-1", user="alice", cost_usd=0.5) for i in range(4)]
    events += [event(200 + i, metadata={"session_id": "run-7"}, user="bob", cost_usd=0.25) for i in range(2)]
    events += [event(300, session="x" * 300)]  # too long a session: rejected like any label
    outcome = services.pipeline.ingest(events)
    assert outcome.accepted == 36 and len(outcome.rejected) == 1
    assert "session" in outcome.rejected[0].error
    admin = {"Authorization": "Bearer admin-0123456789abcdef"}
    with TestClient(build_app(services)) as client:
        assert client.get("/v1/usage/summary?by=user").status_code == 401
        since, until = T0 - 600, T0 + 3600
        users = client.get(f"/v1/usage/summary?by=user&since={since}&until={until}", headers=admin).json()
        assert users["source"] == "rollups"
        totals = {r["user"]: r["cost_usd"] for r in users["rows"]}
        assert totals["alice"] == pytest.approx(2.0) and totals["bob"] == pytest.approx(0.5)
        assert totals["u0"] == pytest.approx(0.1)
        assert users["total_cost_usd"] == pytest.approx(2.8)
        sessions = client.get(
            "/v1/usage/summary",
            params={"by": "session", "since": "2026-11-29T00:00:00Z", "until": until},
            headers=admin,
        ).json()
        assert sessions["source"] == "events"
        assert [(r["session"], r["requests"], r["cost_usd"]) for r in sessions["rows"]] == [
            ("chat-1", 4, pytest.approx(2.0)),
            ("run-7", 2, pytest.approx(0.5)),
        ]
        query = {"by": "session", "session": "run-7", "since": since}
        one = client.get("/v1/usage/summary", params=query, headers=admin).json()
        assert [r["session"] for r in one["rows"]] == ["run-7"] and one["rows"][0]["tokens"] == 30
        assert client.get("/v1/usage/summary?by=sessions", headers=admin).status_code == 422
        assert client.get("/v1/usage/summary?by=user&sinse=1", headers=admin).status_code == 422
        assert client.get("/v1/usage/summary?by=user&since=yesterday", headers=admin).status_code == 422
        metrics = client.get("/metrics").text
        assert "session" not in metrics and "chat-1" not in metrics  # never a Prometheus label
    services.close()


def test_session_summaries_read_the_index_not_the_events_table(db_url: str) -> None:
    services = Services.build(make_config(db_url))
    events = [event(i) for i in range(5000)]
    events += [event(10_000 + i, session=f"s{i % 5}", timestamp=T0 + i) for i in range(50)]
    assert services.pipeline.ingest(events).accepted == 5050
    found = summarize(services.store, "session", T0, T0 + 100)
    assert sorted(r["session"] for r in found.rows) == ["s0", "s1", "s2", "s3", "s4"]
    one = "SELECT session, COUNT(*), SUM(cost_nanousd) FROM usage_events WHERE session IS NOT NULL AND session = 's1' "
    one += "AND ts >= 0 AND ts < 1e12 GROUP BY session"
    span = "SELECT session, COUNT(*) FROM usage_events WHERE session IS NOT NULL AND ts >= 0 AND ts < 1e12 "
    span += "GROUP BY session"
    with services.store.engine.connect() as conn:
        if services.store.dialect == "sqlite":
            conn.exec_driver_sql("ANALYZE")
            plans = [" ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + q))) for q in (one, span)]
            assert all("USING" in p and "ix_usage_events_session" in p for p in plans), plans
            assert not any("SCAN usage_events" in p and "INDEX" not in p for p in plans), plans
        else:
            conn.exec_driver_sql("ANALYZE usage_events")
            plans = ["\n".join(r[0] for r in conn.execute(text("EXPLAIN " + q))) for q in (one, span)]
            assert all("ix_usage_events_session" in p for p in plans), plans
            assert not any("Seq Scan on usage_events" in p for p in plans), plans
    services.close()


def test_a_call_recorded_a_moment_ago_is_in_the_summary(sqlite_url: str) -> None:
    # A user records a call and asks for the summary at once: the newest 5-minute bucket is included.
    services = Services.build(make_config(sqlite_url))
    with TestClient(build_app(services)) as client:
        sent = {"request_id": "fresh-1", "provider": "openai", "model": "gpt-4o", "project": "fresh", "cost_usd": 1.0}
        assert client.post("/v1/usage", json=sent).json()["accepted"] == 1
        answer = client.get("/v1/usage/summary").json()
        assert [(r["project"], r["cost_usd"]) for r in answer["rows"]] == [("fresh", 1.0)]
        assert answer["until"] % 300 == 0 and answer["until"] >= answer["since"] + 86_400
    services.close()


def test_limit_shows_fewer_rows_but_the_total_is_the_whole_range(sqlite_url: str) -> None:
    services = Services.build(make_config(sqlite_url))
    events = [event(i, project=f"p{i % 4}", cost_usd=0.25 * (1 + i % 4)) for i in range(8)]
    assert services.pipeline.ingest(events).accepted == 8
    with TestClient(build_app(services)) as client:
        answer = client.get(f"/v1/usage/summary?since={T0 - 600}&until={T0 + 600}&limit=2").json()
        assert [r["project"] for r in answer["rows"]] == ["p3", "p2"]
        assert answer["total_cost_usd"] == pytest.approx(5.0)  # all four projects, not the two rows shown
    services.close()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=abc", "limit: a whole number from 1 to 10,000, got 'abc'"),
        ("limit=0", "limit: a whole number from 1 to 10,000, got '0'"),
        ("limit=-5", "limit: a whole number from 1 to 10,000, got '-5'"),
        ("limit=20000", "limit: a whole number from 1 to 10,000, got '20000'"),
        ("by=user&by=model", "give each parameter once: by repeated"),
        ("since=0&until=1e30", "until: must be a time before the year 10000"),
        ("since=-1", "since: must be a time after 1970"),
    ],
)
def test_bad_parameters_are_422_naming_them(sqlite_url: str, query: str, message: str) -> None:
    services = Services.build(make_config(sqlite_url))
    with TestClient(build_app(services)) as client:
        answer = client.get(f"/v1/usage/summary?{query}")
        assert answer.status_code == 422 and answer.json()["error"] == message
    services.close()


def test_since_and_until_take_the_dates_and_ages_llmcost_report_takes(sqlite_url: str) -> None:
    """The same `since`/`until` as `llmcost report`: a date is UTC midnight, `7d` an age; a zone-less time stays 422."""
    services = Services.build(make_config(sqlite_url))
    assert services.pipeline.ingest([event(i) for i in range(3)]).accepted == 3  # 2026-11-30 00:53 UTC
    with TestClient(build_app(services)) as client:
        by_dates = client.get("/v1/usage/summary?by=model&since=2026-11-30&until=2026-12-01")
        assert by_dates.status_code == 200, by_dates.text
        assert by_dates.json()["since"] == 1_795_996_800.0  # 2026-11-30T00:00:00Z
        assert by_dates.json()["until"] == 1_796_083_200.0
        assert by_dates.json()["total_cost_usd"] == pytest.approx(0.03)
        assert client.get("/v1/usage/summary?since=2026-12-01&until=2026-12-02").json()["total_cost_usd"] == 0
        assert client.get("/v1/usage/summary?since=7d").status_code == 200
        zoneless = client.get("/v1/usage/summary?since=2026-11-30T00:00:00")
        assert zoneless.status_code == 422 and zoneless.json()["error"].startswith("since: give a time zone")
        assert client.get("/v1/usage/summary?since=7x").json()["error"].startswith("since: expected")
    services.close()


def test_a_summary_over_pruned_months_keeps_every_call(db_url: str) -> None:
    """Pruning folds old 5-minute rollups into hours: a summary over those months must not lose them."""
    from exporter.retention import Pruner
    from llmcost.services import open_services
    from tests.support.clock import FakeClock
    from tests.support.months import DAY, NOW, history, load_history

    load_history(db_url, history(120, step_hours=24))
    config = make_config(db_url, retention={"events_days": 30, "rollups_days": 60})
    services = open_services(config, clock=FakeClock(NOW))  # the application's store: alerting tables too
    since, until = NOW - 120 * DAY, NOW
    with TestClient(build_app(services)) as client:

        def answer(by: str) -> dict[str, Any]:
            return client.get(f"/v1/usage/summary?by={by}&since={since}&until={until}").json()

        before = {by: answer(by) for by in ("project", "user", "model")}
        assert Pruner(services.store, config.retention, clock=services.clock).run().hours > 0
        for by, expected in before.items():
            assert answer(by) == expected, by
    assert before["project"]["total_cost_usd"] > 0
    services.close()


def test_a_session_summary_reaching_past_the_raw_event_retention_says_so(db_url: str) -> None:
    """Sessions are summed from raw events: past `retention.events_days` the answer says it covers less.

    A range reaching back before the pruned events answered only for the events still kept, with
    nothing to tell it from a complete answer.
    """
    from exporter.retention import Pruner
    from llmcost.services import open_services
    from tests.support.clock import FakeClock
    from tests.support.months import DAY, NOW, history, load_history

    load_history(db_url, history(60, step_hours=24))
    config = make_config(db_url, retention={"events_days": 30, "rollups_days": 60})
    services = open_services(config, clock=FakeClock(NOW))
    assert Pruner(services.store, config.retention, clock=services.clock).run().events > 0
    cutoff = config.retention.events_cutoff(NOW)
    assert cutoff is not None
    with TestClient(build_app(services)) as client:
        whole = client.get(f"/v1/usage/summary?by=session&since={NOW - 60 * DAY}&until={NOW}").json()
        kept = client.get(f"/v1/usage/summary?by=session&since={cutoff}&until={NOW}").json()
        recent = client.get(f"/v1/usage/summary?by=session&since={NOW - 10 * DAY}&until={NOW}").json()
        projects = client.get(f"/v1/usage/summary?by=project&since={NOW - 60 * DAY}&until={NOW}").json()
    services.close()
    assert whole["events_since"] == cutoff
    assert "past retention.events_days" in whole["note"] and "cover only the calls since then" in whole["note"]
    assert (whole["rows"], whole["total_cost_usd"]) == (kept["rows"], kept["total_cost_usd"])
    assert "events_since" not in kept and "note" not in recent  # inside the retention: a complete answer
    assert "note" not in projects  # the rollups keep every call
    assert kept["total_cost_usd"] > 0


def test_equal_spend_is_ordered_by_name_on_every_store(db_url: str) -> None:
    """Rows costing the same come in one order (requests, then name), so SQLite and PostgreSQL agree,
    and a `limit` keeps the same rows on both rather than whichever the database grouped first."""
    services = Services.build(make_config(db_url))
    names = ["b-9", "B-2", "a-1", "b-10", "a-1x", "é-3"]
    events = [event(i, user=name, session=f"s-{name}", cost_usd=0.5) for i, name in enumerate(names)]
    events.append(event(50, user="more", session="s-more", cost_usd=0.5))
    events.append(event(51, user="more", session="s-more", cost_usd=0.0))  # same cost, more requests: first
    assert services.pipeline.ingest(events).accepted == len(events)
    expected = ["more", *sorted(names)]  # code point order: "B-2" < "a-1" < "b-10" < "é-3"
    for by, prefix in (("user", ""), ("session", "s-")):
        rows = summarize(services.store, by, T0 - 600, T0 + 600, limit=4).rows
        assert [r[by] for r in rows] == [prefix + name for name in expected[:4]], by
    services.close()


def test_unpriced_calls_are_counted_where_their_cost_is_missing(db_url: str) -> None:
    """A summary said `cost_usd: 0.01` for a project whose other call had no price, with nothing to show that
    the figure was short; `llmcost report` flags the same rows `(unpriced)`."""
    services = Services.build(make_config(db_url))
    unknown = {"provider": "acme", "model": "mystery-1", "cost_usd": None}
    events = [event(1), event(2, **unknown, session="s1"), event(3, project="q", session="s1")]
    for _, body in events:
        if body.get("cost_usd", 1) is None:
            del body["cost_usd"]
    assert services.pipeline.ingest(events).accepted == 3
    by_project = summarize(services.store, "project", T0 - 600, T0 + 600).to_json()
    assert {r["project"]: r["unpriced_requests"] for r in by_project["rows"]} == {"p": 1, "q": 0}
    assert by_project["total_unpriced_requests"] == 1
    by_session = summarize(services.store, "session", T0 - 600, T0 + 600).to_json()
    assert [(r["session"], r["requests"], r["unpriced_requests"]) for r in by_session["rows"]] == [("s1", 2, 1)]
    assert by_session["total_unpriced_requests"] == 1
    services.close()


def test_a_positive_offset_typed_unencoded_in_the_url_is_read_as_sent(sqlite_url: str) -> None:
    """`curl '…/v1/usage/summary?since=2026-11-30T05:30:00+05:30'`: in a query string `+` means a space, so
    the server received `2026-11-30T05:30:00 05:30` and answered 422 "expected RFC 3339" for a time the docs
    accept. A space where the offset's sign goes can only be that `+`: it is read as one."""
    services = Services.build(make_config(sqlite_url))
    assert services.pipeline.ingest([event(i) for i in range(3)]).accepted == 3  # 2026-11-30 00:53 UTC
    with TestClient(build_app(services)) as client:
        typed = client.get("/v1/usage/summary?since=2026-11-30T05:30:00+05:30&until=2026-12-01T05:30:00+05:30")
        assert typed.status_code == 200, typed.text
        assert typed.json()["since"] == 1_795_996_800.0  # 2026-11-30T00:00:00Z
        assert typed.json()["total_cost_usd"] == pytest.approx(0.03)
        encoded = client.get("/v1/usage/summary?since=2026-11-30T05:30:00%2B05:30&until=2026-12-01T05:30:00%2B05:30")
        assert encoded.json() == typed.json()
        negative = client.get("/v1/usage/summary?since=2026-11-29T19:00:00-05:00")
        assert negative.status_code == 200 and negative.json()["since"] == 1_795_996_800.0
    services.close()
