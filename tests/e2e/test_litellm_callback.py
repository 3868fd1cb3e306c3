"""The LiteLLM callback and LiteLLM's `generic_api` logger against a running llmcost, with the real litellm.

Calls use LiteLLM's `mock_response`: no network, but LiteLLM's own code path, token counts and cost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from llmcost import BudgetExceededError
from tests.support.helpers import total
from tests.support.llmcost_server import ADMIN_TOKEN, INGEST_TOKEN, running_llmcost, write_config
from tests.support.pg import free_port
from tests.support.procs import LlmcostProcess
from tests.support.stored import stored_events
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

SECRET = "SECRET-prompt-91c"
MESSAGES = [{"role": "user", "content": f"{SECRET} question"}]


@pytest.fixture
def lit() -> Iterator[SimpleNamespace]:
    """litellm and the classes under test, imported here: importing litellm takes seconds, not worth
    paying when collecting the suite. Afterwards no callback is left in LiteLLM's module-level lists.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no attempt to fetch prices over the network
    import litellm
    from litellm.integrations.generic_api.generic_api_callback import GenericAPILogger
    from litellm.proxy._types import UserAPIKeyAuth

    from llmcost.litellm import LlmcostLogger

    yield SimpleNamespace(
        litellm=litellm,
        LlmcostLogger=LlmcostLogger,
        GenericAPILogger=GenericAPILogger,
        UserAPIKeyAuth=UserAPIKeyAuth,
    )
    litellm.callbacks = []
    for name in ("success_callback", "failure_callback", "_async_success_callback", "_async_failure_callback"):
        setattr(litellm, name, [])
    litellm.input_callback = []


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[LlmcostProcess]:
    with running_llmcost(tmp_path, sqlite_url) as running:
        yield running


async def litellm_logging_done(timeout: float = 30.0) -> None:
    """Wait until the logging LiteLLM does in this loop after each call has run (success, failure, callbacks).

    LiteLLM queues that work on its logging worker, whose tasks run in this loop; `asyncio.run` cancels what is
    still running when the scenario returns, so without this the last calls would go unlogged. Done means: the
    worker's queue is drained (its public `flush`) and no task but the worker's own idle loop is left.
    """
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    def busy() -> set[asyncio.Task[Any]]:
        return {
            t
            for t in asyncio.all_tasks()
            if t is not asyncio.current_task() and t.get_coro().__qualname__ != "LoggingWorker._worker_loop"  # type: ignore[union-attr]
        }

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), max(0.0, deadline - loop.time()))
        if not (running := busy()):
            return
        assert loop.time() < deadline, f"LiteLLM's logging still running after {timeout:g} s: {running}"
        await asyncio.wait(running, timeout=deadline - loop.time())


def _delivered(handler: Any, count: int) -> None:
    """Wait until LiteLLM handed `count` calls to the handler (its logging runs in the background) and they are sent."""
    wait_until(
        lambda: handler.client.stats["accepted"] + handler.client.stats["duplicates"] >= count,
        timeout=60,
        what=f"{count} calls delivered",
    )


def test_calls_appear_with_litellm_token_counts_and_cost(
    lit: SimpleNamespace, server: LlmcostProcess, sqlite_url: str
) -> None:
    handler = lit.LlmcostLogger(server.base, INGEST_TOKEN, project="search", service="api", flush_interval=0.05)
    lit.litellm.callbacks = [handler]
    responses = [
        lit.litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response=f"{SECRET} answer", user="u-1")
        for _ in range(3)
    ]

    async def async_calls() -> list[Any]:
        done = [
            await lit.litellm.acompletion(
                model="anthropic/claude-sonnet-4-5",
                messages=MESSAGES,
                mock_response="ok",
                metadata={"project": "research"},
            )
            for _ in range(2)
        ]
        await litellm_logging_done()
        return done

    responses += asyncio.run(async_calls())
    _delivered(handler, 5)
    handler.close()

    stored = stored_events(sqlite_url)
    assert set(stored) == {r.id for r in responses}
    for response in responses:
        event = stored[response.id]
        assert event["input_tokens"] == response.usage.prompt_tokens
        assert event["output_tokens"] == response.usage.completion_tokens
        assert event["cost_source"] == "supplied"
        assert event["cost_usd"] == pytest.approx(response._hidden_params["response_cost"])
    sync_event = stored[responses[0].id]
    assert (sync_event["provider"], sync_event["model"], sync_event["project"]) == ("openai", "gpt-4o", "search")
    assert (sync_event["service"], sync_event["user"]) == ("api", "u-1")
    assert stored[responses[3].id]["provider"] == "anthropic"
    assert stored[responses[3].id]["project"] == "research"  # the request's metadata wins
    assert SECRET not in repr(stored)


