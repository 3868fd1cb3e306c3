"""`llmcost.Client` across the lives of real processes: short scripts, forked workers (gunicorn's pre-fork model,
`multiprocessing`), each one a real Python process recording to a running llmcost."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.helpers import total
from tests.support.llmcost_server import INGEST_TOKEN, running_llmcost
from tests.support.procs import LlmcostProcess
from tests.support.stored import stored_events

pytestmark = pytest.mark.real_process


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmcostProcess]:
    """One llmcost for the module (starting one takes seconds): each test sends its own request ids."""
    tmp_path = tmp_path_factory.mktemp("llmcost")
    with running_llmcost(tmp_path, f"sqlite:///{tmp_path / 'llmcost.db'}") as running:
        yield running


def _stored(server: LlmcostProcess, prefix: str) -> set[str]:
    return {request_id for request_id in stored_events(server.db_url) if request_id.startswith(prefix)}


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)


def _record(request_id: str) -> str:
    return f"client.record(request_id={request_id!r}, provider='openai', model='gpt-4o', input_tokens=3)"


def test_a_client_made_inside_a_function_still_delivers_at_exit(server: LlmcostProcess) -> None:
    """A script whose client lives in `main()` only: the client is gone when `main` returns, its call is not."""
    done = _run(
        "from llmcost import Client\n"
        "def main():\n"
        f"    client = Client({server.base!r}, {INGEST_TOKEN!r})\n"
        f"    {_record('in-main')}\n"
        "main()\n"
    )
    assert _stored(server, "in-main") == {"in-main"}, done.stderr


def test_a_forked_worker_delivers_its_own_calls_once(server: LlmcostProcess) -> None:
    """gunicorn's model: the client is made before the fork (`--preload`), workers record and exit with sys.exit.
    A call the parent had queued when it forked is the parent's: delivered once, not again by the child. A child
    that does not record (a fork before an exec) starts nothing."""
    done = _run(
        "import os, sys, threading\n"
        "from llmcost import Client\n"
        f"client = Client({server.base!r}, {INGEST_TOKEN!r}, flush_interval=30)\n"
        f"{_record('before-fork')}\n"
        "for worker in range(2):\n"
        "    if os.fork() == 0:\n"
        "        assert threading.active_count() == 1  # no thread nor connection until the child records\n"
        "        client.record(request_id=f'worker-{worker}', provider='openai', model='gpt-4o', input_tokens=3)\n"
        "        assert client.flush(10), client.stats\n"
        "        client.record(request_id=f'worker-{worker}-exit', provider='openai', model='gpt-4o', input_tokens=3)\n"
        "        sys.exit(0)\n"
        "for _ in range(2):\n"
        "    assert os.wait()[1] == 0\n"
        f"{_record('after-fork')}\n"
    )
    assert _stored(server, "") >= {
        "before-fork",
        "after-fork",
        "worker-0",
        "worker-1",
        "worker-0-exit",
        "worker-1-exit",
    }, done.stderr
    assert not _stored(server, "worker-") - {"worker-0", "worker-1", "worker-0-exit", "worker-1-exit"}
    duplicates = total(httpx.get(f"{server.base}/metrics").text, "llm_ingest_events_total", outcome="duplicate")
    assert duplicates == 0  # no child sent the parent's queued call again
    assert "not delivered" not in done.stderr


def test_reading_stats_in_a_forked_child_starts_nothing(server: LlmcostProcess) -> None:
    """A worker that reads `client.stats` (a health endpoint, a log line) before it records anything: the read
    answers zeros and starts no sender thread; the worker's first call then starts it and is delivered."""
    done = _run(
        "import os, threading\n"
        "from llmcost import Client\n"
        f"client = Client({server.base!r}, {INGEST_TOKEN!r}, flush_interval=30)\n"
        "if os.fork() == 0:\n"
        "    assert client.stats == {'accepted': 0, 'duplicates': 0, 'rejected': 0, 'dropped': 0, 'failed': 0,\n"
        "                            'retries': 0, 'queued': 0}, client.stats\n"
        "    assert client.flush(1)\n"
        "    assert threading.active_count() == 1, threading.enumerate()\n"
        "    client.record(request_id='stats-child', provider='openai', model='gpt-4o', input_tokens=3)\n"
        "    assert client.flush(10) and client.stats['accepted'] == 1, client.stats\n"
        "    os._exit(0)\n"
        "assert os.wait()[1] == 0\n"
    )
    assert _stored(server, "stats-") == {"stats-child"}, done.stderr


