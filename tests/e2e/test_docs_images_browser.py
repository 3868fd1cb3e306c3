"""The docs pages llmcost serves (`/runbook`, `/docs/NAME.md`) in headless Chromium: every image a page
shows loads. `/docs/console.md` showed a broken image: `img/console.png` answered 404 and the pages' CSP
allowed `data:` images only. Screenshots are saved (set LLMCOST_SCREENSHOT_DIR to keep them).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.support.browser import chromium, console_errors, wait_for
from tests.support.paths import REPO
from tests.support.procs import LlmcostProcess

pytestmark = pytest.mark.real_process


def test_every_image_a_served_docs_page_references_loads(sqlite_url: str, tmp_path: Path) -> None:
    shots = Path(os.environ.get("LLMCOST_SCREENSHOT_DIR") or tmp_path)
    pages = ["/runbook", *(f"/docs/{p.name}" for p in sorted((REPO / "docs").glob("*.md")))]
    server = LlmcostProcess(sqlite_url).start(tmp_path)
    try:
        with chromium() as driver:
            shown: dict[str, list[str]] = {}
            for page in pages:
                driver.get(f"{server.base}{page}")
                wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")
                assert driver.find_elements(By.TAG_NAME, "h1"), f"{page} is not a rendered docs page"
                images = driver.find_elements(By.TAG_NAME, "img")
                for img in images:
                    loaded = driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
                    assert loaded, f"{page}: the image {img.get_attribute('src')} does not load"
                    right = driver.execute_script("return arguments[0].getBoundingClientRect().right", img)
                    assert right <= driver.execute_script("return document.documentElement.clientWidth"), page
                assert console_errors(driver) == [], page  # no 404, no CSP refusal
                shown[page] = [img.get_attribute("src") for img in images]
            assert shown["/docs/console.md"] == [f"{server.base}/docs/img/console.png"]
            driver.get(f"{server.base}/docs/console.md")
            driver.save_screenshot(str(shots / "docs-console-page.png"))
    finally:
        server.stop()