@pytest.mark.within_period("daily")  # a daily budget: its spend must stay in one day
def test_a_hard_budget_blocks_the_next_call(lit: SimpleNamespace, server: LlmcostProcess, sqlite_url: str) -> None:
    budget = {"scope": "project", "key": "search", "period": "daily", "limit": 0.0005, "unit": "usd", "mode": "hard"}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert httpx.put(f"{server.base}/v1/budgets/search-daily", json=budget, headers=admin).status_code == 200
    handler = lit.LlmcostLogger(server.base, INGEST_TOKEN, project="search", flush_interval=0.05)
    lit.litellm.callbacks = [handler]

    async def call(**kwargs: Any) -> Any:
        return await lit.litellm.acompletion(model="gpt-4o", messages=MESSAGES, mock_response="ok", **kwargs)

    async def scenario() -> int:
        spent = 0.0
        calls = 0
        while spent <= budget["limit"]:  # each mocked gpt-4o call costs LiteLLM's price of 10 + 20 tokens
            response = await call()
            spent += response._hidden_params["response_cost"]
            calls += 1
            await asyncio.to_thread(_delivered, handler, calls)
        with pytest.raises(BudgetExceededError) as refused:
            await call()
        assert "search-daily" in refused.value.reason
        assert refused.value.answer["allowed"] is False
        # Another project goes on.
        await call(metadata={"project": "other"})
        # The proxy's hook refuses the key of a team whose budget is spent, and lets others through.
        with pytest.raises(BudgetExceededError):
            await handler.async_pre_call_hook(
                lit.UserAPIKeyAuth(team_alias="search"), None, {"model": "gpt-4o"}, "completion"
            )
        data = {"model": "gpt-4o", "metadata": {}}
        assert (
            await handler.async_pre_call_hook(lit.UserAPIKeyAuth(team_alias="other"), None, data, "completion") is data
        )
        await litellm_logging_done()
        return calls

    allowed_calls = asyncio.run(scenario())
    handler.close()
    stored = stored_events(sqlite_url)
    # The refused call never happened: no event for it, not even an error.
    assert [e["project"] for e in stored.values()].count("other") == 1
    assert [e["project"] for e in stored.values()].count("search") == allowed_calls
    assert {e["status"] for e in stored.values()} == {"success"}


def test_fail_mode_when_llmcost_is_unreachable(lit: SimpleNamespace) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async def call() -> Any:
        try:
            return await lit.litellm.acompletion(model="gpt-4o", messages=MESSAGES, mock_response="ok")
        finally:
            await litellm_logging_done()

    closed = lit.LlmcostLogger(url, INGEST_TOKEN, fail_mode="closed", close_timeout=0.1)
    lit.litellm.callbacks = [closed]
    with pytest.raises(BudgetExceededError, match="fail_mode is 'closed'"):
        asyncio.run(call())
    closed.close()
    opened = lit.LlmcostLogger(url, INGEST_TOKEN, fail_mode="open", close_timeout=0.1)
    lit.litellm.callbacks = [opened]
    assert asyncio.run(call()).choices[0].message.content == "ok"
    opened.close()


