"""The LiteLLM callback given what LiteLLM's proxy logs, against a running llmcost.

`tests/data/litellm-proxy/logged_calls.json` holds what the real proxy (litellm[proxy]==1.82.6, started by
`scripts/litellm_proxy_check.py --record`) handed its callbacks for four requests: a wrong key, a model the
proxy does not serve, a provider's 429, and a success whose caller put `project` in its request's metadata.
The proxy itself needs 42 more packages than the dev extra has (docs/development.md), so the whole run is
that script's; these tests pin what it found, through the callback and through LiteLLM's `generic_api` logger
(which posts the same payloads to `POST /v1/usage`) and `llmcost ingest`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmcost import BudgetExceededError
from tests.support.helpers import total
from tests.support.llmcost_server import ADMIN_TOKEN, INGEST_TOKEN, running_llmcost
from tests.support.paths import DATA
from tests.support.procs import LLMCOST, LlmcostProcess
from tests.support.stored import stored_events

pytestmark = pytest.mark.real_process

LOGGED = json.loads((DATA / "litellm-proxy" / "logged_calls.json").read_text())


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[LlmcostProcess]:
    with running_llmcost(tmp_path, sqlite_url) as running:
        yield running


@pytest.fixture
def handler(server: LlmcostProcess) -> Iterator[Any]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no attempt to fetch prices over the network
    from llmcost.litellm import LlmcostLogger

    logger = LlmcostLogger(server.base, INGEST_TOKEN, flush_interval=0.05)
    yield logger
    logger.close()


def logged(name: str) -> dict[str, Any]:
    """The kwargs the proxy gave its callbacks for one request (a copy: the callback may not keep them intact)."""
    return copy.deepcopy({k: v for k, v in LOGGED[name].items() if k != "exception"})


def test_requests_the_proxy_refused_before_any_provider_are_not_recorded(handler: Any, sqlite_url: str) -> None:
    """A wrong key and an unknown model reach no provider; the proxy still logs them as failures.

    Before, each was stored as an error call of provider `unknown` under the model the caller named: anyone
    who could reach the proxy filled llmcost's error rates and label sets with calls that never happened.
    """

    async def scenario() -> None:
        for name in ("wrong_key", "unknown_model", "provider_rate_limited"):
            await handler.async_log_failure_event(logged(name), None, None, None)

    asyncio.run(scenario())
    assert handler.client.flush(10)

    stored = stored_events(sqlite_url)
    rate_limited = LOGGED["provider_rate_limited"]["standard_logging_object"]
    assert list(stored) == [rate_limited["id"]]
    event = stored[rate_limited["id"]]
    assert (event["provider"], event["model"], event["status"]) == ("openai", "gpt-4o", "error")
    assert event["project"] == "proj-77"


# A wrong key and an unknown model the proxy refused, then a provider's 429: what the proxy logs, in its order.
REFUSED_THEN_PROVIDER_FAILURE = ("wrong_key", "unknown_model", "provider_rate_limited")


@pytest.mark.parametrize("log_format", ["json_array", "ndjson", "single"])
def test_the_generic_api_logger_posts_refused_requests_which_are_skipped_not_stored(
    server: LlmcostProcess, sqlite_url: str, log_format: str
) -> None:
    """LiteLLM's `generic_api` logger posts every failure the proxy logs, the refused requests included.

    Before, llmcost stored each refused request as an error call of provider `unknown` under the model the
    caller named: anyone who could reach the proxy filled error rates, label sets and spend-free error spikes.
    They are skipped now, counted by reason, and not taken for bad input; the provider's 429 is still a call.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from litellm.integrations.generic_api.generic_api_callback import GenericAPILogger

    async def scenario() -> None:
        logger = GenericAPILogger(
            endpoint=f"{server.base}/v1/usage",
            headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
            log_format=log_format,
        )
        for name in REFUSED_THEN_PROVIDER_FAILURE:
            await logger.async_log_failure_event(logged(name), None, None, None)
        await logger.async_send_batch()

    asyncio.run(scenario())  # every post answered: llmcost answers once what it was sent is committed and counted
    rate_limited = LOGGED["provider_rate_limited"]["standard_logging_object"]
    stored = stored_events(sqlite_url)
    assert list(stored) == [rate_limited["id"]]
    assert (stored[rate_limited["id"]]["provider"], stored[rate_limited["id"]]["status"]) == ("openai", "error")
    text = httpx.get(f"{server.base}/metrics").text
    assert total(text, "llm_ingest_events_skipped_total", reason="reached_no_provider") == 2
    assert total(text, "llm_ingest_events_total", outcome="rejected") == 0
    assert total(text, "llm_requests_total", provider="unknown") == 0


