"""`llmcost.Client` against a running llmcost: records from many threads, real SDK responses, budgets, retries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

import llmcost
from exporter.normalize import map_usage
from llmcost import BudgetExceededError, Client
from tests.support.llmcost_server import ADMIN_TOKEN, INGEST_TOKEN, running_llmcost, write_config
from tests.support.pg import PostgresCluster, free_port
from tests.support.procs import LlmcostProcess
from tests.support.provider_responses import SECRET, anthropic_messages, chat_completions, responses
from tests.support.stored import stored_events
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[LlmcostProcess]:
    with running_llmcost(tmp_path, sqlite_url) as running:
        yield running


def test_records_from_many_threads_all_arrive_once(server: LlmcostProcess, sqlite_url: str) -> None:
    client = Client(server.base, INGEST_TOKEN, project="search", batch_size=100, flush_interval=0.2)
    per_thread, threads = 300, 8

    def work(t: int) -> None:
        for i in range(per_thread):
            assert client.record(provider="anthropic", model="claude-sonnet-4-5", input_tokens=10 + i, output_tokens=2)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert client.flush(timeout=60)
    stats = client.stats
    client.close()
    assert stats["accepted"] == per_thread * threads
    assert stats["dropped"] == stats["rejected"] == stats["duplicates"] == 0
    stored = stored_events(sqlite_url)
    assert len(stored) == per_thread * threads
    assert {e["project"] for e in stored.values()} == {"search"}


def test_record_is_never_blocked_by_an_unreachable_server_and_drops_when_full() -> None:
    client = Client(f"http://127.0.0.1:{free_port()}", max_queue=50, batch_size=10, close_timeout=0.5)
    started = time.monotonic()
    results = [client.record(provider="openai", model="gpt-4o", input_tokens=1) for _ in range(500)]
    assert time.monotonic() - started < 1.0  # no network wait in record()
    assert results.count(False) >= 440  # what did not fit in the queue (plus one batch in flight)
    assert client.stats["dropped"] == results.count(False)
    client.close()


def test_events_recorded_while_llmcost_is_down_arrive_when_it_is_back(tmp_path: Path, sqlite_url: str) -> None:
    config = write_config(tmp_path)
    down = LlmcostProcess(sqlite_url, config=config)  # its port, not listening yet
    client = Client(down.base, INGEST_TOKEN, flush_interval=0.1, max_retry_delay=0.5)
    for i in range(40):
        client.record(request_id=f"down-{i}", provider="openai", model="gpt-4o", input_tokens=5, output_tokens=1)
    wait_until(lambda: client.stats["retries"] >= 2, timeout=30, what="two retries")
    down.start(tmp_path)
    try:
        assert client.flush(timeout=30)
        assert client.stats["accepted"] == 40
    finally:
        client.close()
        down.stop()
    assert len(stored_events(sqlite_url)) == 40


def test_block_policy_waits_for_room_and_loses_nothing(server: LlmcostProcess, sqlite_url: str) -> None:
    client = Client(server.base, INGEST_TOKEN, max_queue=5, batch_size=5, queue_full="block", flush_interval=0.05)
    threads = [
        threading.Thread(
            target=lambda t=t: [
                client.record(provider="openai", model="gpt-4o", input_tokens=1, request_id=f"b{t}-{i}")
                for i in range(50)
            ]
        )
        for t in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    assert client.stats["dropped"] == 0
    assert len(stored_events(sqlite_url)) == 200


def test_record_response_takes_real_sdk_objects_and_keeps_no_content(server: LlmcostProcess, sqlite_url: str) -> None:
    client = Client(server.base, INGEST_TOKEN, service="api")
    expected: dict[str, tuple[str, dict[str, int]]] = {}
    completions = list(chat_completions())  # one generation: `created` follows the clock
    for raw in completions:
        client.record_response(ChatCompletion.model_validate(raw), project="chat")
        expected[raw["id"]] = ("openai", map_usage(raw["usage"], "openai")[0])
    for raw in responses():
        client.record_response(Response.model_validate(raw), project="responses")
        expected[raw["id"]] = ("openai", map_usage(raw["usage"], "openai")[0])
    for raw in anthropic_messages():
        client.record_response(Message.model_validate(raw), project="claude")
        expected[raw["id"]] = ("anthropic", map_usage(raw["usage"], "anthropic")[0])
    # A response recorded twice is one call.
    first = completions[0]
    client.record_response(ChatCompletion.model_validate(first), project="chat")
    assert client.flush(timeout=60)
    client.close()
    assert client.stats["rejected"] == 0 and client.stats["duplicates"] == 1

    stored = stored_events(sqlite_url)
    assert set(stored) == set(expected)
    for request_id, (provider, tokens) in expected.items():
        event = stored[request_id]
        assert event["provider"] == provider
        assert {k: event[k] for k in tokens} == tokens, request_id
        assert event["service"] == "api"
    assert stored[first["id"]]["ts"] == first["created"]
    assert SECRET not in repr(stored)


def test_record_response_takes_the_final_event_of_a_responses_stream(server: LlmcostProcess, sqlite_url: str) -> None:
    """A Responses stream ends with `{"type": "response.completed", "response": {...}}` (the SDK's typed
    `ResponseCompletedEvent`); `record_response` raised ValueError on it, as on the dict."""
    from openai.types.responses import ResponseCompletedEvent, ResponseIncompleteEvent

    client = Client(server.base, INGEST_TOKEN)
    recorded = list(responses())[:3]
    completed, as_dict, incomplete = recorded
    client.record_response(ResponseCompletedEvent(type="response.completed", response=completed, sequence_number=9))
    client.record_response({"type": "response.completed", "sequence_number": 4, "response": as_dict})
    incomplete = {**incomplete, "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    event = ResponseIncompleteEvent(type="response.incomplete", response=incomplete, sequence_number=7)
    client.record_response(event, project="streams")
    # An event of the stream before its end carries no final usage: refused, saying which event to pass.
    with pytest.raises(ValueError, match="pass its last event"):
        client.record_response({"type": "response.in_progress", "response": {**as_dict, "usage": None}})
    assert client.flush(timeout=60)
    client.close()
    assert client.stats["accepted"] == 3
    stored = stored_events(sqlite_url)
    for raw in recorded:
        tokens = map_usage(raw["usage"], "openai")[0]
        assert {k: stored[raw["id"]][k] for k in tokens} == tokens
        assert stored[raw["id"]]["model"] == raw["model"]
    assert stored[incomplete["id"]]["project"] == "streams"
    assert SECRET not in repr(stored)


def test_a_token_that_cannot_be_a_header_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        Client("http://127.0.0.1:9", token="…")


def test_record_response_refuses_what_is_not_a_response() -> None:
    client = Client(f"http://127.0.0.1:{free_port()}", close_timeout=0.1)
    with pytest.raises(ValueError, match="not an OpenAI"):
        client.record_response({"choices": []})
    with pytest.raises(ValueError, match="usage"):
        client.record_response({"object": "chat.completion", "id": "x", "model": "gpt-4o", "usage": None})
    client.close()


@pytest.mark.within_period("daily")  # a daily budget: its spend must stay in one day
def test_guard_raises_on_an_exhausted_hard_budget(server: LlmcostProcess) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    budget = {"scope": "project", "key": "search", "period": "daily", "limit": 0.05, "unit": "usd", "mode": "hard"}
    assert httpx.put(f"{server.base}/v1/budgets/search-daily", json=budget, headers=admin).status_code == 200
    client = Client(server.base, INGEST_TOKEN, project="search")
    assert client.guard(model="gpt-4o")["allowed"] is True
    client.record(provider="openai", model="gpt-4o", input_tokens=10, output_tokens=1, cost_usd=0.06)
    assert client.flush(timeout=30)
    answer = client.check(model="gpt-4o", estimated_cost_usd=0.01)
    assert answer["allowed"] is False
    with pytest.raises(BudgetExceededError) as refused:
        client.guard(model="gpt-4o", estimated_cost_usd=0.01)
    assert refused.value.answer["allowed"] is False
    assert "search-daily" in refused.value.reason
    # Another project is not held back by it.
    assert client.guard(project="other", model="gpt-4o")["allowed"] is True
    client.close()
    assert llmcost.BudgetExceededError is BudgetExceededError


@pytest.mark.within_period("daily")  # a daily budget: its spend must stay in one day
def test_a_caller_that_checks_calls_and_records_one_call_at_a_time_never_passes_a_hard_limit(
    server: LlmcostProcess,
) -> None:
    """The pattern docs/sending-data.md shows: guard, call, record. 21 of 5 allowed calls went through
    when the calls recorded were still waiting in the client's batch (flush_interval) at the next check."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    budget = {"scope": "project", "key": "cap", "period": "daily", "limit": 5, "unit": "requests", "mode": "hard"}
    assert httpx.put(f"{server.base}/v1/budgets/cap-daily", json=budget, headers=admin).status_code == 200
    client = Client(server.base, INGEST_TOKEN, project="cap")
    made = 0
    with pytest.raises(BudgetExceededError, match="cap-daily"):
        for _ in range(20):
            client.guard(model="gpt-4o")
            made += 1  # the LLM call
            client.record(provider="openai", model="gpt-4o", input_tokens=10, output_tokens=5)
    assert made == 5
    client.close()
    assert httpx.get(f"{server.base}/v1/budgets/cap-daily", headers=admin).json()["spent"] == 5


