"""What `llmcost serve` logs holds no credential, whichever library writes the line (real process).

Defect: an `alertmanager.urls` entry reaching an Alertmanager behind basic auth (`http://user:password@am:9093`,
the form docs/configuration.md names) or behind a proxy holding its token in the path
(`https://am.example/api/TOKEN123`, docs/alerting-paths.md) put that secret in the log at the default level:
httpx, which pushes llmcost's alerts, logs every request's URL whole at INFO (`HTTP Request: POST
http://user:password@…`). llmcost's own lines about the same push redacted it; the library's did not. httpx
now logs warnings only, and every line is written through the one redaction (`exporter/redaction.py`),
tracebacks included.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.support.llmcost_server import ingest, running_llmcost
from tests.support.recording_servers import RecordingServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

PASSWORD = "am-basic-auth-pw-0123456789"
PATH_TOKEN = "am-proxy-path-token-0123456789"


def test_alertmanager_credentials_in_its_urls_stay_out_of_the_log(tmp_path: Path) -> None:
    budget = {"name": "daily-total", "scope": "global", "period": "daily", "limit": 1}
    with RecordingServer() as alertmanager:
        base = alertmanager.url.rstrip("/")
        urls = [base.replace("http://", f"http://llmcost:{PASSWORD}@"), f"{base}/{PATH_TOKEN}"]
        with running_llmcost(
            tmp_path, f"sqlite:///{tmp_path / 'llmcost.db'}", alertmanager={"urls": urls}, budgets=[budget]
        ) as server:
            ingest(server, [{"request_id": "r1", "provider": "openai", "model": "gpt-4o", "cost_usd": 5.0}])

            def pushed_to_both() -> bool:
                paths = {r.path for r in alertmanager.requests if r.method == "POST"}
                return {"/api/v2/alerts", f"/{PATH_TOKEN}/api/v2/alerts"} <= paths

            wait_until(pushed_to_both, timeout=30, what="the budget alert pushed to both Alertmanager URLs")
        log = server.log()  # read once the process has stopped: every line about the pushes is written

    push = next(r for r in alertmanager.requests if r.path == "/api/v2/alerts")
    assert push.header("authorization") == "Basic " + base64.b64encode(f"llmcost:{PASSWORD}".encode()).decode()
    assert "serving on http://127.0.0.1:" in log  # the log is there
    assert PASSWORD not in log
    assert PATH_TOKEN not in log
