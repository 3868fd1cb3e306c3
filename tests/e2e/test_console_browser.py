"""The console in a real browser: headless Chromium loads the demo's console at `/` (a real `llmcost demo`
process), its figures agree with `/v1/budgets` and `/metrics`, and an alert acknowledged with the page's
button is acknowledged in the API. Screenshots are saved (set LLMCOST_SCREENSHOT_DIR to keep them;
LLMCOST_UPDATE_DOCS_SCREENSHOT=1 rewrites docs/img/console.png).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.support.browser import chromium, console_errors, full_page_screenshot, wait_for
from tests.support.helpers import total
from tests.support.paths import REPO
from tests.support.pg import PostgresCluster, free_port
from tests.support.procs import LLMCOST, LlmcostProcess
from tests.support.waiting import wait_until

# Budgets of UTC periods (all end at midnight UTC): spend, alerts and figures of one period per test.
pytestmark = [pytest.mark.real_process, pytest.mark.within_period("daily")]

TRACE_CALLS = 8819


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running `llmcost demo` with its trace loaded; yields the base URL."""
    port = free_port()
    work = tmp_path_factory.mktemp("demo")
    log = work / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*LLMCOST, "demo", "--listen", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TMPDIR": str(work)},
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def loaded_and_alerting() -> bool:
            assert proc.poll() is None, log.read_text()
            metrics = httpx.get(f"{base}/metrics", timeout=2).text
            alerts = httpx.get(f"{base}/v1/alerts?state=firing", timeout=2).json()
            return total(metrics, "llm_requests_total") >= TRACE_CALLS and bool(alerts)

        wait_until(
            loaded_and_alerting,
            timeout=90,
            interval=0.2,
            ignoring=(httpx.HTTPError,),
            what=lambda: f"the demo loading its trace and raising alerts: {log.read_text()[-2000:]}",
        )
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _api_figures(base: str) -> dict[str, object]:
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    budgets = httpx.get(f"{base}/v1/budgets", timeout=5).json()["budgets"]
    return {
        "cost": total(metrics, "llm_cost_usd_total"),
        "unpriced": total(metrics, "llm_unpriced_requests_total"),
        "budgets": {(b["name"], b["key"]): b for b in budgets},
    }


def _between(value: float, low: float, high: float) -> bool:
    # The demo keeps replaying its trace live: spend only grows, so the page's figure lies between the
    # API's answers just before and just after the page was rendered.
    return low - 1e-6 <= value <= high + 1e-6


def _screenshot_dir(tmp_path: Path) -> Path:
    return Path(os.environ.get("LLMCOST_SCREENSHOT_DIR") or tmp_path)