@pytest.mark.within_period("daily")  # a daily budget: its spend must stay in one day
def test_callers_racing_for_the_last_of_a_hard_limit_overshoot_it_by_at_most_the_calls_in_flight(
    server: LlmcostProcess,
) -> None:
    """The bound docs/budgets.md gives: the check reserves nothing, so N calls in flight at once can end
    up to N - 1 past the limit, and never further."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    budget = {"scope": "project", "key": "race", "period": "daily", "limit": 10, "unit": "requests", "mode": "hard"}
    assert httpx.put(f"{server.base}/v1/budgets/race-daily", json=budget, headers=admin).status_code == 200
    client = Client(server.base, INGEST_TOKEN, project="race")
    made = []
    lock = threading.Lock()

    def caller() -> None:
        while True:
            try:
                client.guard(model="gpt-4o")
            except BudgetExceededError:
                return
            time.sleep(0.02)  # the LLM call
            with lock:
                made.append(1)
            client.record(provider="openai", model="gpt-4o", input_tokens=10, output_tokens=5)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    client.close()
    assert 10 <= len(made) <= 10 + 4 - 1


def test_a_check_behind_undeliverable_records_answers_from_fail_mode_within_check_timeout() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = Client(url, fail_mode="closed", check_timeout=0.5, close_timeout=0.1)
    client.record(provider="openai", model="gpt-4o", input_tokens=1)
    began = time.monotonic()
    answer = client.check(project="search")
    assert time.monotonic() - began < 2
    assert (answer["allowed"], answer["degraded"]) == (False, True)
    # Later checks do not wait on the undelivered calls again.
    began = time.monotonic()
    assert client.check(project="search")["allowed"] is False
    assert time.monotonic() - began < 0.3
    client.close()


def test_a_closed_client_refuses_when_llmcost_answers_but_its_store_is_down(tmp_path: Path) -> None:
    """llmcost up, PostgreSQL down, the server's budgets.fail_mode at its default (open): a client that
    asked for fail_mode="closed" was told allowed=True, and its calls went on unchecked."""
    cluster = PostgresCluster().start()
    try:
        config = tmp_path / "llmcost.yml"
        config.write_text("budgets: [{name: hc, scope: project, key: hc, period: daily, limit: 5, mode: hard}]\n")
        server = LlmcostProcess(cluster.create_database(), config=config).start(tmp_path)
        try:
            closed = Client(server.base, fail_mode="closed", close_timeout=0.1)
            opened = Client(server.base, fail_mode="open", close_timeout=0.1)
            assert closed.check(project="hc")["allowed"] is True
            cluster.stop()
            wait_until(lambda: closed.check(project="hc").get("degraded"), timeout=10, what="a degraded answer")
            with pytest.raises(BudgetExceededError, match="fail_mode is 'closed'") as refused:
                closed.guard(project="hc")
            assert refused.value.answer["degraded"] is True
            assert opened.guard(project="hc")["allowed"] is True  # the server's own fail_mode: open
            closed.close()
            opened.close()
        finally:
            server.stop()
    finally:
        cluster.destroy()


def test_guard_passes_token_and_request_estimates_to_token_budgets(server: LlmcostProcess) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    budget = {"scope": "project", "key": "tok", "period": "daily", "limit": 1000, "unit": "tokens", "mode": "hard"}
    assert httpx.put(f"{server.base}/v1/budgets/tok-daily", json=budget, headers=admin).status_code == 200
    client = Client(server.base, INGEST_TOKEN, project="tok")
    assert client.guard(model="gpt-4o", estimated_tokens=900)["allowed"] is True
    with pytest.raises(BudgetExceededError):
        client.guard(model="gpt-4o", estimated_tokens=1200)
    assert client.check(model="gpt-4o", estimated_tokens=10, estimated_requests=3)["allowed"] is True
    client.close()


def test_fail_mode_decides_when_llmcost_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    opened = Client(url, fail_mode="open", close_timeout=0.1)
    answer = opened.guard(project="search")
    assert answer["allowed"] is True and answer["degraded"] is True
    opened.close()
    closed = Client(url, fail_mode="closed", close_timeout=0.1)
    with pytest.raises(BudgetExceededError) as refused:
        closed.guard(project="search")
    assert refused.value.state == "unknown"
    assert "fail_mode is 'closed'" in refused.value.reason
    closed.close()


def test_a_wrong_token_is_a_logged_configuration_error_not_an_outage_of_the_application(
    server: LlmcostProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong token made every budget check raise LlmcostError, even with fail_mode="open", so every call
    of the application failed (`LlmcostError: budget check refused: HTTP 401`) because of llmcost."""
    wrong = "wrong-token-5a1f0c9e"
    opened = Client(server.base, wrong, fail_mode="open", close_timeout=0.1)
    with caplog.at_level("ERROR", logger="llmcost"):
        for _ in range(3):
            answer = opened.guard(project="search", model="gpt-4o")
            assert (answer["allowed"], answer["state"], answer["degraded"]) == (True, "unknown", True)
    assert "HTTP 401" in answer["reason"] and "fail_mode is 'open'" in answer["reason"]
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1  # once a minute, not once a call
    assert "HTTP 401" in errors[0].getMessage() and "auth.ingest_tokens" in errors[0].getMessage()
    assert wrong not in caplog.text
    opened.close()
    # fail_mode="closed" refuses unchecked calls: the refusal is raised, saying why.
    closed = Client(server.base, wrong, fail_mode="closed", close_timeout=0.1)
    with pytest.raises(llmcost.LlmcostError, match="HTTP 401") as refused:
        closed.check(project="search")
    assert wrong not in str(refused.value)
    closed.close()


