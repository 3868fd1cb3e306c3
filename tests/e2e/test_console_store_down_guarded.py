"""The console's store-down page on a server whose `/metrics` is guarded (`auth.metrics_tokens`).

The page says `/metrics` still answers while the store is down: with metrics tokens set, a link to it
would only answer the browser 401, so it names `/metrics` as text with the token it needs, and links only
what a browser opens (`/readyz`, the runbook). Only a request with a token reads the store and so meets
the outage; without one the page hides its figures and reads nothing. Untested before; HTTP is enough.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.pg import PostgresCluster
from tests.support.procs import LlmcostProcess

pytestmark = [pytest.mark.real_process, pytest.mark.postgres]

METRICS = "metrics-token-0123456789"
ADMIN = "admin-token-0123456789ab"


def test_with_metrics_tokens_the_store_down_page_names_metrics_as_text(tmp_path: Path) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(yaml.safe_dump({"auth": {"metrics_tokens": [METRICS], "admin_tokens": [ADMIN]}}))
    cluster = PostgresCluster().start()  # its own: this test stops it
    try:
        server = LlmcostProcess(cluster.create_database(), config=config).start(tmp_path)
        try:
            token = {"Authorization": f"Bearer {METRICS}"}
            assert httpx.get(f"{server.base}/", headers=token, timeout=20).status_code == 200
            cluster.stop()
            # Without a token the page reads nothing of the store (figures hidden): still its 200.
            assert httpx.get(f"{server.base}/", timeout=20).status_code == 200
            answer = httpx.get(f"{server.base}/", headers=token, timeout=20)
            assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
            page = answer.text
            assert 'data-store="unavailable"' in page and "The store is not answering" in page
            assert 'href="/metrics"' not in page
            assert "<code>/metrics</code> (with a metrics token) still answers" in page
            assert 'href="/readyz"' in page and 'href="/runbook#llmcoststoredown"' in page
            # What the page says holds: /metrics answers its token, and only its token.
            assert httpx.get(f"{server.base}/metrics", timeout=20).status_code == 401
            metrics = httpx.get(f"{server.base}/metrics", headers=token, timeout=20)
            assert metrics.status_code == 200 and "llm_store_up 0" in metrics.text
        finally:
            server.stop()
    finally:
        cluster.destroy()