def test_multiprocessing_children_deliver_their_calls(server: LlmcostProcess) -> None:
    """`multiprocessing` children end with os._exit (no atexit): what they recorded is still delivered."""
    done = _run(
        "import multiprocessing\n"
        "from llmcost import Client\n"
        f"client = Client({server.base!r}, {INGEST_TOKEN!r}, flush_interval=30)\n"
        "def work(i):\n"
        "    client.record(request_id=f'child-{i}', provider='openai', model='gpt-4o', input_tokens=3)\n"
        "if __name__ == '__main__':\n"
        "    ctx = multiprocessing.get_context('fork')\n"
        "    children = [ctx.Process(target=work, args=(i,)) for i in range(3)]\n"
        "    for child in children: child.start()\n"
        "    for child in children: child.join()\n"
        "    pool = ctx.Pool(2)\n"
        "    pool.map(work, range(10, 14))\n"
        "    pool.close()\n"
        "    pool.join()\n"
    )
    expected = {f"child-{i}" for i in (0, 1, 2, 10, 11, 12, 13)}
    assert _stored(server, "child-") == expected, done.stderr


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_pool_workers_deliver_their_calls_when_the_with_block_terminates_them(
    server: LlmcostProcess, tmp_path: Path, start_method: str
) -> None:
    """`with Pool(...) as pool: pool.map(...)`: leaving the block calls `terminate()`, which kills the workers
    (SIGTERM) right after the last result; the calls they recorded are still delivered, each once."""
    script = tmp_path / "pool_script.py"  # spawn re-imports the main module: it must be a file
    script.write_text(
        "import multiprocessing\n"
        "from llmcost import Client\n"
        f"client = Client({server.base!r}, {INGEST_TOKEN!r}, flush_interval=30)\n"
        "def work(i):\n"
        f"    client.record(request_id=f'pool-{start_method}-{{i}}', provider='openai', model='gpt-4o')\n"
        "    return i\n"
        "if __name__ == '__main__':\n"
        f"    with multiprocessing.get_context({start_method!r}).Pool(2) as pool:\n"
        "        assert pool.map(work, range(8)) == list(range(8))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=60)
    expected = {f"pool-{start_method}-{i}" for i in range(8)}
    assert _stored(server, f"pool-{start_method}-") == expected, done.stderr


def test_litellm_calls_in_pool_workers_are_delivered(server: LlmcostProcess, tmp_path: Path) -> None:
    """The LiteLLM callback in pool workers (`mock_response`, no network): LiteLLM logs a sync call from a thread of
    its own, after the call has returned, so a worker's last calls reached the callback only after the worker's
    exit had closed the client ("client already closed"), even with `pool.close(); pool.join()`."""
    project = "litellm-pool"
    script = tmp_path / "litellm_pool.py"
    script.write_text(
        "import multiprocessing, os\n"
        "os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'  # no attempt to fetch prices over the network\n"
        "import litellm\n"
        "from llmcost.litellm import LlmcostLogger\n"
        f"litellm.callbacks = [LlmcostLogger({server.base!r}, {INGEST_TOKEN!r}, project={project!r})]\n"
        "def work(i):\n"
        "    litellm.completion(model='gpt-4o', messages=[{'role': 'user', 'content': 'hi'}], mock_response='hello')\n"
        "    return i\n"
        "if __name__ == '__main__':\n"
        "    pool = multiprocessing.get_context('fork').Pool(2)\n"
        "    assert pool.map(work, range(6)) == list(range(6))\n"
        "    pool.close()\n"
        "    pool.join()\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=120)
    stored = [event for event in stored_events(server.db_url).values() if event["project"] == project]
    assert len(stored) == 6, done.stderr
    assert "already closed" not in done.stderr