def test_events_llmcost_refused_the_token_of_are_said_refused_at_close_not_unreachable(
    server: LlmcostProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """Recording with a token llmcost refuses: the 401 was logged when it came, but what `close` said of
    the events was nothing, or `events not delivered (llmcost unreachable?)`, sending the user looking for
    an outage. It says they were refused, and what a 401 most likely means, as a refused check does."""
    wrong = "wrong-token-5a1f0c9e"
    hint = "HTTP 401 (the token is missing, or is not one of llmcost's auth.ingest_tokens)"
    client = Client(server.base, wrong, flush_interval=0.05, close_timeout=1.0)
    with caplog.at_level("ERROR", logger="llmcost"):
        for i in range(3):
            client.record(request_id=f"refused-{i}", provider="openai", model="gpt-4o", input_tokens=3)
        assert client.flush(timeout=30)  # answered: refused, not waiting to be retried
        assert "llmcost refused " in caplog.text and f" batches: {hint}: " in caplog.text
        assert client.stats["failed"] == 3
        # Unanswered at close (llmcost stalled) after a refusal: refused too, most likely, not unreachable.
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            client.record(request_id="refused-3", provider="openai", model="gpt-4o", input_tokens=3)
            assert client.flush(0.5) is False
            client.close()
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
    closing = [r.getMessage() for r in caplog.records if "llmcost client closed" in r.getMessage()]
    assert closing == [
        f"llmcost client closed with 3 events not delivered (refused: {hint})",
        f"llmcost client closed with 1 events not delivered (not answered; llmcost refused the events before them: "
        f"{hint})",
    ]
    assert "unreachable" not in caplog.text and wrong not in caplog.text


def test_a_url_that_is_not_llmcost_is_a_configuration_error_too() -> None:
    """A URL pointing at another web server answers the check, but not with a budget answer."""
    from tests.support.recording_servers import RecordingServer

    with RecordingServer() as fake:
        fake.enqueue(200, {"Content-Type": "text/html"}, "<html>not llmcost</html>")
        fake.enqueue(404, {}, {"detail": "Not Found"})
        client = Client(fake.url, fail_mode="open", close_timeout=0.1)
        assert client.check(project="search")["allowed"] is True
        assert "HTTP 404" in client.check(project="search")["reason"]
        client.close()


def test_events_queued_at_exit_are_flushed(server: LlmcostProcess, sqlite_url: str) -> None:
    script = (
        "from llmcost import Client\n"
        f"c = Client({server.base!r}, {INGEST_TOKEN!r}, flush_interval=30)\n"
        "for i in range(25):\n"
        "    c.record(request_id=f'exit-{i}', provider='openai', model='gpt-4o', input_tokens=3)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert len(stored_events(sqlite_url)) == 25


def test_503_and_429_are_retried_with_the_same_events_and_a_401_is_not() -> None:
    from tests.support.recording_servers import RecordingServer

    with RecordingServer() as fake:
        fake.enqueue(503, {"Retry-After": "5"}, {"error": "store unavailable, retry later", "detail": None})
        fake.enqueue(429, {}, {"error": "slow down", "detail": None})
        fake.enqueue(200, {}, {"accepted": 3, "duplicates": 0, "rejected": []})
        fake.enqueue(401, {}, {"error": "missing or invalid bearer token", "detail": None})
        client = Client(fake.url, "t" * 20, flush_interval=0.05, max_retry_delay=0.2)
        for i in range(3):
            client.record(request_id=f"r{i}", provider="openai", model="gpt-4o", input_tokens=1)
        assert client.flush(timeout=30)
        client.record(request_id="r3", provider="openai", model="gpt-4o", input_tokens=1)
        assert client.flush(timeout=30)
        stats = client.stats
        client.close()
        posts = [r for r in fake.requests if r.path == "/v1/usage"]
        assert len(posts) == 4  # three tries of the first batch, one of the refused one
        assert posts[0].body == posts[1].body == posts[2].body
        assert posts[0].header("Authorization") == "Bearer " + "t" * 20
        assert stats["accepted"] == 3 and stats["retries"] == 2 and stats["failed"] == 1


def test_a_wrong_token_logs_its_refused_batches_at_most_once_a_minute_and_counts_them_all_at_close(
    server: LlmcostProcess, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wrong token refuses every batch: each was one ERROR line, so an app recording on every call
    # flooded its own log with the same 401.
    import logging

    import llmcost.sender

    client = Client(server.base, "wrong-token-0123456789", batch_size=1, flush_interval=0.05)
    with caplog.at_level(logging.ERROR, logger="llmcost"):
        for i in range(20):
            client.record(request_id=f"w{i}", provider="openai", model="gpt-4o", input_tokens=1, output_tokens=1)
            assert client.flush(timeout=30)
        assert client.stats["failed"] == 20
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("llmcost refused")]
        assert len(lines) == 1 and "refused 1 events in 1 batches: HTTP 401" in lines[0], lines
        # A minute later the next refusal is said again, with what was refused since.
        monkeypatch.setattr(llmcost.sender, "REFUSAL_LOG_INTERVAL", 0.0)
        client.record(request_id="w20", provider="openai", model="gpt-4o", input_tokens=1, output_tokens=1)
        assert client.flush(timeout=30)
        monkeypatch.setattr(llmcost.sender, "REFUSAL_LOG_INTERVAL", 60.0)
        for i in range(21, 30):
            client.record(request_id=f"w{i}", provider="openai", model="gpt-4o", input_tokens=1, output_tokens=1)
        client.close()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("llmcost refused")]
    assert len(lines) == 3, lines
    assert "refused 20 events in 20 batches" in lines[1] and "21 events refused in all" in lines[1]
    assert "refused 9 events in 9 batches" in lines[2] and "30 events refused in all" in lines[2]  # exact at close


def test_a_server_body_limit_below_one_batch_costs_requests_not_events(tmp_path: Path, sqlite_url: str) -> None:
    """An operator lowered `ingest.max_body_bytes` below `batch_size` events: the client halves the batch."""
    with running_llmcost(tmp_path, sqlite_url, ingest={"max_body_bytes": 100_000}) as server:
        client = Client(server.base, INGEST_TOKEN, batch_size=200, flush_interval=5)
        for i in range(200):  # ~1.1 KB each: the whole batch is twice the limit
            client.record(request_id=f"big-{i}", provider="openai", model="gpt-4o", input_tokens=1,
                          metadata={"note": "x" * 1000})  # fmt: skip
        assert client.flush(timeout=60)
        stats = client.stats
        client.close()
    assert stats["accepted"] == 200 and stats["failed"] == 0
    assert len(stored_events(sqlite_url)) == 200


def test_one_event_too_large_for_the_server_is_failed_alone() -> None:
    from tests.support.recording_servers import RecordingServer

    with RecordingServer() as fake:
        fake.enqueue(413, {}, {"error": "body too large", "detail": None})  # the pair
        fake.enqueue(413, {}, {"error": "body too large", "detail": None})  # the first alone
        fake.enqueue(200, {}, {"accepted": 1, "duplicates": 0, "rejected": []})  # the second alone
        client = Client(fake.url, "t" * 20, batch_size=2, flush_interval=5)
        client.record(request_id="huge", provider="openai", model="gpt-4o", input_tokens=1)
        client.record(request_id="small", provider="openai", model="gpt-4o", input_tokens=1)
        assert client.flush(timeout=30)
        stats = client.stats
        client.close()
        posts = [r for r in fake.requests if r.path == "/v1/usage"]
        assert len(posts) == 3
        assert stats["accepted"] == 1 and stats["failed"] == 1 and stats["queued"] == 0


def test_importing_llmcost_stays_light() -> None:
    heavy = ("litellm", "sqlalchemy", "starlette", "numpy", "alerting", "opentelemetry", "google.protobuf")
    script = f"import sys, llmcost; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_budget_exceeded_error_reads_old_and_new_answers() -> None:
    new = {
        "allowed": False,
        "state": "exceeded",
        "reason": "budget 'search-daily' would be exceeded: $4.98 + $0.05 > $5.00",
        "budgets": [{"name": "search-daily", "spent": 4.98, "estimate": 0.05, "limit": 5.0, "decided": True}],
        "fallback_model": "gpt-4o-mini",
    }
    error = BudgetExceededError(new)
    assert (error.reason, error.fallback_model, error.state) == (new["reason"], "gpt-4o-mini", "exceeded")
    assert error.answer is new and str(error) == new["reason"]
    old = {
        "allowed": False,
        "state": "exceeded",
        "budgets": [{"name": "b", "spent": 6.0, "limit": 5.0, "state": "exceeded"}],
    }
    error = BudgetExceededError(old)
    assert error.reason == "budget 'b' is exhausted: spent 6 of 5" and error.fallback_model is None
    assert BudgetExceededError({"allowed": False}).reason == "a hard budget refuses the call"


def test_a_record_after_the_client_closed_at_exit_is_dropped_with_a_warning_not_a_traceback(
    server: LlmcostProcess,
) -> None:
    """An app's atexit hook registered before the client runs after the client's own hook (LIFO), which has
    closed it: `record()` raised LlmcostError into the application's exit ("Error in atexit._run_exitfuncs")."""
    script = (
        "import atexit\n"
        "from llmcost import Client\n"
        "atexit.register(lambda: print('recorded:', c.record(provider='openai', model='gpt-4o', input_tokens=3)))\n"
        f"c = Client({server.base!r}, {INGEST_TOKEN!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    assert "recorded: False" in done.stdout
    assert "already closed" in done.stderr and "dropped" in done.stderr


def test_events_lost_at_exit_while_llmcost_is_down_are_reported() -> None:
    """The sender gives up on a batch it was retrying when `close_timeout` runs out: that loss is said, not silent."""
    script = (
        "from llmcost import Client\n"
        f"c = Client('http://127.0.0.1:{free_port()}', {INGEST_TOKEN!r}, close_timeout=0.5, flush_interval=0.01)\n"
        "for i in range(3):\n"
        "    c.record(request_id=f'lost-{i}', provider='openai', model='gpt-4o', input_tokens=3)\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert "closed with 3 events not delivered" in done.stderr
    assert time.monotonic() - started < 30


def test_close_returns_within_close_timeout_while_llmcost_hangs(
    server: LlmcostProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """llmcost stalled (SIGSTOP: connections accepted, nothing answered) while a batch is on its way: `close()`, as
    at process exit, gives up after `close_timeout` and says what was not delivered, however long a request waits."""
    client = Client(server.base, INGEST_TOKEN, close_timeout=1.0, timeout=10.0, flush_interval=0.01)
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        for i in range(3):
            client.record(request_id=f"hung-{i}", provider="openai", model="gpt-4o", input_tokens=3)
        assert client.flush(0.5) is False  # the batch went out and is not answered
        started = time.monotonic()
        client.close()
        took = time.monotonic() - started
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    assert took < 1.0 + 1.5, took
    assert "closed with 3 events not delivered" in caplog.text


def test_a_check_behind_a_batch_llmcost_does_not_answer_waits_check_timeout_in_all(server: LlmcostProcess) -> None:
    """llmcost stalled (SIGSTOP) with a recorded call on its way: the check that first meets it holds the caller's
    request for `check_timeout` in all (sending the call ahead, then asking), not that twice over."""
    client = Client(server.base, INGEST_TOKEN, check_timeout=1.0, close_timeout=0.1, flush_interval=0.01)
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        client.record(request_id="stalled-1", provider="openai", model="gpt-4o", input_tokens=3)
        assert client.flush(0.3) is False  # the batch went out and is not answered
        started = time.monotonic()
        answer = client.check(project="search")
        took = time.monotonic() - started
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    assert (answer["allowed"], answer["degraded"]) == (True, True)  # fail_mode "open"
    assert took < 1.0 + 0.5, took
    client.close()


def test_one_event_that_cannot_be_sent_as_recorded_never_costs_the_calls_beside_it(
    server: LlmcostProcess, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Values an application has at hand (numpy token counts, metadata keyed by numbers, a dict it goes on changing
    after `record`) arrive as recorded; an event JSON cannot carry at all is refused alone, at `record`, and said."""
    import numpy as np

    client = Client(server.base, INGEST_TOKEN, flush_interval=30)
    tags = {"step": "first"}
    assert client.record(request_id="mixed-good-1", provider="openai", model="gpt-4o", input_tokens=3, metadata=tags)
    tags["step"] = "changed after record"
    numbers = {"request_id": "mixed-numpy", "input_tokens": np.int64(120), "output_tokens": np.int32(8)}
    assert client.record(provider="openai", model="gpt-4o", **numbers)
    assert client.record(request_id="mixed-int-keys", provider="openai", model="gpt-4o", metadata={1: "a", 2: "b"})
    too_big = {"request_id": "mixed-too-big", "input_tokens": 3, "metadata": {"n": 2**70}}
    assert client.record(provider="openai", model="gpt-4o", **too_big) is False
    assert client.record(request_id="mixed-good-2", provider="openai", model="gpt-4o", input_tokens=3)
    assert client.flush(10)
    client.close()

    stored = stored_events(sqlite_url)
    assert set(stored) == {"mixed-good-1", "mixed-numpy", "mixed-int-keys", "mixed-good-2"}
    assert stored["mixed-good-1"]["metadata"]["step"] == "first"
    assert (stored["mixed-numpy"]["input_tokens"], stored["mixed-numpy"]["output_tokens"]) == (120, 8)
    assert stored["mixed-int-keys"]["metadata"] == {"1": "a", "2": "b"}
    assert client.stats["failed"] == 1 and client.stats["accepted"] == 4
    assert "mixed-too-big" in caplog.text and "64-bit" in caplog.text


@pytest.mark.parametrize("url", ["127.0.0.1:9800", "llmcost:9800", "ftp://llmcost:9800", "http://"])
def test_a_url_llmcost_cannot_be_reached_at_is_refused_at_once(url: str) -> None:
    """`LLMCOST_URL=llmcost:9800` (no scheme) would be retried in silence and every call lost at exit: it is an
    error when the client is made, naming the URL and what it lacks."""
    with pytest.raises(ValueError, match="http://") as refused:
        Client(url)
    assert repr(url) in str(refused.value)
