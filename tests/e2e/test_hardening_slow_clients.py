"""Slow and idle clients against a real `llmcost serve`: header and body timeouts, a connection cap.

300 half-open connections used to stay open for as long as their clients liked. Now a connection that
has not sent a complete request head within `http.header_timeout_seconds` is closed, connections beyond
`http.max_connections` are closed at once, and a body trickled slower than `http.body_timeout_seconds`
is answered 408.
"""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.procs import LlmcostProcess

pytestmark = pytest.mark.real_process

CONFIG = "http:\n  header_timeout_seconds: 1\n  body_timeout_seconds: 1\n  max_connections: 20\n"


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes `sock` (recv gives b"" or a reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_idle_and_slow_clients_are_cut_off(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "config.yml"
    config.write_text(CONFIG)
    server = LlmcostProcess(sqlite_url, config=config).start(tmp_path)
    sockets: list[socket.socket] = []
    try:
        for i in range(30):
            sock = socket.create_connection(("127.0.0.1", server.port))
            if i % 2:
                sock.sendall(b"POST /v1/usage HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a head that never ends
            sockets.append(sock)
        # Beyond the cap of 20 (the readiness check's connection is gone): closed at once.
        assert sum(closed_by_server(s, 0.5) for s in sockets[20:]) == 10
        # The others, within the header timeout (generous margin for a loaded machine).
        started = time.monotonic()
        assert all(closed_by_server(s, 15) for s in sockets[:20])
        assert time.monotonic() - started < 15

        # A body trickled slower than the body timeout: 408.
        slow = socket.create_connection(("127.0.0.1", server.port))
        sockets.append(slow)
        slow.sendall(
            b"POST /v1/usage HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        slow.settimeout(15)
        assert slow.recv(200).startswith(b"HTTP/1.1 408")

        # And the server still serves everyone else.
        assert httpx.get(f"{server.base}/healthz", timeout=10).status_code == 200
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


def vm_rss_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) >> 10 for line in status if line.startswith("VmRSS:"))


def test_a_huge_request_head_is_refused_before_it_fills_the_memory(tmp_path: Path, sqlite_url: str) -> None:
    # A request head had no size limit: one connection (no token needed, headers come before auth) sent
    # 200 MB of headers within the header timeout and the server held all of it, +200 MB per connection.
    server = LlmcostProcess(sqlite_url).start(tmp_path)
    try:
        assert server.proc is not None
        before = vm_rss_mib(server.proc.pid)
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.settimeout(15)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        line = b"X-Filler: " + b"a" * 8000 + b"\r\n"
        sent = 0
        try:
            while sent < 50_000_000:
                sock.sendall(line)
                sent += len(line)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: what is wanted
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        sock.close()
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b'"error"' in answer
        assert sent < 10_000_000, f"the server read {sent} bytes of headers before refusing"
        assert vm_rss_mib(server.proc.pid) - before < 30
        # An ordinary request with ordinary headers is served as before.
        ok = httpx.get(f"{server.base}/healthz", headers={"X-Big": "b" * 16_000})
        assert ok.status_code == 200
    finally:
        server.stop()


def test_the_rest_of_a_body_refused_early_is_not_taken_for_a_huge_head(tmp_path: Path, sqlite_url: str) -> None:
    # The Python client halves a batch the server refuses as too large (413). The 413 is answered from
    # Content-Length, before the body is read, and the rest of that body arrived after the response: it
    # was counted as the head of a next request, over 64 KiB, so the halved batch on the same connection
    # got "431 request head too large" and the client dropped its 100 events as refused.
    (tmp_path / "llmcost.yml").write_text("ingest:\n  max_body_bytes: 100000\n")
    server = LlmcostProcess(sqlite_url, config=tmp_path / "llmcost.yml").start(tmp_path)
    try:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.settimeout(15)
        body = b"[" + b" " * 199_998 + b"]"
        sock.sendall(
            b"POST /v1/usage HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        first = b""
        while b'"limit_bytes"' not in first:  # the whole 413, head and body (they may come apart)
            chunk = sock.recv(65536)
            assert chunk, first
            first += chunk
        assert first.startswith(b"HTTP/1.1 413 "), first[:200]
        sock.sendall(body)  # the rest of the refused request, as a client already writing it sends it
        event = b'[{"request_id": "after-413", "provider": "openai", "model": "gpt-4o", "input_tokens": 1}]'
        sock.sendall(
            b"POST /v1/usage HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(event) + event
        )
        answer = b""
        while b"\r\n\r\n" not in answer or b"accepted" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        sock.close()
        assert answer.startswith(b"HTTP/1.1 200 ") and b'"accepted":1' in answer, answer[:300]
    finally:
        server.stop()


def test_a_webhook_body_trickled_slower_than_the_body_timeout_is_cut_off(tmp_path: Path, sqlite_url: str) -> None:
    # The Slack and PagerDuty webhooks take no token (their signature covers the body) and must be reachable
    # from the internet. Their bodies were read without `http.body_timeout_seconds`: a client trickling one
    # held its connection for as long as it liked, and 1,000 of them (`http.max_connections`) shut out every
    # other client, ingest and budget checks included. Now a request without a usable signature is refused
    # before its body, and a body trickled slower than the body timeout is answered 408.
    config = tmp_path / "config.yml"
    config.write_text(
        CONFIG + "notifications:\n"
        "  slack: {token: xoxb-test, channel: '#llm-cost', signing_secret: slack-signing-secret-0123456789}\n"
        "  pagerduty: {routing_key: R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32,\n"
        "              webhook_secret: pagerduty-webhook-secret-0123456789}\n"
    )
    server = LlmcostProcess(sqlite_url, config=config).start(tmp_path)
    sockets: list[socket.socket] = []
    try:
        heads = {
            "unsigned PagerDuty": b"POST /v1/pagerduty/webhook HTTP/1.1\r\nContent-Type: application/json\r\n",
            "PagerDuty": b"POST /v1/pagerduty/webhook HTTP/1.1\r\nContent-Type: application/json\r\n"
            b"X-PagerDuty-Signature: v1=" + b"0" * 64 + b"\r\n",
            "Slack": b"POST /v1/slack/interactions HTTP/1.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"X-Slack-Request-Timestamp: %d\r\nX-Slack-Signature: v0=" % int(time.time()) + b"0" * 64 + b"\r\n",
        }
        for name, head in heads.items():
            sock = socket.create_connection(("127.0.0.1", server.port))
            sockets.append(sock)
            sock.sendall(head + b"Host: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")  # 99 bytes never come
            sock.settimeout(15)
            expected = b"HTTP/1.1 401 " if name.startswith("unsigned") else b"HTTP/1.1 408 "
            answer = sock.recv(65536)
            assert answer.startswith(expected), (name, answer[:200])
            if expected == b"HTTP/1.1 408 ":
                assert b"connection: close" in answer.lower(), answer[:400]
        assert httpx.get(f"{server.base}/healthz", timeout=10).status_code == 200
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


def test_budget_and_otlp_bodies_trickled_slower_than_the_body_timeout_are_cut_off(
    tmp_path: Path, sqlite_url: str
) -> None:
    # `PUT /v1/budgets/{name}`, `POST /v1/budgets/check` and OTLP `POST /v1/traces` read their bodies without
    # `http.body_timeout_seconds`: a client trickling one held its connection for as long as it liked. Now
    # each is answered 408 and the connection closed, like `POST /v1/usage` and the webhooks.
    config = tmp_path / "config.yml"
    config.write_text(CONFIG)
    server = LlmcostProcess(sqlite_url, config=config).start(tmp_path)
    sockets: list[socket.socket] = []
    try:
        heads = {
            "budget put": b"PUT /v1/budgets/slow HTTP/1.1\r\nContent-Type: application/json\r\n",
            "budget check": b"POST /v1/budgets/check HTTP/1.1\r\nContent-Type: application/json\r\n",
            "otlp": b"POST /v1/traces HTTP/1.1\r\nContent-Type: application/json\r\n",
        }
        for name, head in heads.items():
            sock = socket.create_connection(("127.0.0.1", server.port))
            sockets.append(sock)
            sock.sendall(head + b"Host: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")  # 99 bytes never come
            sock.settimeout(15)
            answer = b""
            while chunk := sock.recv(65536):  # to the end: the server closes the connection
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408 "), (name, answer[:200])
            assert b"connection: close" in answer.lower(), (name, answer[:400])
        assert httpx.get(f"{server.base}/healthz", timeout=10).status_code == 200
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


def test_a_head_over_the_limit_is_refused_however_it_arrives(tmp_path: Path, sqlite_url: str) -> None:
    # The 64 KiB cap was checked only while a head was still incomplete after a read: a head of 70 or 250 KB
    # that arrived in one read (or completed in the read that crossed the cap) was parsed whole and served,
    # so one connection could make the parser hold about 320 KiB of headers (64 KiB plus one 256 KiB read).
    server = LlmcostProcess(sqlite_url).start(tmp_path)

    def answer_to(head: bytes) -> bytes:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.settimeout(15)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused before all of it was read
            sock.sendall(head)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
                answer += chunk
        except ConnectionResetError:
            pass
        sock.close()
        return answer

    try:
        for size in (70_000, 100_000, 250_000):
            head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
            assert answer_to(head).startswith(b"HTTP/1.1 431 "), size
        many = b"".join(b"X-Header-%d: %s\r\n" % (i, b"b" * 40) for i in range(2_000))  # ~100 KB in small headers
        assert answer_to(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n").startswith(b"HTTP/1.1 431 ")
        # A head just under the cap is served.
        head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 60_000 + b"\r\n\r\n"
        assert answer_to(head).startswith(b"HTTP/1.1 200 ")
    finally:
        server.stop()
