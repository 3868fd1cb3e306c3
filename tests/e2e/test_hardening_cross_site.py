"""Budget writes and notification retries from other sites' pages, against a real `llmcost serve` without tokens.

Without `auth.admin_tokens` the admin endpoints are open on loopback. The ack endpoints refused browser
requests from other sites (docs/console.md), but the budget writes and the retry did not: any page the
operator visited could reset a budget (a `no-cors` POST whose body has no type needs no preflight; the
reset resolves the budget's alerts and restarts its count, so a hard budget allows calls again), or
requeue a dead letter (sent again: a page); a DNS name rebound to 127.0.0.1 could also replace or
delete budgets. They now refuse such requests as acks do; scripts and curl, which send no `Origin`,
and the console's own page are unaffected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.procs import LlmcostProcess

pytestmark = pytest.mark.real_process

BUDGET = {"scope": "global", "period": "daily", "limit": 10}
CROSS_SITE = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LlmcostProcess]:
    config = tmp_path / "llmcost.yml"
    config.write_text(yaml.safe_dump({"budgets": []}))
    llmcost = LlmcostProcess(f"sqlite:///{tmp_path / 'llmcost.db'}", config=config).start(tmp_path)
    try:
        yield llmcost
    finally:
        llmcost.stop()


def untyped_post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """A POST without Content-Type, as `fetch(url, {method: "POST", mode: "no-cors", body: blob})` sends it."""
    request = httpx.Request("POST", url, content=body, headers=headers)
    request.headers.pop("content-type", None)
    with httpx.Client() as client:
        return client.send(request)


def test_another_site_cannot_reset_replace_or_delete_a_budget(server: LlmcostProcess) -> None:
    base = server.base
    assert httpx.put(f"{base}/v1/budgets/team", json=BUDGET).status_code == 200
    reset = untyped_post(f"{base}/v1/budgets/team/reset", b'{"by": "evil", "reason": "x"}', CROSS_SITE)
    assert reset.status_code == 403, reset.text

    host = f"evil.example:{server.port}"  # a DNS name rebound to 127.0.0.1: same-origin for the browser
    rebound = {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
    replaced = httpx.put(f"{base}/v1/budgets/team", json={**BUDGET, "limit": 10**9}, headers=rebound)
    assert replaced.status_code == 403, replaced.text
    assert httpx.delete(f"{base}/v1/budgets/team", headers=rebound).status_code == 403
    assert httpx.delete(f"{base}/v1/budgets/team", headers=CROSS_SITE).status_code == 403

    status = httpx.get(f"{base}/v1/budgets/team").json()
    assert status["limit"] == 10
    assert status.get("reset_at") is None

    # The console's own page (a loopback origin) and clients that are not browsers still may.
    own = {"Origin": base, "Sec-Fetch-Site": "same-origin"}
    assert httpx.put(f"{base}/v1/budgets/team", json={**BUDGET, "limit": 20}, headers=own).status_code == 200
    assert httpx.post(f"{base}/v1/budgets/team/reset", json={"by": "alice"}).status_code == 200
    assert httpx.delete(f"{base}/v1/budgets/team").status_code == 204


def test_another_site_cannot_requeue_a_notification(server: LlmcostProcess) -> None:
    refused = untyped_post(f"{server.base}/v1/notifications/1/retry", b"", CROSS_SITE)
    assert refused.status_code == 403, refused.text
    # Without the browser's headers the request reaches the outbox: no notification 1 here.
    assert httpx.post(f"{server.base}/v1/notifications/1/retry").status_code == 404


def test_a_rebound_name_cannot_ingest_spend_or_raise_alerts(server: LlmcostProcess) -> None:
    # Other sites' JSON POSTs are stopped by the browser (llmcost answers no CORS preflight), but a DNS name
    # rebound to 127.0.0.1 is same-origin to it: fake spend (a hard budget then refuses real calls) or a
    # fake Alertmanager alert (a page) came through.
    base = server.base
    host = f"evil.example:{server.port}"
    rebound = {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
    event = {"request_id": "forged", "provider": "openai", "model": "gpt-4o", "input_tokens": 1, "cost_usd": 1000}
    refused = httpx.post(f"{base}/v1/usage", json=event, headers=rebound)
    assert refused.status_code == 403
    assert "rebound" in refused.json()["error"]  # the loopback listener's Host check (exporter.http.host_guard)
    span = {"resourceSpans": []}
    assert httpx.post(f"{base}/v1/traces", json=span, headers=rebound).status_code == 403
    alert = {
        "version": "4",
        "status": "firing",
        "receiver": "llmcost",
        "alerts": [{"status": "firing", "labels": {"alertname": "Forged"}, "startsAt": "2026-12-07T00:00:00Z"}],
    }
    forged = httpx.post(f"{base}/v1/alertmanager", json=alert, headers=rebound)
    assert forged.status_code == 403
    assert httpx.get(f"{base}/v1/alerts").json() == []
    assert "forged" not in httpx.get(f"{base}/metrics").text.lower()
    # Senders that are not browsers (the SDK, LiteLLM, OTel exporters, Alertmanager) send no Origin.
    assert httpx.post(f"{base}/v1/usage", json={**event, "request_id": "real"}).json()["accepted"] == 1