def test_console_figures_match_the_api_and_an_ack_reaches_it(demo: str, tmp_path: Path) -> None:
    shots = _screenshot_dir(tmp_path)
    with chromium(timezone="Asia/Kolkata") as driver:
        before = _api_figures(demo)
        driver.get(f"{demo}/")
        wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")
        after = _api_figures(demo)
        assert console_errors(driver) == []  # no failed load (a favicon included), no script error

        # Now: today and this month (the demo's budgets are in UTC) against the budgets, all time and
        # unpriced calls against /metrics.
        today = float(driver.find_element(By.CSS_SELECTOR, '.figure.today[data-zone="UTC"]').get_attribute("data-usd"))
        month = float(driver.find_element(By.CSS_SELECTOR, '.figure.month[data-zone="UTC"]').get_attribute("data-usd"))
        alltime = float(driver.find_element(By.CSS_SELECTOR, ".figure.alltime").get_attribute("data-usd"))
        unpriced = int(driver.find_element(By.CSS_SELECTOR, ".figure.unpriced").get_attribute("data-count"))
        daily = [before["budgets"][("daily-total", "")]["spent"], after["budgets"][("daily-total", "")]["spent"]]
        assert _between(today, *daily)
        monthly = [
            sum(b["spent"] for (n, _), b in f["budgets"].items() if n == "project-monthly") for f in (before, after)
        ]
        assert _between(month, *monthly)
        assert _between(alltime, before["cost"], after["cost"])
        assert _between(unpriced, before["unpriced"], after["unpriced"])
        assert unpriced > 0  # the demo's self-hosted model has no price

        # Top projects this month: each one's spend is its project-monthly budget instance's.
        for row in driver.find_elements(By.CSS_SELECTOR, 'table.top[data-dimension="project"] tr.share'):
            name = row.get_attribute("data-name")
            spent = [f["budgets"][("project-monthly", name)]["spent"] for f in (before, after)]
            assert _between(float(row.get_attribute("data-usd")), *spent), name

        # Budgets: one row per instance, each as /v1/budgets shows it; the "*" budget expands.
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.budget")
        instance_rows = [r for r in rows if r.get_attribute("data-key") != "*"]
        assert {(r.get_attribute("data-budget"), r.get_attribute("data-key")) for r in instance_rows} == set(
            after["budgets"]
        )
        for row in instance_rows:
            key = (row.get_attribute("data-budget"), row.get_attribute("data-key"))
            spent = [before["budgets"][key]["spent"], after["budgets"][key]["spent"]]
            assert _between(float(row.get_attribute("data-spent")), *spent), key
            assert float(row.get_attribute("data-limit")) == after["budgets"][key]["limit"]
            assert row.get_attribute("data-state") in {before["budgets"][key]["state"], after["budgets"][key]["state"]}
        child = driver.find_element(By.CSS_SELECTOR, 'tr.budget.child[data-budget="project-monthly"]')
        assert not child.is_displayed()
        driver.find_element(By.CSS_SELECTOR, 'tbody.wildcard tr.budget[data-key="*"] button.expand').click()
        wait_for(driver, lambda d: child.is_displayed())

        # Times are relabelled in the viewer's zone (here India, +05:30).
        tick = driver.find_element(By.CSS_SELECTOR, 'text.tick[data-fmt="hour"]')
        local = datetime.fromtimestamp(int(tick.get_attribute("data-t")), UTC).astimezone(ZoneInfo("Asia/Kolkata"))
        assert tick.text.replace("\u202f", " ") == local.strftime("%H:%M")

        # Spend over time: the switch re-stacks the charts by model.
        driver.find_element(By.CSS_SELECTOR, '.switch a[href^="?by=model"]').click()
        wait_for(driver, lambda d: "by=model" in d.current_url and d.find_elements(By.CSS_SELECTOR, "svg.chart rect"))
        legend = driver.find_element(By.CSS_SELECTOR, "#spend .legend").text
        assert "gpt-4o-mini" in legend

        full_page_screenshot(driver, shots / "console.png")
        if os.environ.get("LLMCOST_UPDATE_DOCS_SCREENSHOT") == "1":
            full_page_screenshot(driver, REPO / "docs" / "img" / "console.png")

        # Acknowledge a firing alert from the page, as a person would.
        driver.set_window_size(1400, 1000)
        actor = driver.find_element(By.ID, "actor")
        actor.clear()
        actor.send_keys("browser-test")
        driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", actor)
        button = driver.find_element(By.CSS_SELECTOR, "#alerts-body tr.alert[data-state=firing] button.ack")
        alert_id = button.get_attribute("data-id")
        driver.execute_script("arguments[0].scrollIntoView()", button)
        button.click()
        wait_for(
            driver,
            lambda d: d.find_elements(
                By.CSS_SELECTOR, f'#alerts-body tr.alert[data-id="{alert_id}"][data-state=acknowledged]'
            ),
        )
        alert = httpx.get(f"{demo}/v1/alerts/{alert_id}", timeout=5).json()
        assert alert["state"] == "acknowledged"
        assert alert["acknowledged_by"] == "browser-test"
        assert any(h["action"] == "acknowledged" and h["via"] == "api" for h in alert["history"])
        row = driver.find_element(By.CSS_SELECTOR, f'#alerts-body tr.alert[data-id="{alert_id}"]')
        assert "by browser-test" in row.text
        driver.save_screenshot(str(shots / "console-acknowledged.png"))

        # And back.
        row.find_element(By.CSS_SELECTOR, "button.unack").click()
        wait_for(
            driver,
            lambda d: d.find_elements(
                By.CSS_SELECTOR, f'#alerts-body tr.alert[data-id="{alert_id}"][data-state=firing]'
            ),
        )
        assert httpx.get(f"{demo}/v1/alerts/{alert_id}", timeout=5).json()["state"] == "firing"

        # The runbook the alerts link to loads as cleanly.
        driver.get(f"{demo}/runbook")
        wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")
        assert "LLMCostSpike" in driver.page_source and console_errors(driver) == []


