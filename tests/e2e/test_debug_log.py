"""`llmcost --log-level DEBUG serve` (LLMCOST_LOG_LEVEL=DEBUG): llmcost's own detail, not a library's trace.

With DEBUG on, one `GET /runbook` wrote about 3,800 lines of markdown_it's parser trace ("entering
fence: StateBlock(...)"), burying whatever the operator turned DEBUG on to see. Libraries that trace at
DEBUG stay at WARNING, as alembic and apscheduler already did.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.llmcost_server import ADMIN_TOKEN, INGEST_TOKEN, running_llmcost

pytestmark = pytest.mark.real_process


def test_debug_logging_is_not_flooded_by_the_runbook_renderer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMCOST_LOG_LEVEL", "DEBUG")
    with running_llmcost(tmp_path, f"sqlite:///{tmp_path / 'llmcost.db'}") as server:
        assert httpx.get(f"{server.base}/runbook", timeout=30).status_code == 200
        assert httpx.get(f"{server.base}/runbook.md", timeout=30).status_code == 200
        log = server.log()
    assert " DEBUG " in log  # DEBUG is on
    assert "markdown_it" not in log
    assert len(log.splitlines()) < 300, log.splitlines()[-20:]
    assert INGEST_TOKEN not in log and ADMIN_TOKEN not in log