def test_a_wrong_token_does_not_fail_every_call_with_fail_mode_open(
    lit: SimpleNamespace, server: LlmcostProcess
) -> None:
    """Every call through the callback failed with `LlmcostError: budget check refused: HTTP 401`."""

    async def call() -> Any:
        try:
            return await lit.litellm.acompletion(model="gpt-4o", messages=MESSAGES, mock_response="ok")
        finally:
            await litellm_logging_done()

    opened = lit.LlmcostLogger(server.base, "wrong-token-5a1f0c9e", fail_mode="open", close_timeout=0.1)
    lit.litellm.callbacks = [opened]
    assert asyncio.run(call()).choices[0].message.content == "ok"
    opened.close()


def test_anthropic_one_hour_cache_writes_keep_their_split(
    lit: SimpleNamespace, server: LlmcostProcess, sqlite_url: str
) -> None:
    """LiteLLM reports Anthropic's cache write lifetimes as
    `prompt_tokens_details.cache_creation_token_details.ephemeral_1h_input_tokens`; the callback stored
    `cache_write_1h_tokens` 0, so the 1-hour writes (twice the input price) could never be priced as such."""
    from tests.support.recording_servers import RecordingServer

    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 600},
        "output_tokens": 5,
    }
    message = {
        "id": "msg_01Xq1h",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": usage,
    }
    handler = lit.LlmcostLogger(server.base, INGEST_TOKEN, flush_interval=0.05)
    lit.litellm.callbacks = [handler]

    async def call(api_base: str) -> Any:
        response = await lit.litellm.acompletion(
            model="anthropic/claude-sonnet-4-5", messages=MESSAGES, api_base=api_base, api_key="not-used"
        )
        await litellm_logging_done()
        return response

    with RecordingServer() as anthropic_api:  # Anthropic's Messages API as LiteLLM calls it
        anthropic_api.enqueue(200, {}, message)
        response = asyncio.run(call(anthropic_api.url))
    _delivered(handler, 1)
    handler.close()
    (event,) = stored_events(sqlite_url).values()
    assert event["request_id"] == response.id
    assert (event["input_tokens"], event["cache_write_tokens"], event["output_tokens"]) == (10, 1000, 5)
    assert event["cache_write_1h_tokens"] == 600


def test_a_restart_of_llmcost_loses_no_acknowledged_event(
    lit: SimpleNamespace, tmp_path: Path, sqlite_url: str
) -> None:
    config = write_config(tmp_path)
    first = LlmcostProcess(sqlite_url, config=config).start(tmp_path)
    handler = lit.LlmcostLogger(first.base, INGEST_TOKEN, flush_interval=0.05, max_retry_delay=0.5)
    lit.litellm.callbacks = [handler]
    ids = [lit.litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="ok").id for _ in range(10)]
    _delivered(handler, 10)
    first.kill9()
    # LiteLLM hands these to the callback while llmcost is down: the callback has acknowledged them.
    ids += [lit.litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="ok").id for _ in range(10)]
    wait_until(lambda: handler.client.stats["retries"] >= 1, timeout=60, what="a retry")
    second = LlmcostProcess(sqlite_url, config=config)
    second.port = first.port
    second.start(tmp_path)
    try:
        ids += [lit.litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="ok").id for _ in range(10)]
        _delivered(handler, 30)
        handler.close()
        assert set(stored_events(sqlite_url)) == set(ids)
        assert total(httpx.get(f"{second.base}/metrics").text, "llm_requests_total") == 30
    finally:
        second.stop()