ADMIN = "console-admin-token-0123456789"
INGEST = "console-ingest-token-0123456789"


def test_with_admin_tokens_the_token_entered_once_unlocks_alerts_and_acks(sqlite_url: str, tmp_path: Path) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(
        "auth:\n"
        f"  admin_tokens: [{ADMIN}]\n"
        f"  ingest_tokens: [{INGEST}]\n"
        "budgets:\n"
        "  - {name: tiny, scope: global, period: daily, limit: 1.0}\n"
    )
    server = LlmcostProcess(sqlite_url, config=config).start(tmp_path)
    try:
        event = {"provider": "openai", "model": "gpt-4o", "cost_usd": 2.0, "project": "<b>p</b>", "request_id": "t1"}
        posted = httpx.post(f"{server.base}/v1/usage", json=event, headers={"Authorization": f"Bearer {INGEST}"})
        assert posted.status_code == 200, posted.text
        with chromium() as driver:
            driver.get(f"{server.base}/")
            wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")
            assert driver.find_elements(By.ID, "alerts-locked")
            assert not driver.find_elements(By.CSS_SELECTOR, "tr.alert")
            driver.find_element(By.ID, "token").send_keys(ADMIN)
            driver.find_element(By.ID, "actor").send_keys("oncall-ana")
            driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
            wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#alerts-body tr.alert[data-state=firing]"))
            # Kept for the tab: a reload shows the alerts again without asking.
            driver.refresh()
            button = wait_for(
                driver,
                lambda d: d.find_elements(By.CSS_SELECTOR, "#alerts-body tr.alert[data-state=firing] button.ack"),
            )[0]
            alert_id = button.get_attribute("data-id")
            assert driver.execute_script("return document.cookie").find(ADMIN) == -1  # never a cookie
            button.click()
            wait_for(
                driver,
                lambda d: d.find_elements(
                    By.CSS_SELECTOR, f'#alerts-body tr.alert[data-id="{alert_id}"][data-state=acknowledged]'
                ),
            )
            admin = {"Authorization": f"Bearer {ADMIN}"}
            alert = httpx.get(f"{server.base}/v1/alerts/{alert_id}", headers=admin, timeout=5).json()
            assert alert["state"] == "acknowledged" and alert["acknowledged_by"] == "oncall-ana"
            # "Forget" drops the token: the alerts are locked again.
            driver.find_element(By.ID, "forget").click()
            wait_for(driver, lambda d: d.find_elements(By.ID, "alerts-locked"))
            assert driver.execute_script("return sessionStorage.getItem('llmcost.token')") is None
    finally:
        server.stop()


def test_a_wildcard_budget_shows_before_any_value_has_spent_and_expands_once_one_has(
    sqlite_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text("budgets:\n  - {name: per-team, scope: project, key: '*', period: weekly, limit: 20.0}\n")
    server = LlmcostProcess(sqlite_url, config=config).start(tmp_path)
    try:
        listed = httpx.get(f"{server.base}/v1/budgets", timeout=5).json()["budgets"]
        assert [(b["name"], b["key"], b["spent"]) for b in listed] == [("per-team", "*", 0.0)]
        with chromium() as driver:
            driver.get(f"{server.base}/")
            wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")
            assert console_errors(driver) == []
            rows = driver.find_elements(By.CSS_SELECTOR, 'tr.budget[data-budget="per-team"]')
            assert len(rows) == 1, "a defined budget is missing from the console"
            row = rows[0]
            assert row.get_attribute("data-key") == "*" and float(row.get_attribute("data-spent")) == 0
            cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
            assert cells[1].startswith("*") and "no key has spent yet" in cells[1]
            assert cells[2] == "weekly" and cells[4] == "$0.00" and cells[5] == "$20.00"
            end = datetime.fromisoformat(listed[0]["period_end"].replace("Z", "+00:00"))
            assert int(row.find_element(By.TAG_NAME, "time").get_attribute("data-t")) == int(end.timestamp())
            assert not row.find_elements(By.CSS_SELECTOR, "button.expand")

            event = {"provider": "openai", "model": "gpt-4o", "cost_usd": 1.25, "project": "web", "request_id": "w1"}
            assert httpx.post(f"{server.base}/v1/usage", json=event, timeout=5).status_code == 200
            driver.refresh()
            wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, 'tr.budget.child[data-budget="per-team"]'))
            summary = driver.find_element(By.CSS_SELECTOR, 'tr.budget[data-budget="per-team"][data-key="*"]')
            assert float(summary.get_attribute("data-spent")) == 1.25
            assert "no key has spent yet" not in summary.text
            summary.find_element(By.CSS_SELECTOR, "button.expand").click()
            child = driver.find_element(By.CSS_SELECTOR, 'tr.budget.child[data-budget="per-team"][data-key="web"]')
            wait_for(driver, lambda d: child.is_displayed())
    finally:
        server.stop()