def test_the_usage_answer_says_how_many_records_were_skipped_and_why(server: LlmcostProcess) -> None:
    """The answer a poster of refused requests gets: nothing rejected, nothing accepted, two skipped."""
    payloads = [LOGGED[name]["standard_logging_object"] for name in ("wrong_key", "unknown_model")]
    headers = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    answer = httpx.post(f"{server.base}/v1/usage", json=payloads, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "accepted": 0,
        "duplicates": 0,
        "rejected": [],
        "skipped": {"reached_no_provider": 2},
    }


def test_llmcost_ingest_skips_the_refused_requests_of_a_file(tmp_path: Path, sqlite_url: str) -> None:
    """The same payloads kept in a JSON-lines file (a generic_api receiver's log) and loaded afterwards."""
    calls = tmp_path / "generic_api.jsonl"
    calls.write_text(
        "".join(json.dumps(LOGGED[name]["standard_logging_object"]) + "\n" for name in REFUSED_THEN_PROVIDER_FAILURE)
    )
    done = subprocess.run(
        [*LLMCOST, "ingest", str(calls), "--db", sqlite_url], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{calls}: 1 accepted, 0 duplicates, 0 rejected, 2 skipped" in done.stdout
    assert "  2 skipped (reached_no_provider): failures LiteLLM logged that reached no provider" in done.stdout
    rate_limited = LOGGED["provider_rate_limited"]["standard_logging_object"]
    assert list(stored_events(sqlite_url)) == [rate_limited["id"]]


def test_a_callers_metadata_does_not_move_a_call_off_its_keys_project(handler: Any, sqlite_url: str) -> None:
    """On the proxy the request's metadata comes from the caller: it names a service, not another project.

    Before, `"metadata": {"project": "evade"}` in a request made with a key of project proj-77 recorded the
    call under `evade`, and the pre-call hook asked `evade`'s budget: proj-77's hard budget never refused it.
    """
    success = logged("success_with_request_project")
    assert success["litellm_params"]["metadata"]["project"] == "evade"  # as the caller sent it

    asyncio.run(handler.async_log_success_event(success, None, None, None))
    assert handler.client.flush(10)
    event = stored_events(sqlite_url)[success["standard_logging_object"]["id"]]
    assert (event["project"], event["service"], event["user"]) == ("proj-77", "chat", "end-5")
    assert event["input_tokens"] == 10 and event["output_tokens"] == 20
    assert "SECRET" not in repr(event)


@pytest.mark.within_period("daily")  # a daily budget: its spend must stay in one day
def test_the_proxy_hook_asks_the_keys_project_whatever_the_request_says(handler: Any, server: LlmcostProcess) -> None:
    """Before, the hook asked the budget of the project the request's metadata named, and let the call through."""
    from litellm.proxy._types import UserAPIKeyAuth

    budget = {"scope": "project", "key": "proj-77", "period": "daily", "unit": "requests", "limit": 1, "mode": "hard"}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert httpx.put(f"{server.base}/v1/budgets/proj-77", json=budget, headers=admin).status_code == 200
    assert (
        httpx.post(
            f"{server.base}/v1/usage",
            json={"provider": "openai", "model": "gpt-4o", "input_tokens": 1, "output_tokens": 1, "project": "proj-77"},
            headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
        ).json()["accepted"]
        == 1
    )
    key = UserAPIKeyAuth(api_key="sk-project-only", project_id="proj-77")

    async def ask(metadata: dict[str, Any]) -> Any:
        data = {"model": "gpt-4o", "metadata": metadata}
        return await handler.async_pre_call_hook(key, None, data, "acompletion")

    with pytest.raises(BudgetExceededError) as refused:
        asyncio.run(ask({"project": "evade"}))
    assert "proj-77" in refused.value.reason
    # A key without a project still lets the request's metadata name one.
    unowned = UserAPIKeyAuth(api_key="sk-alias-only", key_alias="lonely-key")
    data = {"model": "gpt-4o", "metadata": {"project": "research"}}
    assert asyncio.run(handler.async_pre_call_hook(unowned, None, data, "acompletion")) is data
