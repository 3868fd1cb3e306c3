"""The console at `/` without a browser: figures, escaping, who may act, CSRF, and the spend history."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from starlette.testclient import TestClient

from alerting.console.history import SpendHistory
from exporter.config import ConfigError
from exporter.http.app import build_app
from exporter.services import Services
from llmcost.config import parse_config
from llmcost.services import open_services
from llmcost.wiring import AlertingParts, attach_alerting
from tests.support.clock import FakeClock
from tests.support.helpers import apply_config_budgets, make_config
from tests.support.waiting import wait_until

NOW = 1_796_300_000.0  # 2026-12-03 09:33:20 UTC
TOKEN = "admin-token-0123456789"
HOSTILE = "<script>alert('x')</script>\"&'><img src=x onerror=alert(1)>"


def event(rid: str, ts: float, cost: float, project: str = "search", **kw: Any) -> tuple[int, dict[str, Any]]:
    body = {
        "request_id": rid,
        "timestamp": ts,
        "provider": "openai",
        "model": "gpt-4o",
        "project": project,
        "service": "api",
        "cost_usd": cost,
        "input_tokens": 100,
        "output_tokens": 10,
    }
    body.update(kw)
    return (0, body)


@contextmanager
def console(db_url: str, clock: FakeClock, **raw: Any) -> Iterator[tuple[Services, TestClient, AlertingParts]]:
    raw.setdefault(
        "budgets",
        [
            {"name": "daily", "scope": "global", "period": "daily", "limit": 5.0},
            {"name": "per-project", "scope": "project", "key": "*", "period": "monthly", "limit": 50.0},
        ],
    )
    config = make_config(db_url, **raw)
    services = open_services(config, clock=clock, start_writer=False)
    try:
        parts = attach_alerting(services, "ingest")
        apply_config_budgets(parts.budgets)
        with TestClient(build_app(services, parts.routes), base_url="http://127.0.0.1:9800") as client:
            yield services, client, parts
    finally:
        services.close()


def ingest(services: Services, *records: tuple[int, dict[str, Any]]) -> None:
    out = services.pipeline.ingest(list(records))
    assert not out.rejected, out.rejected


def figure(html: str, css_class: str, zone: str = "UTC") -> float:
    match = re.search(rf'class="figure {css_class}" data-zone="{zone}" data-usd="([0-9.]+)"', html)
    assert match, css_class
    return float(match.group(1))


def test_console_shows_spend_budgets_and_alerts_from_the_store(db_url: str, clock: FakeClock) -> None:
    clock.set(NOW)
    with console(db_url, clock) as (services, client, _parts):
        ingest(
            services,
            event("a", NOW - 60, 3.0, project="search"),
            event("b", NOW - 3600, 1.5, project="chat"),
            event("c", NOW - 2 * 86400, 4.0, project="search"),  # this month, not today
            event("d", NOW - 40 * 86400, 100.0, project="old"),  # last month: all time only
            event("e", NOW - 120, 0.0, model="mystery-model", provider="self-hosted", cost_usd=None),
        )
        page = client.get("/")
        assert page.status_code == 200
        html = page.text
        assert figure(html, "today") == pytest.approx(4.5)
        assert figure(html, "month") == pytest.approx(8.5)
        assert re.search(r'class="figure alltime" data-usd="108\.5', html)
        assert 'class="figure unpriced" data-count="1"' in html
        assert re.search(r'<tr class="share" data-name="search" data-usd="7\.0', html)
        # Budgets: one row per instance, the "*" budget as a summary row with its instances below.
        assert re.search(r'data-budget="daily" data-key="" data-spent="4\.5', html)
        assert re.search(r'data-budget="per-project" data-key="\*" data-spent="7\.0', html)
        assert re.search(r'class="budget child" data-budget="per-project" data-key="chat" data-spent="1\.5', html)
        # The daily budget passed warning right after the ingest: its alert is listed with a button.
        assert "LLMBudgetWarning" in html
        assert "Acknowledge</button>" in html
        # The page is self-contained: its own script and stylesheet, nothing loaded from elsewhere (an
        # alert's Runbook link is absolute, a link to follow, not a resource).
        assert not re.search(r'(src|<link [^>]*href)="(https?:)?//', html)
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for asset in ("/console/console.js", "/console/console.css"):
            assert client.get(asset).status_code == 200
        # Reading the console changes nothing.
        assert services.store.event_count() == 5


def test_hostile_label_values_are_escaped_everywhere(sqlite_url: str, clock: FakeClock) -> None:
    clock.set(NOW)
    with console(sqlite_url, clock) as (services, client, parts):
        ingest(services, event("h1", NOW - 30, 9.0, project=HOSTILE, model=HOSTILE, service=HOSTILE))
        parts.gateway.fire("LLMCostSpike", {"project": HOSTILE}, severity="warning", annotations={"summary": HOSTILE})
        for by in ("project", "model", "service"):
            html = client.get(f"/?by={by}").text
            assert "<script>alert" not in html
            assert "<img src=x" not in html
            assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
        fragment = client.get("/console/alerts").text
        assert "<script>alert" not in fragment and "&lt;script&gt;" in fragment
        # A hostile `by` is not echoed back raw either.
        assert "<script>" not in client.get("/", params={"by": "<script>"}).text


def test_bidi_and_zero_width_characters_in_alert_labels_are_shown(sqlite_url: str, clock: FakeClock) -> None:
    # An Alertmanager label "\u202ehcraes" read "search" on the page: the person acked the wrong problem.
    clock.set(NOW)
    with console(sqlite_url, clock) as (_, client, parts):
        parts.gateway.fire("LLMCostSpike", {"project": "\u202ehcraes\u200b"}, severity="warning")
        fragment = client.get("/console/alerts").text
        assert "[U+202E]hcraes[U+200B]" in fragment
        assert "\u202e" not in fragment and "\u200b" not in fragment


def test_an_emoji_zwj_sequence_in_a_project_name_shows_whole(sqlite_url: str, clock: FakeClock) -> None:
    # A family emoji (man, ZWJ, woman, ZWJ, girl) read "👨[U+200D]👩[U+200D]👧" on the page; a ZWJ between
    # letters still shows.
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467 family-app"
    clock.set(NOW)
    with console(sqlite_url, clock) as (_, client, parts):
        parts.gateway.fire("LLMCostSpike", {"project": family, "service": "sea\u200drch"}, severity="warning")
        fragment = client.get("/console/alerts").text
        assert family in fragment
        assert "sea[U+200D]rch" in fragment


def test_an_alert_links_only_safe_http_urls_of_its_runbook_and_dashboard(sqlite_url: str, clock: FakeClock) -> None:
    """Annotations received from Alertmanager are whatever its rules said: only http(s) URLs become links."""
    clock.set(NOW)
    with console(sqlite_url, clock) as (_services, client, parts):
        parts.gateway.fire(
            "Safe",
            {"n": "1"},
            severity="warning",
            annotations={
                "runbook_url": "https://wiki.example/rb?a=1&b=2#safe",
                "dashboard_url": "http://g.example/d/x",
            },
        )
        parts.gateway.fire(
            "Hostile",
            {"n": "2"},
            severity="warning",
            annotations={"runbook_url": "javascript:alert(1)", "dashboard_url": 'https://g.example/"><script>x'},
        )
        html = client.get("/").text
        assert '<a class="runbook" href="https://wiki.example/rb?a=1&amp;b=2#safe"' in html
        dashboard = re.search(r'<a class="dashboard" href="http://g\.example/d/x\?from=(\d+)&amp;to=now"', html)
        assert dashboard is not None  # around the alert's time, as in its notifications
        hostile = html[html.index('<td class="name">Hostile') :].split("</tr>")[0]
        assert "<a " not in hostile and "javascript:" not in html and "<script>x" not in html


def test_without_admin_tokens_beyond_loopback_the_page_is_read_only(sqlite_url: str, clock: FakeClock) -> None:
    clock.set(NOW)
    with console(sqlite_url, clock, listen="0.0.0.0:9800", auth={"ingest_tokens": [TOKEN]}) as (
        services,
        client,
        _parts,
    ):
        ingest(services, event("r1", NOW - 30, 9.0))
        html = client.get("/").text
        assert "LLMBudgetExceeded" in html  # alerts are readable, as GET /v1/alerts is
        assert 'data-can-act="no"' in html
        assert "Acknowledge</button>" not in html
        assert "Read-only" in html


def test_with_admin_tokens_alerts_and_acks_need_the_token(sqlite_url: str, clock: FakeClock) -> None:
    clock.set(NOW)
    with console(sqlite_url, clock, auth={"admin_tokens": [TOKEN]}) as (services, client, _parts):
        ingest(services, event("t1", NOW - 30, 9.0))
        html = client.get("/").text
        assert 'id="alerts-locked"' in html and "LLMBudgetExceeded" not in html
        assert 'id="token-form"' in html
        assert client.get("/console/alerts").status_code == 401
        fragment = client.get("/console/alerts", headers={"Authorization": f"Bearer {TOKEN}"})
        assert fragment.status_code == 200 and "Acknowledge</button>" in fragment.text
        alert_id = re.search(r'data-action="ack" data-id="(\d+)"', fragment.text).group(1)  # type: ignore[union-attr]
        assert client.post(f"/v1/alerts/{alert_id}/ack", json={"by": "x"}).status_code == 401
        ok = client.post(f"/v1/alerts/{alert_id}/ack", json={"by": "ana"}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["acknowledged_by"] == "ana"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),  # curl, scripts, the CLI: no browser headers
        ({"Origin": "http://127.0.0.1:9800", "Sec-Fetch-Site": "same-origin"}, 200),  # the console itself
        ({"Sec-Fetch-Site": "cross-site"}, 403),  # a page on another site
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Origin": "http://evil.example:9800", "Host": "evil.example:9800"}, 403),  # DNS rebinding
        # a rebound name that merely starts with "127." was taken for a loopback address
        ({"Origin": "http://127.evil.example:9800", "Host": "127.evil.example:9800"}, 403),
        ({"Origin": "http://app.localhost:9800", "Host": "app.localhost:9800"}, 200),  # RFC 6761: stays local
    ],
)
def test_open_ack_endpoints_refuse_cross_site_browser_requests(
    sqlite_url: str, headers: dict[str, str], status: int, clock: FakeClock
) -> None:
    clock.set(NOW)
    with console(sqlite_url, clock) as (_services, client, parts):
        change = parts.gateway.fire("LLMCostSpike", {"project": "p"}, severity="warning")
        answer = client.post(f"/v1/alerts/{change.alert.id}/ack", headers=headers)
        assert answer.status_code == status, answer.text
        state = parts.gateway.alert(change.alert.id).state
        assert state == ("acknowledged" if status == 200 else "firing")


def test_grafana_link_when_configured(sqlite_url: str, clock: FakeClock) -> None:
    clock.set(NOW)
    with console(sqlite_url, clock, grafana_url="https://grafana.example/d/llmcost") as (_services, client, _parts):
        assert 'href="https://grafana.example/d/llmcost"' in client.get("/").text
    clock.set(NOW)
    with console(sqlite_url, clock) as (_services, client, _parts):
        assert "Grafana" not in client.get("/").text
    with pytest.raises(ConfigError, match="grafana_url"):
        parse_config({"grafana_url": "javascript:alert(1)"})


def test_spend_history_keeps_up_with_ingest_without_rereading_everything(db_url: str, clock: FakeClock) -> None:
    clock.set(NOW)
    config = make_config(db_url)
    services = open_services(config, clock=clock, start_writer=False)
    try:
        history = SpendHistory(services.store, clock=clock, background=False, full_reload_seconds=600)
        ingest(services, event("s1", NOW - 10, 1.0), event("s2", NOW - 5 * 86400, 2.0, project="other"))
        first = history.snapshot()
        assert first.total_between(NOW - 86400, NOW + 1) == pytest.approx(1.0)
        assert dict(first.by_value("project", NOW - 30 * 86400, NOW + 1)) == pytest.approx({"search": 1, "other": 2})

        # Into the current bucket, and a new label value: seen at the next view.
        ingest(services, event("s3", NOW - 5, 0.25, project="new"))
        assert history.snapshot().total_between(NOW - 86400, NOW + 1) == pytest.approx(1.25)

        # No view for 40 minutes: buckets that were current at the last view are read to their end.
        ingest(services, event("s4", NOW + 60, 0.5))
        clock.now = NOW + 40 * 60
        ingest(services, event("s5", NOW + 39 * 60, 0.125))
        assert history.snapshot().total_between(NOW - 86400, clock.now + 1) == pytest.approx(1.875)

        # A backfill older than the re-read buckets appears at the next full read.
        ingest(services, event("s6", NOW - 3 * 86400, 8.0))
        assert history.snapshot().total_between(NOW - 30 * 86400, clock.now + 1) == pytest.approx(3.875)
        clock.now += 600
        snapshot = history.snapshot()
        assert snapshot.total_between(NOW - 30 * 86400, clock.now + 1) == pytest.approx(11.875)
        assert dict(snapshot.by_value("project", NOW - 30 * 86400, clock.now + 1))["search"] == pytest.approx(9.625)
    finally:
        services.close()


def test_a_backfill_is_picked_up_by_the_background_reload_once_someone_looks(sqlite_url: str, clock: FakeClock) -> None:
    clock.set(NOW)
    services = open_services(make_config(sqlite_url), clock=clock, start_writer=False)
    history = SpendHistory(services.store, clock=clock, full_reload_seconds=600)
    try:
        ingest(services, event("b1", NOW - 10, 1.0))
        history.warm_up()
        assert history.snapshot().total_between(NOW - 30 * 86400, NOW + 1) == pytest.approx(1.0)
        ingest(services, event("b2", NOW - 3 * 86400, 8.0))  # a backfill into settled buckets
        clock.now += 600  # the last full read is now due: the next view wakes the reloader at once
        history.snapshot()
        wait_until(
            lambda: history.snapshot().total_between(NOW - 30 * 86400, clock.now + 1) == pytest.approx(9.0),
            timeout=30,
            what="the background reload picking up the backfill",
        )
    finally:
        history.close()
        services.close()


def test_a_firing_spike_is_drawn_against_its_baseline(sqlite_url: str, clock: FakeClock) -> None:
    from alerting.spikes.state import spike_state
    from alerting.spikes.state import state_row as _row

    clock.set(NOW)
    with console(sqlite_url, clock) as (services, client, _parts):
        ingest(services, *(event(f"sp{i}", NOW - 60 * i, 0.5 + (2.0 if i < 30 else 0.0)) for i in range(120)))
        row = _row(
            "project",
            {"project": "search"},
            window=75.0,
            baseline=5.0,
            ratio=15.0,
            score=9.0,
            minutes=30,
            reason="spike",
            firing=True,
            since=NOW - 1800,
            now=NOW,
        )
        with services.store.transaction() as conn:
            conn.execute(spike_state.insert().values(**row))
        html = client.get("/").text
        section = html[html.index('<section id="spikes">') :]
        assert 'project="search"' in section
        assert "$75.00 in 30 min against a baseline of $5.00 (15.0x)" in " ".join(section.split())
        bars = re.findall(r'<rect class="(window|before)"', section)
        assert bars.count("window") == 6 and bars.count("before") == 18  # 30 minutes of 2 hours
        assert '<line class="baseline"' in section


@pytest.mark.parametrize(
    "cookie", ["Asia/Kolkata", "Asia%2FKolkata", "..%2F..%2Fetc%2Fpasswd", "x" * 5000, "Nope/Zone", "UTC\x7f"]
)
def test_the_viewer_zone_cookie_is_only_ever_a_known_zone(sqlite_url: str, cookie: str, clock: FakeClock) -> None:
    # The page's script sets it percent-encoded (`Asia%2FKolkata`), as `encodeURIComponent` writes it.
    clock.set(NOW)
    with console(sqlite_url, clock) as (_services, client, _parts):
        client.cookies.set("llmcost_tz", cookie)
        page = client.get("/")
        assert page.status_code == 200
        expected = "Asia/Kolkata" if cookie in ("Asia/Kolkata", "Asia%2FKolkata") else "UTC"
        assert f"(days in {expected})" in page.text


def test_with_admin_tokens_the_bearer_header_is_the_protection(sqlite_url: str, clock: FakeClock) -> None:
    # Behind a reverse proxy Origin and Host may differ; the token is what matters then.
    clock.set(NOW)
    with console(sqlite_url, clock, auth={"admin_tokens": [TOKEN]}) as (_services, client, parts):
        change = parts.gateway.fire("LLMCostSpike", {"project": "p"}, severity="warning")
        proxied = {"Origin": "https://llmcost.example.com", "Sec-Fetch-Site": "same-origin"}
        assert client.post(f"/v1/alerts/{change.alert.id}/ack", headers=proxied).status_code == 401
        proxied["Authorization"] = f"Bearer {TOKEN}"
        assert client.post(f"/v1/alerts/{change.alert.id}/ack", headers=proxied).status_code == 200


def test_a_wildcard_budget_lists_its_fifty_highest_instances_and_says_how_many_more(
    sqlite_url: str, clock: FakeClock
) -> None:
    clock.set(NOW)
    with console(sqlite_url, clock) as (services, client, _parts):
        ingest(services, *(event(f"w{i}", NOW - 30, 0.01 * (i + 1), project=f"p{i:02d}") for i in range(60)))
        html = client.get("/").text
        children = re.findall(r'class="budget child" data-budget="per-project" data-key="(p\d+)"', html)
        assert len(children) == 50 and children[0] == "p59"  # highest ratio first
        assert "(60 projects)" in html
        assert "… and 10 more with lower ratios" in html


def test_a_wildcard_budget_no_value_has_spent_on_yet_is_listed_with_its_limit_and_period(
    sqlite_url: str, clock: FakeClock
) -> None:
    # GET /v1/budgets lists it (one row, key "*", zero spend, a note); the console did not show it at all.
    clock.set(NOW)
    with console(sqlite_url, clock) as (_services, client, _parts):
        listed = {(b["name"], b["key"]): b for b in client.get("/v1/budgets").json()["budgets"]}
        assert listed[("per-project", "*")]["spent"] == 0
        html = client.get("/").text
        row = re.search(r'<tr class="budget" data-budget="per-project" data-key="\*".*?</tr>', html, re.S)
        assert row, "the per-project budget is missing from the console"
        text = " ".join(re.sub(r"<[^>]+>", " ", row.group(0)).split())
        assert 'data-spent="0.000000000" data-limit="50.000000000"' in row.group(0)
        assert "monthly" in text and "$0.00" in text and "$50.00" in text
        assert "no key has spent yet in this period" in text
        assert 'data-t="1798761600"' in row.group(0)  # the period ends 2027-01-01 00:00 UTC
        assert "expand" not in row.group(0)  # nothing to expand yet


def test_alerts_beyond_the_page_s_cap_are_counted_not_silently_dropped_and_criticals_come_first(
    sqlite_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alerting.console.view as view

    monkeypatch.setattr(view, "MAX_ACTIVE_ALERTS", 5)
    monkeypatch.setattr(view, "MAX_RESOLVED_ALERTS", 2)
    clock.set(NOW)
    with console(sqlite_url, clock, budgets=[]) as (_services, client, parts):
        gateway = parts.gateway
        oldest = gateway.fire("LLMCostSpike", {"project": "first"}, severity="critical").alert
        for i in range(8):
            gateway.fire("LLMCostSpike", {"project": f"w{i}"}, severity="warning")
        gateway.ack(gateway.fire("LLMCostSpike", {"project": "acked"}, severity="warning").alert.id, by="ana")
        for i in range(4):
            gateway.fire("LLMCostSpike", {"project": f"r{i}"}, severity="warning")
            gateway.resolve("LLMCostSpike", {"project": f"r{i}"})
        html = client.get("/").text
        ids = re.findall(r'<tr class="alert state-row-(\w+)" data-id="(\d+)"', html)
        assert len(ids) == 5 + 2
        assert ids[0] == ("firing", str(oldest.id))  # the oldest critical is not the one left out
        text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
        assert "4 more firing" in text and "1 more acknowledged" in text and "2 more resolved" in text
        assert 'href="/v1/alerts?state=firing"' in html


def test_spikes_beyond_the_page_s_cap_are_counted_and_the_largest_are_shown(
    sqlite_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alerting.console.view as view
    from alerting.spikes.state import spike_state
    from alerting.spikes.state import state_row as _row

    monkeypatch.setattr(view, "MAX_SPIKES", 2)
    clock.set(NOW)
    with console(sqlite_url, clock) as (services, client, _parts):
        with services.store.transaction() as conn:
            for project, window in (("aa-small", 3.0), ("bb-big", 90.0), ("cc-mid", 40.0)):
                row = _row(
                    "project",
                    {"project": project},
                    window=window,
                    baseline=1.0,
                    ratio=window,
                    score=9.0,
                    minutes=30,
                    reason="spike",
                    firing=True,
                    since=NOW - 600,
                    now=NOW,
                )
                conn.execute(spike_state.insert().values(**row))
        html = client.get("/").text
        section = html[html.index('<section id="spikes">') :]
        shown = re.findall(r'project="([a-z-]+)"', section)
        assert shown == ["bb-big", "cc-mid"]  # the largest first, not the first two by name
        assert "1 more spike is firing" in " ".join(re.sub(r"<[^>]+>", " ", section).split())


def test_the_link_to_a_wildcard_budget_with_a_slash_in_its_name_reaches_it(sqlite_url: str, clock: FakeClock) -> None:
    # The "and N more" link used Jinja's `urlencode`, which leaves "/" as is: the link pointed to a path
    # that is not the budget. It now leads to the budget's own page in the console, every instance listed.
    clock.set(NOW)
    budgets = [{"name": "teams/chat", "scope": "project", "key": "*", "period": "monthly", "limit": 50.0}]
    with console(sqlite_url, clock, budgets=budgets) as (services, client, _parts):
        ingest(services, *(event(f"w{i}", NOW - 30, 0.01 * (i + 1), project=f"p{i:02d}") for i in range(60)))
        links = re.findall(r'<a href="(/\?budget=[^"]+)">', client.get("/").text)
        assert links == ["/?budget=teams%2Fchat#budget-teams%2Fchat"]
        followed = client.get(links[0])
        assert followed.status_code == 200, followed.text
        keys = re.findall(r'class="budget child" data-budget="teams/chat" data-key="(p\d+)"', followed.text)
        assert len(keys) == 60


def test_a_one_request_budget_reads_request_not_requests(sqlite_url: str, clock: FakeClock) -> None:
    # The budget row read "1 requests" spent of "1 requests", where the budget check and the alert say
    # "1 request".
    clock.set(NOW)
    edge = {"name": "edge", "scope": "global", "period": "daily", "unit": "requests", "limit": 1}
    with console(sqlite_url, clock, budgets=[edge]) as (services, client, _parts):
        ingest(services, event("a", NOW - 60, 0.01))
        row = re.search(r'<tr class="budget" data-budget="edge".*?</tr>', client.get("/").text, re.S)
        assert row
        cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(0))
        assert cells[:2] == ["1 request", "1 request"]
