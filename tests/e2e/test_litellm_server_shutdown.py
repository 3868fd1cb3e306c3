"""The LiteLLM callback inside a uvicorn server stopped with SIGTERM, as LiteLLM's proxy is by `docker stop`.

The proxy is a uvicorn server that imports the callback while it starts. uvicorn shuts down on SIGTERM,
then raises SIGTERM again with its default action, so the process dies without running `atexit`. The
server here is a few lines of Starlette doing what the proxy does (the callback made during start-up, one
`litellm.acompletion` per request): `litellm[proxy]` itself is not in the dev extra (docs/development.md).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.llmcost_server import INGEST_TOKEN, running_llmcost
from tests.support.pg import free_port
from tests.support.procs import LlmcostProcess
from tests.support.stored import stored_events
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

SERVER = textwrap.dedent(
    """
    import contextlib, os, sys

    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route


    @contextlib.asynccontextmanager
    async def lifespan(app):
        # As the proxy does: the callback is made while the server starts. It sends once a minute at most,
        # so what it holds at SIGTERM is everything since the start.
        from llmcost.litellm import LlmcostLogger

        litellm.callbacks = [LlmcostLogger(sys.argv[1], sys.argv[2], project="gateway", flush_interval=60)]
        yield


    async def call(request):
        response = await litellm.acompletion(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], mock_response="ok"
        )
        return JSONResponse({"id": response.id})


    async def ready(request):
        return JSONResponse({})


    app = Starlette(routes=[Route("/call", call, methods=["POST"]), Route("/", ready)], lifespan=lifespan)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
    """
)


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[LlmcostProcess]:
    with running_llmcost(tmp_path, sqlite_url) as running:
        yield running


def test_a_sigterm_right_after_a_call_loses_none_of_the_calls_the_server_answered(
    tmp_path: Path, server: LlmcostProcess, sqlite_url: str
) -> None:
    """Before, the calls the callback still held when uvicorn re-raised SIGTERM were lost (no atexit ran)."""
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, str(script), server.base, INGEST_TOKEN, str(port)], stdout=log, stderr=log)
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(base, timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=60, what="the uvicorn server to answer")
        ids = [httpx.post(f"{base}/call", timeout=30).json()["id"] for _ in range(3)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == -signal.SIGTERM  # uvicorn's way out: killed by the signal it re-raised
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()

    stored = stored_events(sqlite_url)
    assert set(stored) == set(ids), (tmp_path / "server.log").read_text()
    assert {event["project"] for event in stored.values()} == {"gateway"}
