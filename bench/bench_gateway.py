"""Alert gateway benchmark (issue 4): latency to Slack, fan-out, and a duplicate storm.

A real `llmcost serve` process receives Alertmanager webhooks; Slack, PagerDuty and SMTP stand-ins
(tests/support/recording_servers.py) run in this process and record what arrives, so every figure crosses a
real socket. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import http.client
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadgen import post_all  # noqa: E402

from tests.support.gateway_harness import TimedSlackServer, am_alert, am_payload, percentile  # noqa: E402
from tests.support.pg import free_port  # noqa: E402
from tests.support.recording_servers import PagerDutyEventsServer, SMTPServer  # noqa: E402

LLMCOST = str(Path(sys.executable).with_name("llmcost"))


def post(port: int, body: bytes, conn: http.client.HTTPConnection | None = None) -> int:
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/v1/alertmanager", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response.status


def wait(predicate, timeout: float, interval: float = 0.01) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def main() -> None:
    print("== alert gateway benchmark ==")
    # One process (the default), then one per core: the gateway's dedup, outbox leases and writer turns
    # are shared through the store, so `--workers 2` delivers from both.
    for workers in (1, 2):
        print(f"-- llmcost serve --workers {workers}")
        run(workers)


def run(workers: int) -> None:
    import subprocess

    work = Path(tempfile.mkdtemp(prefix="llmcost-gw-bench-"))
    # PagerDuty keeps connections alive (HTTP/1.1); so does the stand-in here.
    with TimedSlackServer() as slack, PagerDutyEventsServer(keep_alive=True) as pagerduty, SMTPServer() as smtp:
        config = {
            "notifications": {
                "slack": {"token": "xoxb-bench-token", "channel": "#bench", "api_url": slack.api_url},
                "email": {
                    "smtp_host": "127.0.0.1",
                    "smtp_port": smtp.port,
                    "starttls": False,
                    "from": "llmcost@example.com",
                    "to": ["oncall@example.com"],
                },
                "pagerduty": {"routing_key": "bench-routing-key-0123456789abcdef", "events_url": pagerduty.events_url},
                "routes": {"info": [], "warning": ["slack"], "critical": ["slack", "email", "pagerduty"]},
            },
            "alerting": {"outbox": {"concurrency": 8, "poll_interval": "200ms"}},
        }
        (work / "llmcost.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        server = subprocess.Popen(
            [
                LLMCOST,
                "serve",
                "--db",
                f"sqlite:///{work / 'gw.db'}",
                "--listen",
                f"127.0.0.1:{port}",
                "--config",
                str(work / "llmcost.yml"),
                "--workers",
                str(workers),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert wait(lambda: _ready(port), 30), "server did not start"

            # 1. Latency: distinct warning alerts at 20/s, from the webhook POST to the Slack request.
            sent: dict[str, float] = {}
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for i in range(200):
                name = f"BenchLatency{i:04d}"
                due = time.perf_counter() + 0.05
                sent[name] = time.perf_counter()
                post(port, orjson.dumps(am_payload([am_alert(name)])), conn)
                time.sleep(max(0.0, due - time.perf_counter()))

            def arrivals() -> dict[str, float]:
                seen: dict[str, float] = {}
                for at, request in list(slack.arrivals):
                    text = orjson.dumps(request.payload).decode()
                    for name in sent:
                        if name in text:
                            seen.setdefault(name, at)
                return seen

            wait(lambda: len(arrivals()) >= len(sent), 30)
            got = arrivals()
            lat = [got[n] - t for n, t in sent.items() if n in got]
            print(
                f"alert → recorded Slack request (200 alerts at 20/s): p50 {percentile(lat, 0.5) * 1000:.0f} ms, "
                f"p99 {percentile(lat, 0.99) * 1000:.0f} ms (target p99 <= 1000 ms); {len(lat)}/200 arrived"
            )

            # 2. Fan-out: 1,000 distinct critical alerts (10 per webhook) to Slack, email and PagerDuty.
            base_slack = len(slack.calls("chat.postMessage"))
            base_pd, base_mail = len(pagerduty.events), len(smtp.messages)
            cpu_before = _cpu_seconds(server.pid)
            bench_cpu_before = time.process_time()
            started = time.perf_counter()
            # Alertmanager flushes its aggregation groups concurrently, each on a pooled connection:
            # 100 groups of 10 alerts, posted from 4 connections.
            groups = [
                orjson.dumps(am_payload([am_alert(f"BenchFanout{k:03d}x{j}", severity="critical") for j in range(10)]))
                for k in range(100)
            ]
            post_all(port, "/v1/alertmanager", groups, connections=4)
            posted_at = time.perf_counter()
            counts = {
                "slack": lambda: len(slack.calls("chat.postMessage")) - base_slack,
                "pagerduty": lambda: len(pagerduty.events) - base_pd,
                "email": lambda: len(smtp.messages) - base_mail,
            }
            finished_at: dict[str, float] = {}

            def all_arrived() -> bool:
                for name, count in counts.items():
                    if name not in finished_at and count() >= 1000:
                        finished_at[name] = time.perf_counter() - started
                return len(finished_at) == len(counts)

            done = wait(all_arrived, 120, interval=0.05)
            elapsed = time.perf_counter() - started
            posted = posted_at - started
            server_cpu = _cpu_seconds(server.pid) - cpu_before
            bench_cpu = time.process_time() - bench_cpu_before
            print(
                f"1,000 distinct alerts to 3 channels: {elapsed:.1f} s (target <= 10 s; complete: {done}; "
                f"slack {len(slack.calls('chat.postMessage')) - base_slack}, "
                f"pagerduty {len(pagerduty.events) - base_pd}, email {len(smtp.messages) - base_mail})"
            )
            print(
                f"  webhooks accepted after {posted:.1f} s; last arrival per channel: "
                + ", ".join(f"{name} {at:.1f} s" for name, at in sorted(finished_at.items(), key=lambda kv: kv[1]))
                + f"; CPU: llmcost {server_cpu:.1f} s, recording servers and clients {bench_cpu:.1f} s"
            )

            # 3. Storm: 10,000 identical webhook posts from 8 connections.
            storm = orjson.dumps(am_payload([am_alert("BenchStorm", severity="critical")]))
            base = (len(slack.calls("chat.postMessage")), len(pagerduty.events), len(smtp.messages))
            counter = iter(range(10_000))
            lock = threading.Lock()
            statuses: list[int] = []

            def hammer() -> None:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                while True:
                    with lock:
                        if next(counter, None) is None:
                            return
                    statuses.append(post(port, storm, c))

            threads = [threading.Thread(target=hammer) for _ in range(8)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rate = 10_000 / (time.perf_counter() - started)
            time.sleep(3)
            after = (len(slack.calls("chat.postMessage")), len(pagerduty.events), len(smtp.messages))
            per_channel = [a - b for a, b in zip(after, base, strict=True)]
            print(
                f"storm of 10,000 duplicate Alertmanager posts: {rate:,.0f} requests/s (target >= 1,000), "
                f"{sum(s == 200 for s in statuses)} answered 200; notifications per channel "
                f"(slack, pagerduty, email): {per_channel} (target: exactly 1 each)"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and of its live children (`--workers`) so far (Linux /proc)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _ready(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False


if __name__ == "__main__":
    main()
