"""The runbook served at /runbook: every runbook link llmcost or its rules emit opens on a running server.

A real `llmcost serve` with `external_url` set to its own address: the links it puts into the alerts it
raises, and those of the Prometheus rules rendered for that address (`prometheus/build_rules.py`), must
each answer 200 with the alert's anchor on the page.
"""

from __future__ import annotations

import html
import importlib.util
import re
import sys
from pathlib import Path
from urllib.parse import urldefrag

import httpx
import pytest
import yaml

from alerting.budgets.definition import ALERT_FOR_STATE, FORECAST_ALERT
from alerting.links import anchor, runbook_url
from alerting.runbook import render, section_titles
from alerting.spikes import ALERTNAME as SPIKE_ALERT
from exporter.config import parse_config
from tests.support import monitoring_assets as assets
from tests.support.procs import LlmcostProcess

pytestmark = pytest.mark.real_process

ADMIN = "runbook-admin-token-0123456789abcdef"
INGEST = "runbook-ingest-token-0123456789abcdef"
RAISED_BY_LLMCOST = sorted({*ALERT_FOR_STATE.values(), FORECAST_ALERT, SPIKE_ALERT})


def _build_rules():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("llmcost_build_rules", assets.REPO / "prometheus" / "build_rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def every_alert_name() -> list[str]:
    return RAISED_BY_LLMCOST + [rule["alert"] for rule in assets.alerting_rules()]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> LlmcostProcess:
    workdir = tmp_path_factory.mktemp("runbook")
    process = LlmcostProcess(f"sqlite:///{workdir / 'llmcost.db'}", config=workdir / "llmcost.yml")
    config = {
        "external_url": process.base,
        "auth": {"admin_tokens": [ADMIN], "ingest_tokens": [INGEST]},
        "budgets": {"evaluate_seconds": 1, "items": []},
    }
    (workdir / "llmcost.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    process.start(workdir)
    yield process
    process.stop()


def opens(url: str) -> str:
    """Fetch a runbook link; fails unless it answers 200 with its anchor as an element id."""
    page, fragment = urldefrag(url)
    response = httpx.get(page, timeout=10)
    assert response.status_code == 200, f"{url}: HTTP {response.status_code}"
    assert response.headers["content-type"].startswith("text/html")
    assert fragment and f'id="{fragment}"' in response.text, f"{url}: no element with id {fragment!r}"
    return response.text


def test_every_alert_name_has_a_section_and_an_anchor_on_the_served_page(server: LlmcostProcess) -> None:
    titles = section_titles(assets.RUNBOOK.read_text(encoding="utf-8"))
    missing = [name for name in every_alert_name() if name not in titles]
    assert not missing, f"docs/runbook.md has no section for {missing}"
    config = parse_config({"external_url": server.base})
    for name in every_alert_name():
        assert runbook_url(config, name) == f"{server.base}/runbook#{name.lower()}"
        opens(runbook_url(config, name))


def test_the_rules_runbook_links_open_when_rendered_for_this_server(server: LlmcostProcess, tmp_path: Path) -> None:
    build_rules = _build_rules()
    assert build_rules.main(["--out", str(tmp_path), "--runbook-base-url", f"{server.base}/runbook"]) == 0
    links = [
        rule["annotations"]["runbook_url"]
        for path in sorted(tmp_path.glob("*.rules.yml"))
        for group in assets.load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert len(links) == len(assets.alerting_rules())
    for link in links:
        opens(link)


def test_the_links_in_alerts_llmcost_raises_open(server: LlmcostProcess) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    budget = {"scope": "project", "key": "rb", "period": "monthly", "limit": 1, "unit": "usd", "mode": "soft"}
    assert httpx.put(f"{server.base}/v1/budgets/rb", json=budget, headers=admin, timeout=10).status_code in (200, 201)
    event = {"request_id": "rb-1", "provider": "openai", "model": "gpt-4o", "project": "rb", "cost_usd": 2.0}
    posted = httpx.post(f"{server.base}/v1/usage", json=event, headers={"Authorization": f"Bearer {INGEST}"})
    assert posted.json()["accepted"] == 1

    def raised() -> list[dict[str, str]]:
        alerts = httpx.get(f"{server.base}/v1/alerts", headers=admin, timeout=10).json()
        return [a for a in alerts if a["labels"].get("budget") == "rb"]

    from tests.support.live_stack import wait_until

    # One alert per budget instance, its name following the level reached: $2 of $1 is "exceeded".
    assert wait_until(lambda: any(a["alertname"] == "LLMBudgetExceeded" for a in raised()), timeout=30), raised()
    for alert in raised():
        link = alert["annotations"]["runbook_url"]
        assert link == f"{server.base}/runbook#{alert['alertname'].lower()}"
        opens(link)


def test_the_page_is_escaped_and_refuses_script_links(server: LlmcostProcess) -> None:
    page = render("# T\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) a < b & c\n\n## LLMCostSpike\n")
    assert "<script>" not in page and 'href="javascript:' not in page  # the link stays plain text
    assert html.escape("<script>alert(1)</script>") in page and "a &lt; b &amp; c" in page
    assert 'id="llmcostspike"' in page
    response = httpx.get(f"{server.base}/runbook", timeout=10)
    assert "default-src 'none'" in response.headers["content-security-policy"]
    source = httpx.get(f"{server.base}/runbook.md", timeout=10)
    assert source.status_code == 200 and source.text == assets.RUNBOOK.read_text(encoding="utf-8")


def test_anchors_are_the_ones_github_gives() -> None:
    assert anchor("LLMBudgetWarning") == "llmbudgetwarning"
    assert anchor("Budget exhaustion: finding the spend and acting on it") == (
        "budget-exhaustion-finding-the-spend-and-acting-on-it"
    )
    assert assets.markdown_anchors(assets.RUNBOOK) >= {anchor(t) for t in section_titles(assets.RUNBOOK.read_text())}
    assert re.search(r"^## LLMBudgetWarning$", assets.RUNBOOK.read_text(), re.MULTILINE)


def test_every_link_on_the_served_runbook_opens(server: LlmcostProcess) -> None:
    """Defect: the runbook's links to the other docs pages (`pricing.md`, `alerting-paths.md#runbook-links`)
    resolved against `/runbook` to `/pricing.md`, a 404: the on-call person following "see pricing" from
    an alert's runbook section hit a dead link. Those pages are now served beside it, rendered the same way,
    and their own links to each other open too."""
    from urllib.parse import urljoin

    opened: dict[str, str] = {}  # page -> its HTML
    queue = [f"{server.base}/runbook"]
    links = 0
    while queue:
        page = queue.pop()
        if page in opened:
            continue
        response = httpx.get(page, timeout=10)
        assert response.status_code == 200, f"{page}: HTTP {response.status_code}"
        opened[page] = response.text
        for href in re.findall(r'<a href="([^"]+)"', response.text):
            target, fragment = urldefrag(urljoin(page, html.unescape(href)))
            if not target.startswith(server.base):
                continue  # outside links (Prometheus, Grafana, GitHub) are not llmcost's to serve
            links += 1
            if target not in opened:
                answer = httpx.get(target, timeout=10)
                assert answer.status_code == 200, f"{href} on {page}: HTTP {answer.status_code}"
                if answer.headers["content-type"].startswith("text/html"):
                    queue.append(target)
                else:
                    opened[target] = answer.text
            if fragment:
                text = opened.get(target) or httpx.get(target, timeout=10).text
                assert f'id="{fragment}"' in text, f"{href} on {page}: no element with id {fragment!r}"
    assert f"{server.base}/docs/pricing.md" in opened and links > 20, sorted(opened)
    assert httpx.get(f"{server.base}/docs/..%2Fpyproject.toml", timeout=10).status_code == 404
    assert httpx.get(f"{server.base}/docs/no-such-page.md", timeout=10).status_code == 404


def test_every_docs_page_is_rendered_once_not_on_each_request() -> None:
    # Served without a token and rendered on the event loop (~10 ms a page): a cache smaller than the
    # docs made a client cycling through the pages re-render each one on every request.
    from alerting.runbook import DOC_DIRS, _rendered, doc_source

    folder = next(d for d in DOC_DIRS if (d / "runbook.md").is_file())
    pages = sorted(p.name for p in folder.glob("*.md"))
    _rendered.cache_clear()
    for _round in range(2):
        for name in pages:
            path = doc_source(name)
            assert path is not None, name
            _rendered(path, path.stat().st_mtime)
    assert _rendered.cache_info().misses == len(pages)


def test_an_image_the_docs_do_not_have_is_its_alt_text_not_a_broken_image() -> None:
    page = render("# T\n\n![the console](img/no-such.png) ![remote](https://example.com/x.png) ![x](../x.png)\n")
    assert "<img" not in page and "the console" in page and "remote" in page
    assert '<img src="/docs/img/console.png" alt="shown"' in render("# T\n\n![shown](img/console.png)\n")