DAILY_GLOBAL_BUDGET = "    - {name: daily, scope: global, period: daily, limit: 1.0}\n"


@contextmanager
def console_with_firing_alerts(
    sqlite_url: str, tmp_path: Path, budget: str, events: list[dict[str, object]], config_head: str = ""
) -> Iterator[tuple[LlmcostProcess, WebDriver]]:
    """A server with one `budget` (a YAML list item) evaluated every second, `events` ingested, one alert
    firing per event, and the console open on it in Chromium. `config_head`: more of the config (YAML)."""
    config = tmp_path / "llmcost.yml"
    config.write_text(f"{config_head}budgets:\n  evaluate_seconds: 1\n  items:\n{budget}")
    server = LlmcostProcess(sqlite_url, config=config).start(tmp_path)
    try:
        assert httpx.post(f"{server.base}/v1/usage", json=events, timeout=5).status_code == 200
        wait_until(
            lambda: len(httpx.get(f"{server.base}/v1/alerts?state=firing", timeout=5).json()) == len(events),
            timeout=30,
            what=f"{len(events)} firing alert(s)",
        )
        with chromium() as driver:
            driver.get(f"{server.base}/")
            wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")
            yield server, driver
    finally:
        server.stop()


def test_keyboard_and_screen_reader_users_can_tell_the_buttons_apart_and_keep_their_place(
    sqlite_url: str, tmp_path: Path
) -> None:
    budget = "    - {name: per-project, scope: project, key: '*', period: monthly, limit: 1.0}\n"
    events: list[dict[str, object]] = [
        {"provider": "openai", "model": "gpt-4o", "cost_usd": 2.0, "project": f"p{i}", "request_id": f"k{i}"}
        for i in range(2)
    ]
    with console_with_firing_alerts(sqlite_url, tmp_path, budget, events) as (_server, driver):
        expand = driver.find_element(By.CSS_SELECTOR, "button.expand")
        assert expand.accessible_name == "show each project of budget per-project"
        buttons = driver.find_elements(By.CSS_SELECTOR, "#alerts-body button.ack")
        names = [b.accessible_name for b in buttons]
        assert len(set(names)) == 2, names  # not two buttons both just called "Acknowledge"
        assert "Acknowledge LLMBudgetExceeded (budget=per-project, key=p0, scope=project)" in names

        # Enter on a focused button acknowledges; the focus stays on that alert, now on Unacknowledge.
        button = buttons[0]
        alert_id = button.get_attribute("data-id")
        driver.execute_script("arguments[0].focus()", button)
        button.send_keys(Keys.ENTER)
        wait_for(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, f'tr.alert[data-id="{alert_id}"][data-state=acknowledged]'),
        )
        focused = wait_for(driver, lambda d: d.switch_to.active_element.get_attribute("data-id") == alert_id)
        assert focused
        assert driver.switch_to.active_element.get_attribute("data-action") == "unack"
        assert console_errors(driver) == []


