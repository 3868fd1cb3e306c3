"""A running `llmcost serve` with a given config, for the integration tests (OTLP, LiteLLM, client)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.procs import LlmcostProcess

INGEST_TOKEN = "ingest-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"


def write_config(tmp_path: Path, **sections: Any) -> Path:
    """A config file with the test tokens and the given sections."""
    raw = {"auth": {"ingest_tokens": [INGEST_TOKEN], "admin_tokens": [ADMIN_TOKEN]}, **sections}
    path = tmp_path / "llmcost.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


@contextmanager
def running_llmcost(tmp_path: Path, db_url: str, **sections: Any) -> Iterator[LlmcostProcess]:
    """`llmcost serve` on a free port with the test tokens; stopped on exit."""
    server = LlmcostProcess(db_url, config=write_config(tmp_path, **sections)).start(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def ingest(server: LlmcostProcess, events: list[dict[str, Any]]) -> None:
    """POST `events` to the server's `/v1/usage` with the test ingest token; every one must be accepted."""
    response = httpx.post(
        f"{server.base}/v1/usage", json=events, headers={"Authorization": f"Bearer {INGEST_TOKEN}"}, timeout=30
    )
    response.raise_for_status()
    assert response.json()["accepted"] == len(events), response.text