# Every format the logger offers: "ndjson" is labelled application/json by LiteLLM, and was refused (400).
@pytest.mark.parametrize("log_format", ["json_array", "ndjson", "single"])
def test_litellm_generic_api_logger_payload_is_accepted_as_is(
    lit: SimpleNamespace, server: LlmcostProcess, sqlite_url: str, log_format: str
) -> None:
    async def scenario() -> list[Any]:
        logger = lit.GenericAPILogger(
            endpoint=f"{server.base}/v1/usage",
            headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
            log_format=log_format,
        )
        lit.litellm.callbacks = [logger]
        responses = [
            await lit.litellm.acompletion(model="gpt-4o-mini", messages=MESSAGES, mock_response=f"{SECRET} answer")
            for _ in range(3)
        ]
        # LiteLLM's success logging runs after each call returns; the logger batches what it is handed. (Its
        # periodic flush task never ends, so this waits on the batch, in a thread: the loop keeps running.)
        await asyncio.to_thread(wait_until, lambda: len(logger.log_queue) >= 3, timeout=30, what="3 calls batched")
        await logger.async_send_batch()
        return responses

    responses = asyncio.run(scenario())
    wait_until(lambda: len(stored_events(sqlite_url)) == 3, timeout=60, what="three stored events")
    stored = stored_events(sqlite_url)
    assert set(stored) == {r.id for r in responses}
    for response in responses:
        assert stored[response.id]["cost_usd"] == pytest.approx(response._hidden_params["response_cost"])
        assert stored[response.id]["input_tokens"] == response.usage.prompt_tokens
    assert SECRET not in repr(stored)
    assert total(httpx.get(f"{server.base}/metrics").text, "llm_ingest_events_total", outcome="rejected") == 0


@pytest.mark.within_period("daily")  # a daily budget: its spend must stay in one day
def test_a_model_budget_applies_to_provider_prefixed_calls(
    lit: SimpleNamespace, server: LlmcostProcess, sqlite_url: str
) -> None:
    budget = {
        "scope": "model",
        "key": "claude-sonnet-4-5",
        "period": "daily",
        "limit": 1,
        "unit": "requests",
        "mode": "hard",
    }
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert httpx.put(f"{server.base}/v1/budgets/sonnet", json=budget, headers=admin).status_code == 200
    handler = lit.LlmcostLogger(server.base, INGEST_TOKEN, flush_interval=0.05)
    lit.litellm.callbacks = [handler]

    async def scenario() -> None:
        call = {"model": "anthropic/claude-sonnet-4-5", "messages": MESSAGES, "mock_response": "ok"}
        await lit.litellm.acompletion(**call)
        await asyncio.to_thread(_delivered, handler, 1)
        with pytest.raises(BudgetExceededError):
            await lit.litellm.acompletion(**call)
        await litellm_logging_done()

    asyncio.run(scenario())
    handler.close()
    assert [e["model"] for e in stored_events(sqlite_url).values()] == ["claude-sonnet-4-5"]


def test_a_call_litellm_cannot_price_is_priced_by_llmcost_or_counted_unpriced(
    lit: SimpleNamespace, server: LlmcostProcess, sqlite_url: str
) -> None:
    """LiteLLM logs `response_cost: 0` (and why) for a model missing from its price map: that 0 is not a price."""
    handler = lit.LlmcostLogger(server.base, INGEST_TOKEN, flush_interval=0.05)
    lit.litellm.callbacks = [handler]
    call = {"messages": MESSAGES, "mock_response": "ok", "api_key": "not-used"}
    known = lit.litellm.completion(model="openrouter/anthropic/claude-sonnet-4.5", **call)  # genai-prices knows it
    unknown = lit.litellm.completion(model="azure/my-gpt-deployment", **call)  # nobody knows a deployment's name
    assert not known._hidden_params.get("response_cost") and not unknown._hidden_params.get("response_cost")
    _delivered(handler, 2)
    handler.close()

    stored = stored_events(sqlite_url)
    priced = stored[known.id]
    assert (priced["provider"], priced["model"], priced["cost_source"]) == (
        "openrouter",
        "anthropic/claude-sonnet-4.5",
        "priced",
    )
    assert priced["cost_usd"] == pytest.approx(10 * 3e-6 + 20 * 15e-6)  # $3 / $15 per million tokens
    assert stored[unknown.id]["cost_source"] == "unpriced"
    metrics = httpx.get(f"{server.base}/metrics").text
    assert total(metrics, "llm_unpriced_requests_total", provider="azure", model="my-gpt-deployment") == 1