def test_acknowledging_an_alert_someone_else_just_acknowledged_says_so(sqlite_url: str, tmp_path: Path) -> None:
    event: dict[str, object] = {"provider": "openai", "model": "gpt-4o", "cost_usd": 2.0, "request_id": "o1"}
    with console_with_firing_alerts(sqlite_url, tmp_path, DAILY_GLOBAL_BUDGET, [event]) as (server, driver):
        button = driver.find_element(By.CSS_SELECTOR, "#alerts-body button.ack")
        alert_id = button.get_attribute("data-id")
        # Someone else (another tab, Slack, the CLI) acknowledges it while this page is open.
        other = httpx.post(f"{server.base}/v1/alerts/{alert_id}/ack", json={"by": "oncall-bo"}, timeout=5)
        assert other.status_code == 200
        button.click()
        wait_for(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, f'tr.alert[data-id="{alert_id}"][data-state=acknowledged]'),
        )
        status = driver.find_element(By.ID, "alert-status").text
        assert status == f"Alert {alert_id} was already acknowledged by oncall-bo.", status
        alert = httpx.get(f"{server.base}/v1/alerts/{alert_id}", timeout=5).json()
        assert alert["acknowledged_by"] == "oncall-bo"
        assert [h["by"] for h in alert["history"] if h["action"] == "acknowledged"] == ["oncall-bo"]


def test_on_a_phone_wide_tables_scroll_inside_their_section_not_the_whole_page(sqlite_url: str, tmp_path: Path) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text("budgets:\n  - {name: per-project, scope: project, key: '*', period: monthly, limit: 100.0}\n")
    server = LlmcostProcess(sqlite_url, config=config).start(tmp_path)
    try:
        event = {"provider": "openai", "model": "gpt-4o", "cost_usd": 2.0, "project": "web", "request_id": "n1"}
        assert httpx.post(f"{server.base}/v1/usage", json=event, timeout=5).status_code == 200
        with chromium(width=420, height=900) as driver:
            driver.get(f"{server.base}/")
            wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")
            page = driver.execute_script("var e = document.documentElement; return [e.scrollWidth, e.clientWidth];")
            assert page[0] <= page[1], f"the page scrolls sideways: {page}"
            budgets = driver.find_element(By.ID, "budgets")
            # The budgets table is wider than the phone: its section scrolls it, the rest of the page stays put.
            assert driver.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", budgets)
            full_page_screenshot(driver, _screenshot_dir(tmp_path) / "console-phone.png", width=420)
    finally:
        server.stop()


def test_an_answer_that_is_not_json_from_a_proxy_in_front_gives_a_clear_message(
    sqlite_url: str, tmp_path: Path
) -> None:
    event: dict[str, object] = {"provider": "openai", "model": "gpt-4o", "cost_usd": 2.0, "request_id": "p1"}
    with console_with_firing_alerts(sqlite_url, tmp_path, DAILY_GLOBAL_BUDGET, [event]) as (_server, driver):
        # A reverse proxy that lost llmcost answers with its own HTML page.
        driver.execute_script(
            "window.fetch = function () { return Promise.resolve(new Response('<html><body>502 Bad Gateway'"
            " + '</body></html>', {status: 502, headers: {'Content-Type': 'text/html'}})); };"
        )
        button = driver.find_element(By.CSS_SELECTOR, "#alerts-body button.ack")
        alert_id = button.get_attribute("data-id")
        button.click()
        status = wait_for(driver, lambda d: d.find_element(By.ID, "alert-status").text)
        assert status == f"Alert {alert_id}: HTTP 502", status
        assert button.is_enabled()  # the person may try again


