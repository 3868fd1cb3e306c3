"""The console in headless Chromium with `/metrics` guarded (`auth.metrics_tokens`): spend, budgets
and spikes are hidden until the person enters a metrics or admin token, then the page's script asks for
the page again with it and puts them in (times relabelled, "*" budgets expandable). "Forget" hides
them again. Screenshots are saved (set LLMCOST_SCREENSHOT_DIR to keep them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from tests.support.browser import chromium, console_errors, full_page_screenshot, wait_for
from tests.support.procs import LlmcostProcess

# Budgets of UTC periods (all end at midnight UTC): spend, alerts and figures of one period per test.
pytestmark = [pytest.mark.real_process, pytest.mark.within_period("daily")]

ADMIN = "guard-admin-token-0123456789"
METRICS = "guard-metrics-token-0123456789"
INGEST = "guard-ingest-token-0123456789"
PROJECT = "zebra-secret-project"
BUDGET = "quokka-budget"


@contextmanager
def guarded_server(sqlite_url: str, tmp_path: Path) -> Iterator[LlmcostProcess]:
    config = tmp_path / "llmcost.yml"
    config.write_text(
        "auth:\n"
        f"  admin_tokens: [{ADMIN}]\n"
        f"  ingest_tokens: [{INGEST}]\n"
        f"  metrics_tokens: [{METRICS}]\n"
        "budgets:\n"
        f"  - {{name: {BUDGET}, scope: project, key: '*', period: monthly, limit: 50.0}}\n"
    )
    server = LlmcostProcess(sqlite_url, config=config).start(tmp_path)
    try:
        event = {"provider": "openai", "model": "gpt-4o", "cost_usd": 12.34, "project": PROJECT, "request_id": "g1"}
        posted = httpx.post(f"{server.base}/v1/usage", json=event, headers={"Authorization": f"Bearer {INGEST}"})
        assert posted.status_code == 200, posted.text
        yield server
    finally:
        server.stop()


def _loaded(driver: WebDriver) -> None:
    wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")


def _enter(driver: WebDriver, token: str) -> None:
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()


def _hidden(driver: WebDriver) -> bool:
    return bool(driver.find_elements(By.ID, "figures-locked")) and PROJECT not in driver.page_source


def test_the_token_entered_shows_the_figures_and_forget_hides_them(sqlite_url: str, tmp_path: Path) -> None:
    shots = Path(os.environ.get("LLMCOST_SCREENSHOT_DIR") or tmp_path)
    with guarded_server(sqlite_url, tmp_path) as server, chromium() as driver:
        driver.get(f"{server.base}/")
        _loaded(driver)
        assert _hidden(driver) and BUDGET not in driver.page_source and "$12.34" not in driver.page_source
        full_page_screenshot(driver, shots / "console-figures-hidden.png")

        _enter(driver, ADMIN)
        share = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr.share[data-name="{PROJECT}"]'))[0]
        assert "$12.34" in share.text
        assert not driver.find_elements(By.ID, "figures-locked")
        # The sections' initialisation ran: times in the viewer's zone, the "*" budget expands.
        period_end = driver.find_element(By.CSS_SELECTOR, "#budgets time[data-t]")
        assert "UTC" not in period_end.text and period_end.get_attribute("datetime")
        summary = driver.find_element(By.CSS_SELECTOR, f'tr.budget[data-budget="{BUDGET}"][data-key="*"]')
        summary.find_element(By.CSS_SELECTOR, "button.expand").click()
        child = driver.find_element(By.CSS_SELECTOR, f'tr.budget.child[data-budget="{BUDGET}"][data-key="{PROJECT}"]')
        wait_for(driver, lambda d: child.is_displayed())
        # An admin token: the alerts section is loaded with it too.
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, '#alerts-body[data-loaded="yes"]'))
        assert console_errors(driver) == []
        full_page_screenshot(driver, shots / "console-figures-shown.png")

        # Kept for the tab: a reload shows them again without asking; "Forget" hides them at once.
        driver.refresh()
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr.share[data-name="{PROJECT}"]'))
        driver.find_element(By.ID, "forget").click()
        wait_for(driver, _hidden)
        assert BUDGET not in driver.page_source
        driver.refresh()
        _loaded(driver)
        assert _hidden(driver)


def test_a_metrics_token_shows_the_figures_not_the_alerts_and_a_wrong_one_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    with guarded_server(sqlite_url, tmp_path) as server, chromium() as driver:
        driver.get(f"{server.base}/?budget={BUDGET}")
        _loaded(driver)
        _enter(driver, "not-a-token")
        wait_for(driver, lambda d: "refused" in d.find_element(By.ID, "alert-status").text)
        assert _hidden(driver)
        assert driver.execute_script("return sessionStorage.getItem('llmcost.token')") is None

        _enter(driver, METRICS)
        # One budget's page: every instance listed open, as with the token in the header.
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr.budget.child[data-key="{PROJECT}"]'))
        wait_for(driver, lambda d: "alerts need an admin token" in d.find_element(By.ID, "alert-status").text)
        assert driver.find_elements(By.ID, "alerts-locked")
        assert driver.execute_script("return sessionStorage.getItem('llmcost.token')") == METRICS


def _dead_ends(driver: WebDriver, base: str) -> list[str]:
    """The page's links to this server that a click does not open: a link carries no token."""
    hrefs = {a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "a[href]")}
    ours = sorted(h.split("#", 1)[0] for h in hrefs if h.startswith(base + "/"))
    dead = []
    for href in ours:
        driver.get(href)  # as the person's click: a navigation, no Authorization header
        _loaded(driver)
        if driver.execute_script("return document.body.innerText").lstrip().startswith('{"error"'):
            dead.append(href)
    return dead


def test_every_link_on_the_guarded_console_opens_for_the_person_who_clicks_it(sqlite_url: str, tmp_path: Path) -> None:
    """With admin and metrics tokens set, the links to `/metrics`, `/v1/budgets`, `/v1/alerts` and "N more
    firing (/v1/alerts?state=firing)" answered a click with a raw 401: the console's token is in its script."""
    shots = Path(os.environ.get("LLMCOST_SCREENSHOT_DIR") or tmp_path)
    with guarded_server(sqlite_url, tmp_path) as server, chromium() as driver:
        # More firing alerts than the page lists (500), as Alertmanager sends them.
        alerts = [
            {
                "status": "firing",
                "labels": {"alertname": "LLMCostSpike", "project": f"p{i}"},
                "annotations": {"summary": f"spike {i}"},
                "startsAt": "2026-12-07T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
            for i in range(503)
        ]
        payload = {"version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "llmcost", "alerts": alerts}
        assert httpx.post(f"{server.base}/v1/alertmanager", json=payload, timeout=30).status_code == 200
        driver.get(f"{server.base}/")
        _loaded(driver)
        assert _dead_ends(driver, server.base) == []

        driver.get(f"{server.base}/")
        _loaded(driver)
        _enter(driver, ADMIN)
        more = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#alerts-body .more-alerts"))[0]
        assert "3 more firing" in more.text
        assert "/v1/alerts?state=firing with an admin token, or llmcost alerts list --state firing" in more.text
        driver.execute_script("arguments[0].scrollIntoView()", more)
        driver.save_screenshot(str(shots / "console-guarded-more-alerts.png"))
        assert _dead_ends(driver, server.base) == []
