"""A web page whose DNS name is rebound to 127.0.0.1 reads nothing from a tokenless loopback `serve`.

The attack, as a browser carries it out: the person visits `http://rebound.example:PORT/`; the site
then answers DNS for that name with 127.0.0.1, so its script's `fetch("/v1/usage/summary")` is
same-origin to the browser and reaches llmcost with `Host: rebound.example:PORT`. Before the guard,
every read answered (spend by project, budgets, alerts, the console), and an origin check that took
any name starting with "127." let `127.rebound.example` write too.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import yaml

from tests.support.procs import LlmcostProcess

pytestmark = pytest.mark.real_process

SECRET_PROJECT = "acquisition-talks"

READS = ["/v1/usage/summary", "/v1/budgets", "/v1/alerts", "/metrics", "/", "/runbook"]


def _browser(host: str) -> dict[str, str]:
    """The headers a browser's same-origin `fetch` sends once the page's name points at 127.0.0.1."""
    return {"Host": host, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmcostProcess]:
    tmp_path = tmp_path_factory.mktemp("rebinding")
    config = tmp_path / "llmcost.yml"
    config.write_text(yaml.safe_dump({"external_url": "https://llmcost.corp.example/"}), encoding="utf-8")
    proc = LlmcostProcess(f"sqlite:///{tmp_path / 'llmcost.db'}", config=config).start(tmp_path)
    event = {"request_id": "r1", "provider": "openai", "model": "gpt-4o-mini", "project": SECRET_PROJECT}
    event |= {"input_tokens": 1000, "output_tokens": 100}
    assert httpx.post(f"{proc.base}/v1/usage", json=event).json()["accepted"] == 1
    yield proc
    proc.stop()


def test_a_rebound_name_reads_nothing(server: LlmcostProcess) -> None:
    for path in READS:
        answer = httpx.get(server.base + path, headers=_browser(f"rebound.example:{server.port}"))
        assert answer.status_code == 403, path
        assert SECRET_PROJECT not in answer.text
        assert "rebound" in answer.json()["error"] or answer.json()["detail"] == {"host": "rebound.example"}


def test_a_rebound_name_that_starts_with_127_writes_nothing(server: LlmcostProcess) -> None:
    name = f"127.rebound.example:{server.port}"
    event = {"request_id": "forged", "provider": "openai", "model": "gpt-4o", "input_tokens": 10**7}
    forged = httpx.post(f"{server.base}/v1/usage", json=event, headers={**_browser(name), "Origin": f"http://{name}"})
    assert forged.status_code == 403
    summary = httpx.get(f"{server.base}/v1/usage/summary").json()
    assert sum(row["requests"] for row in summary["rows"]) == 1


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}", "app.localhost:{port}", "127.1.2.3"]
)
def test_loopback_names_read_as_before(server: LlmcostProcess, host: str) -> None:
    answer = httpx.get(f"{server.base}/v1/usage/summary", headers=_browser(host.format(port=server.port)))
    assert answer.status_code == 200
    assert SECRET_PROJECT in answer.text


def test_the_external_url_host_reads_as_before(server: LlmcostProcess) -> None:
    """A reverse proxy that forwards its public name sets `external_url` to it (its links need it anyway)."""
    answer = httpx.get(f"{server.base}/v1/usage/summary", headers={"Host": "llmcost.corp.example"})
    assert answer.status_code == 200
    assert SECRET_PROJECT in answer.text