def test_chart_days_and_hover_times_are_in_the_zones_the_page_names_and_the_viewer_s_zone_is_remembered(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A viewer in Honolulu, budgets in Los Angeles. The browser's zone cookie was percent-encoded by the
    script and never decoded by the server, so the 30-day chart stayed in the budgets' zone on every
    visit; its day ticks, relabelled in the viewer's zone, named the day before the one each bar is
    (midnight in Los Angeles is 21:00 or 22:00 the evening before in Honolulu); and the bars' hover
    texts kept the server's UTC hour beside axis ticks in the viewer's zone."""
    config = tmp_path / "llmcost.yml"
    config.write_text(
        "budgets:\n  - {name: la, scope: global, period: daily, limit: 100.0, timezone: America/Los_Angeles}\n"
    )
    server = LlmcostProcess(sqlite_url, config=config).start(tmp_path)
    viewer, budgets = ZoneInfo("Pacific/Honolulu"), ZoneInfo("America/Los_Angeles")

    def day(epoch: str, zone: ZoneInfo) -> str:
        local = datetime.fromtimestamp(int(epoch), UTC).astimezone(zone)
        return f"{local:%b} {local.day}"

    try:
        event = {"provider": "openai", "model": "gpt-4o", "cost_usd": 2.0, "project": "web", "request_id": "z1"}
        assert httpx.post(f"{server.base}/v1/usage", json=event, timeout=5).status_code == 200
        with chromium(timezone="Pacific/Honolulu") as driver:
            for visit, chart_zone in ((1, budgets), (2, viewer)):  # the first page sets the cookie
                driver.get(f"{server.base}/")
                wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")
                caption = driver.find_element(By.CSS_SELECTOR, "[data-zone-caption]").text
                assert caption == f"(days in {chart_zone.key})", (visit, caption)
                hour_chart, day_chart = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
                for tick in day_chart.find_elements(By.CSS_SELECTOR, "text.tick"):
                    assert tick.text == day(tick.get_attribute("data-t"), chart_zone), (visit, tick.text)
                # Hover texts (an SVG <title>: textContent): a day in the chart's zone, an hour in the viewer's.
                read = (
                    "return Array.from(arguments[0].querySelectorAll('rect title'))"
                    ".map(t => [t.dataset.t, t.textContent])"
                )
                (start, text), *_ = driver.execute_script(read, day_chart)
                assert text == f"web: $2.00 · {day(start, chart_zone)}", (visit, text)
                (start, text), *_ = driver.execute_script(read, hour_chart)
                hour = datetime.fromtimestamp(int(start), UTC).astimezone(viewer).strftime("%H:%M")
                assert text.replace("\u202f", " ") == f"web: $2.00 · {hour}", (visit, text)
            assert console_errors(driver) == []
            full_page_screenshot(driver, _screenshot_dir(tmp_path) / "console-honolulu.png")
    finally:
        server.stop()


@pytest.mark.postgres
def test_while_the_store_does_not_answer_the_console_says_so_and_comes_back_by_itself(tmp_path: Path) -> None:
    """PostgreSQL stopped: the on-call person opening the console got the API's JSON error as the whole
    page (`{"error":"store unavailable, retry later","detail":null}`), no links, no way on. Now a page
    that says what is wrong and where to look (still a 503 with Retry-After), asking again by itself."""
    cluster = PostgresCluster().start()  # its own: this test stops it
    try:
        server = LlmcostProcess(cluster.create_database()).start(tmp_path)
        try:
            with chromium(width=500, height=900) as driver:
                driver.get(f"{server.base}/")
                wait_for(driver, lambda d: d.find_elements(By.ID, "budgets"))
                cluster.stop()
                answer = httpx.get(f"{server.base}/", timeout=20)
                assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
                assert answer.headers["content-type"].startswith("text/html")
                assert answer.headers["content-security-policy"].startswith("default-src 'none'")
                driver.refresh()
                notice = wait_for(driver, lambda d: d.find_elements(By.ID, "unavailable"))[0]
                assert "The store is not answering" in notice.text and "llm_store_up 0" in notice.text
                links = {a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "a[href]")}
                runbook = f"{server.base}/runbook#llmcoststoredown"
                assert {f"{server.base}/metrics", f"{server.base}/readyz", runbook} <= links
                assert 'id="llmcoststoredown"' in httpx.get(runbook, timeout=5).text
                assert httpx.get(f"{server.base}/metrics", timeout=20).status_code == 200
                full_page_screenshot(driver, _screenshot_dir(tmp_path) / "console-store-down.png", width=500)
                assert [e for e in console_errors(driver) if "503" not in e] == []  # the page's own status only

                cluster.restart()  # the same cluster and data, answering again
                wait_for(driver, lambda d: d.find_elements(By.ID, "budgets"), timeout=60)  # no reload by hand
                assert not driver.find_elements(By.ID, "unavailable")
        finally:
            server.stop()
    finally:
        cluster.destroy()


def test_on_a_phone_each_alert_s_button_is_in_view_without_scrolling_sideways(sqlite_url: str, tmp_path: Path) -> None:
    """The on-call person opens the console on a phone: the alerts table was wider than the screen,
    Acknowledge sat beyond its right edge and the labels broke letter by letter."""
    budget = "    - {name: code-assist-hourly-requests, scope: project, key: '*', period: monthly, limit: 1.0}\n"
    events: list[dict[str, object]] = [
        {"provider": "openai", "model": "gpt-4o", "cost_usd": 2.0, "project": f"code-assist-{i}", "request_id": f"m{i}"}
        for i in range(2)
    ]
    with console_with_firing_alerts(sqlite_url, tmp_path, budget, events) as (_server, driver):
        driver.set_window_size(420, 900)
        driver.refresh()
        wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#alerts-body button.ack")) == 2)
        viewport = driver.execute_script("return document.documentElement.clientWidth")
        assert viewport <= 640
        alerts = driver.find_element(By.ID, "alerts")
        assert driver.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", alerts)
        for button in driver.find_elements(By.CSS_SELECTOR, "#alerts-body button.ack"):
            right = driver.execute_script("return arguments[0].getBoundingClientRect().right", button)
            assert right <= viewport, f"Acknowledge at x={right}, the screen {viewport} wide"
        # A label value stays whole on its line (here the longest, the budget's name).
        label = driver.find_element(By.CSS_SELECTOR, "#alerts-body .label b")
        assert label.text == "code-assist-hourly-requests"
        assert driver.execute_script("return arguments[0].getClientRects().length", label) == 1
        driver.execute_script("arguments[0].scrollIntoView()", alerts)
        driver.save_screenshot(str(_screenshot_dir(tmp_path) / "console-phone-alerts.png"))
        button = driver.find_element(By.CSS_SELECTOR, "#alerts-body button.ack")
        alert_id = button.get_attribute("data-id")
        button.click()  # a real click: it fails on a button out of view
        wait_for(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, f'tr.alert[data-id="{alert_id}"][data-state=acknowledged]'),
        )


def test_each_alert_links_its_runbook_section_and_its_dashboard_on_a_desktop_and_on_a_phone(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Every alert carries `runbook_url` and `dashboard_url`: the person reading it on the console follows them."""
    shots = _screenshot_dir(tmp_path)
    events: list[dict[str, object]] = [
        {"provider": "openai", "model": "gpt-4o", "cost_usd": 2.0, "project": "web", "request_id": "l1"}
    ]
    head = "grafana_url: https://grafana.example.com/d/llmcost-overview\n"
    with console_with_firing_alerts(sqlite_url, tmp_path, DAILY_GLOBAL_BUDGET, events, head) as (server, driver):
        (alert,) = httpx.get(f"{server.base}/v1/alerts?state=firing", timeout=5).json()
        notes = alert["annotations"]
        assert notes["runbook_url"].endswith("/runbook#llmbudgetexceeded")
        assert notes["dashboard_url"] == "https://grafana.example.com/d/llmcost-budgets?var-budget=daily"
        for width in (1400, 420):
            driver.set_window_size(width, 900)
            driver.refresh()
            row = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#alerts-body tr.alert"))[0]
            runbook = row.find_element(By.CSS_SELECTOR, "a.runbook")
            dashboard = row.find_element(By.CSS_SELECTOR, "a.dashboard")
            assert runbook.get_attribute("href") == notes["runbook_url"]
            assert dashboard.get_attribute("href").startswith(notes["dashboard_url"] + "&from=")
            assert dashboard.get_attribute("href").endswith("&to=now")
            assert runbook.get_attribute("target") in (None, "")  # a normal link: same tab, back button works
            which = "LLMBudgetExceeded (budget=daily, key=, scope=global)"
            assert runbook.get_attribute("aria-label") == f"Runbook for {which}"
            viewport = driver.execute_script("return document.documentElement.clientWidth")
            for link in (runbook, dashboard):
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
                assert link.is_displayed()
                assert driver.execute_script("return arguments[0].getBoundingClientRect().right", link) <= viewport
            driver.save_screenshot(str(shots / f"console-alert-links-{width}.png"))
        runbook.click()  # a real click, on the phone
        wait_for(driver, lambda d: d.current_url == notes["runbook_url"])
        heading = driver.find_element(By.ID, "llmbudgetexceeded")
        assert heading.text == "LLMBudgetExceeded"