def test_a_failed_router_call_and_a_bedrock_call_keep_the_model_name_of_their_successes(
    lit: SimpleNamespace, server: LlmcostProcess, sqlite_url: str
) -> None:
    """LiteLLM logs a Router failure, and every Bedrock call, with the routing prefix its other payloads drop."""
    handler = lit.LlmcostLogger(server.base, INGEST_TOKEN, flush_interval=0.05)
    lit.litellm.callbacks = [handler]
    sonnet = {"model": "anthropic/claude-sonnet-4-5", "api_key": "not-used"}
    router = lit.litellm.Router(
        model_list=[
            {"model_name": "down", "litellm_params": {**sonnet, "mock_response": Exception("overloaded")}},
            {"model_name": "up", "litellm_params": {**sonnet, "mock_response": "ok"}},
        ],
        num_retries=0,
    )

    async def scenario() -> None:
        with pytest.raises(Exception, match="overloaded"):
            await router.acompletion(model="down", messages=MESSAGES)
        await router.acompletion(model="up", messages=MESSAGES)
        await litellm_logging_done()

    asyncio.run(scenario())
    haiku = "anthropic.claude-3-5-haiku-20241022-v1:0"
    lit.litellm.completion(model=f"bedrock/{haiku}", messages=MESSAGES, mock_response="ok", api_key="not-used")
    _delivered(handler, 3)
    handler.close()

    recorded = sorted((e["provider"], e["model"], e["status"]) for e in stored_events(sqlite_url).values())
    assert recorded == [
        ("anthropic", "claude-sonnet-4-5", "error"),
        ("anthropic", "claude-sonnet-4-5", "success"),
        ("bedrock", haiku, "success"),
    ]


def test_a_hung_llmcost_slows_one_call_not_every_call(lit: SimpleNamespace, server: LlmcostProcess) -> None:
    """llmcost stalled (SIGSTOP: connections accepted, nothing answered): the budget check times out once."""
    handler = lit.LlmcostLogger(server.base, INGEST_TOKEN, check_timeout=1.0, close_timeout=0.1)
    lit.litellm.callbacks = [handler]

    async def timed_calls(count: int) -> list[float]:
        took = []
        for _ in range(count):
            started = time.monotonic()
            response = await lit.litellm.acompletion(model="gpt-4o", messages=MESSAGES, mock_response="ok")
            took.append(time.monotonic() - started)
            assert response.choices[0].message.content == "ok"  # fail_mode "open": the call goes through
        await litellm_logging_done()
        return took

    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        first, *rest = asyncio.run(timed_calls(5))
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    assert first >= 1.0  # the check that found llmcost hung waited its timeout
    assert max(rest) < 0.5, rest  # the next calls did not wait again
    handler.close()


@pytest.mark.within_period("daily")  # a daily budget: its spend must stay in one day
def test_bedrock_converse_and_invoke_calls_count_as_the_model_they_call(
    lit: SimpleNamespace, server: LlmcostProcess, sqlite_url: str
) -> None:
    """LiteLLM logs `bedrock/converse/<model>` as `converse/<model>`: the API route is not part of the model."""
    sonnet = "anthropic.claude-3-5-sonnet-20240620-v1:0"
    budget = {"scope": "model", "key": sonnet, "period": "daily", "limit": 3, "unit": "requests", "mode": "hard"}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert httpx.put(f"{server.base}/v1/budgets/sonnet", json=budget, headers=admin).status_code == 200
    handler = lit.LlmcostLogger(server.base, INGEST_TOKEN, flush_interval=0.05)
    lit.litellm.callbacks = [handler]
    call = {"messages": MESSAGES, "mock_response": "ok", "api_key": "not-used"}

    async def scenario() -> None:
        for route in ("bedrock/", "bedrock/converse/", "bedrock/invoke/"):
            await lit.litellm.acompletion(model=f"{route}{sonnet}", **call)
        await asyncio.to_thread(_delivered, handler, 3)
        with pytest.raises(BudgetExceededError):  # the model budget counts the three calls, and is asked as such
            await lit.litellm.acompletion(model=f"bedrock/converse/{sonnet}", **call)
        await litellm_logging_done()

    asyncio.run(scenario())
    handler.close()
    assert [(e["provider"], e["model"]) for e in stored_events(sqlite_url).values()] == [("bedrock", sonnet)] * 3
    status = httpx.get(f"{server.base}/v1/budgets/sonnet", headers=admin).json()
    assert status["spent"] == 3


