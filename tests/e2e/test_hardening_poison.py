"""One poisoning client beside normal ones, against a real `llmcost serve` process on both stores.

Concurrent requests share one commit. An event whose metadata could not be written back (too deep, an
integer past 64 bits, a lone surrogate, NaN, too large, nested past the fast decoder's depth) used to
fail that commit, and every request in it got a bare 500. Now each event is validated in full before
it joins a commit: the poison event is rejected alone, with its index and the reason `llmcost ingest`
gives for the same line, and every normal request succeeds.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.procs import LLMCOST, LlmcostProcess

pytestmark = pytest.mark.real_process

NOW = time.time()
NDJSON = {"Content-Type": "application/x-ndjson"}


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def line(rid: str, metadata: str) -> bytes:
    """A canonical event as one JSON line whose metadata is the raw JSON text `metadata`."""
    head = orjson.dumps(
        {"request_id": rid, "timestamp": NOW - 60, "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 10}
    )
    return head[:-1] + b',"metadata":' + metadata.encode() + b"}"


POISONS = {
    "deep_300": nested(300),
    "integer_2_64": '{"n": 18446744073709551616}',
    "integer_2_64_with_nan": '{"n": 18446744073709551616, "x": NaN}',
    "lone_surrogate": '{"s": "\\ud800"}',
    "over_16_KiB": '{"s": "' + "x" * 17_000 + '"}',
    "nan": '{"x": NaN}',
    "infinity": '{"x": [1, Infinity]}',
    "deep_5000": nested(5000),
}


def normal_batch(prefix: str, n: int) -> list[dict[str, object]]:
    return [
        {
            "request_id": f"{prefix}-{i}",
            "timestamp": NOW - 60,
            "provider": "openai",
            "model": "gpt-4o-mini",
            "input_tokens": 100,
            "output_tokens": 10,
            "project": "normal",
            "metadata": {"i": i},
        }
        for i in range(n)
    ]


def cli_reasons(tmp_path: Path, db_url: str) -> dict[str, str]:
    """What `llmcost ingest` says of each poison line, by kind ("" when it accepts the line)."""
    path = tmp_path / "poison.jsonl"
    kinds = list(POISONS)
    path.write_bytes(b"\n".join(line(f"cli-{kind}", POISONS[kind]) for kind in kinds) + b"\n")
    done = subprocess.run([*LLMCOST, "ingest", str(path), "--db", db_url], capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    reasons = dict.fromkeys(kinds, "")
    for match in re.finditer(r"record (\d+): (.*)", done.stdout):
        reasons[kinds[int(match.group(1)) - 1]] = match.group(2)  # records are numbered from 1
    return reasons


def test_a_poison_event_fails_only_itself(tmp_path: Path, db_url: str) -> None:
    expected = cli_reasons(tmp_path, db_url)
    assert all(expected[k] for k in POISONS if k != "integer_2_64"), expected
    server = LlmcostProcess(db_url).start(tmp_path)
    failures: list[str] = []
    normal_accepted = 0
    lock = threading.Lock()
    stop = threading.Event()

    def normal_client(name: str) -> None:
        nonlocal normal_accepted
        with httpx.Client(base_url=server.base, timeout=30) as client:
            k = 0
            while not stop.is_set():
                response = client.post("/v1/usage", json=normal_batch(f"{name}-{k}", 20))
                with lock:
                    if response.status_code != 200 or response.json()["accepted"] != 20:
                        failures.append(f"{name}-{k}: {response.status_code} {response.text[:200]}")
                    else:
                        normal_accepted += 20
                k += 1

    clients = [threading.Thread(target=normal_client, args=(f"c{i}",)) for i in range(3)]
    for thread in clients:
        thread.start()
    try:
        with httpx.Client(base_url=server.base, timeout=30) as poisoner:
            for round_ in range(5):
                for kind, metadata in POISONS.items():
                    body = b"\n".join(
                        [
                            line(f"ok-{kind}-{round_}-a", '{"fine": true}'),
                            line(f"bad-{kind}-{round_}", metadata),
                            line(f"ok-{kind}-{round_}-b", "{}"),
                        ]
                    )
                    response = poisoner.post("/v1/usage", content=body, headers=NDJSON)
                    assert response.status_code == 200, (kind, response.status_code, response.text[:300])
                    answer = response.json()
                    if expected[kind]:
                        assert answer["accepted"] == 2, (kind, answer)
                        assert [r["index"] for r in answer["rejected"]] == [1], (kind, answer)
                        reason = answer["rejected"][0]["error"]
                        if expected[kind].startswith("metadata"):
                            assert reason == expected[kind], kind
                    else:  # taken by `llmcost ingest` too
                        assert answer == {"accepted": 3, "duplicates": 0, "rejected": []}, (kind, answer)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
        log = server.log()
        server.stop()
    assert failures == []
    assert normal_accepted > 0
    assert "Traceback" not in log


def test_the_reasons_name_the_problem(tmp_path: Path, sqlite_url: str) -> None:
    reasons = cli_reasons(tmp_path, sqlite_url)
    assert reasons["deep_300"] == "metadata: is nested more than 254 levels deep"
    assert reasons["over_16_KiB"].startswith("metadata: is 17008 bytes as JSON; the limit is 16384")
    # The general JSON parser reads a 2^64 integer as a float: stored, not a poison.
    assert reasons["integer_2_64"] == ""
    assert "not valid JSON" in reasons["nan"]