def test_a_per_request_token_cap_refuses_a_call_before_it_is_made(lit: SimpleNamespace, server: LlmcostProcess) -> None:
    """A hard `max_tokens_per_request` could not refuse anything through the callback: it sent no token
    estimate, so the 4,000-token call went out and only an alert said so afterwards."""
    budget = {"scope": "project", "key": "chat", "period": "daily", "limit": 1_000_000, "unit": "tokens",
              "mode": "hard", "max_tokens_per_request": 1000}  # fmt: skip
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert httpx.put(f"{server.base}/v1/budgets/chat-tokens", json=budget, headers=admin).status_code == 200

    def estimate_tokens(model: str, request: Any) -> int:
        return int(lit.litellm.token_counter(model=model, messages=request["messages"])) + int(
            request.get("max_tokens") or 0
        )

    handler = lit.LlmcostLogger(server.base, INGEST_TOKEN, project="chat", estimate_tokens=estimate_tokens)
    lit.litellm.callbacks = [handler]

    async def scenario() -> None:
        call = {"model": "gpt-4o", "messages": MESSAGES, "mock_response": "ok"}
        assert (await lit.litellm.acompletion(**call, max_tokens=100)).choices[0].message.content == "ok"
        with pytest.raises(BudgetExceededError, match="per-request cap") as refused:
            await lit.litellm.acompletion(**call, max_tokens=4000)
        assert refused.value.answer["budgets"][0]["estimate"] > 4000
        await litellm_logging_done()

    asyncio.run(scenario())
    handler.close()


def test_streams_read_to_the_end_are_recorded_once_with_their_usage(
    lit: SimpleNamespace, server: LlmcostProcess, sqlite_url: str
) -> None:
    """`stream=True`, sync and async, with and without `include_usage`: one event per stream, LiteLLM's counts."""
    handler = lit.LlmcostLogger(server.base, INGEST_TOKEN, project="streams", flush_interval=0.05)
    lit.litellm.callbacks = [handler]
    options: list[dict[str, Any]] = [{}, {"stream_options": {"include_usage": True}}]
    request = {"model": "gpt-4o", "messages": MESSAGES, "mock_response": f"{SECRET} streamed answer", "stream": True}
    ids = []
    for extra in options:
        chunks = list(lit.litellm.completion(**request, **extra))  # read to the end, as LiteLLM logs it then
        ids.append(chunks[0].id)

    async def async_streams() -> list[str]:
        found = []
        for extra in options:
            chunks = [chunk async for chunk in await lit.litellm.acompletion(**request, **extra)]
            found.append(chunks[0].id)
        await litellm_logging_done()
        return found

    ids += asyncio.run(async_streams())
    _delivered(handler, 4)
    handler.close()
    stored = stored_events(sqlite_url)
    assert set(stored) == set(ids) and len(ids) == 4
    for event in stored.values():
        assert (event["project"], event["status"], event["cost_source"]) == ("streams", "success", "supplied")
        assert event["input_tokens"] > 0 and event["output_tokens"] > 0
    assert SECRET not in repr(stored)
    assert handler.client.stats["duplicates"] == 0


def test_a_script_that_awaits_aflush_before_its_loop_ends_loses_no_async_call(
    server: LlmcostProcess, sqlite_url: str
) -> None:
    """`asyncio.run(main())` ending right after its last `acompletion`s: LiteLLM logs them in tasks of that loop,
    which the loop cancels as it ends. `await handler.aflush()` at the end of `main` waits for them."""
    script = (
        "import asyncio, os\n"
        "os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'\n"
        "import litellm\n"
        "from llmcost.litellm import LlmcostLogger\n"
        f"handler = LlmcostLogger({server.base!r}, {INGEST_TOKEN!r}, project='batch-job')\n"
        "litellm.callbacks = [handler]\n"
        "async def main():\n"
        "    calls = [litellm.acompletion(model='gpt-4o', messages=[{'role': 'user', 'content': 'hi'}],"
        " mock_response='ok') for _ in range(20)]\n"
        "    for response in await asyncio.gather(*calls):\n"
        "        print(response.id)\n"
        "    assert await handler.aflush()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = set(done.stdout.split())
    assert len(ids) == 20
    assert set(stored_events(sqlite_url)) == ids


def test_aflush_right_after_an_awaited_acompletion_waits_for_that_call(server: LlmcostProcess, sqlite_url: str) -> None:
    """The docs' snippet as written: `acompletion` awaited, then `await handler.aflush()`, beside another callback.

    LiteLLM starts the logging of a call as a task (`_client_async_logging_helper`) that has not run yet when
    `acompletion` returns; `aflush` looked only at the logging worker's queue and tasks, found them empty and
    answered True at once. With another callback that takes a moment (one that sends over the network), the
    loop then ended while LiteLLM was still logging the call: it never reached llmcost."""
    script = (
        "import asyncio, os\n"
        "os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'\n"
        "import litellm\n"
        "from litellm.integrations.custom_logger import CustomLogger\n"
        "from llmcost.litellm import LlmcostLogger\n"
        "class NetworkLogger(CustomLogger):\n"
        "    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):\n"
        "        await asyncio.sleep(0.5)  # another service's callback, sending the call elsewhere first\n"
        "async def main():\n"
        f"    handler = LlmcostLogger({server.base!r}, token={INGEST_TOKEN!r}, project='search', fail_mode='open')\n"
        "    litellm.callbacks = [NetworkLogger(), handler]\n"
        "    response = await litellm.acompletion(model='gpt-4o', messages=[{'role': 'user', 'content': 'hi'}],"
        " metadata={'project': 'research'}, mock_response='ok')\n"
        "    print(response.id)\n"
        "    assert await handler.aflush()\n"
        "    print(handler.client.stats['accepted'])\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    call_id, accepted = done.stdout.split()
    assert accepted == "1"
    stored = stored_events(sqlite_url)
    assert set(stored) == {call_id}
    assert stored[call_id]["project"] == "research"


def test_aflush_with_a_litellm_that_has_no_logging_worker_module_does_not_raise(
    server: LlmcostProcess, sqlite_url: str
) -> None:
    """`aflush` read LiteLLM's `litellm_core_utils.logging_worker` unguarded: with a LiteLLM without it (an
    older or newer layout), the `await handler.aflush()` the docs tell scripts to add raised
    ModuleNotFoundError into the application. It now waits for the handler tasks it can see."""
    script = (
        "import asyncio, os, sys\n"
        "os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'\n"
        "import litellm\n"
        "sys.modules['litellm.litellm_core_utils.logging_worker'] = None  # import now raises ImportError\n"
        "from llmcost.litellm import LlmcostLogger\n"
        f"handler = LlmcostLogger({server.base!r}, {INGEST_TOKEN!r}, project='batch-job')\n"
        "litellm.callbacks = [handler]\n"
        "async def main():\n"
        "    response = await litellm.acompletion(model='gpt-4o', messages=[{'role': 'user', 'content': 'hi'}],"
        " mock_response='ok')\n"
        "    print(response.id)\n"
        "    await handler.aflush()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]  # (LiteLLM's own tasks may log the missing module)


def test_a_token_from_the_environment_ending_in_a_newline_is_sent_without_it(
    lit: SimpleNamespace, server: LlmcostProcess, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`$LLMCOST_TOKEN` from a Kubernetes Secret made `--from-file` ends in the file's newline.

    The callback refused it ("token must be printable ASCII (a placeholder …?)"): the proxy could not
    load it, with the token the server's own `*_env` settings accept.
    """
    monkeypatch.setenv("LLMCOST_TOKEN", INGEST_TOKEN + "\n")
    handler = lit.LlmcostLogger(server.base, project="search", flush_interval=0.05)
    lit.litellm.callbacks = [handler]
    response = lit.litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="ok")
    _delivered(handler, 1)
    handler.close()
    assert set(stored_events(sqlite_url)) == {response.id}
