"""The ingest door: content types and encodings, JSON value bounds, per-element rejection, no bare 500."""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Iterator

import orjson
import pytest
from starlette.testclient import TestClient

from exporter.commit_queue import CommitQueue, WriteFailed
from exporter.events import UsageEvent
from exporter.http.app import build_app
from exporter.http.encoding import BadEncoding, DecodedTooLarge, UnsupportedEncoding, decode_body
from exporter.json_budget import values_bound
from exporter.services import Services
from exporter.store import Store
from tests.support.helpers import make_config

NOW = time.time()


def event(rid: str, **fields: object) -> dict[str, object]:
    return {
        "request_id": rid,
        "timestamp": NOW - 60,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 10,
        **fields,
    }


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    services = Services.build(make_config(sqlite_url, ingest={"max_body_bytes": 1_000_000}))
    with TestClient(build_app(services), raise_server_exceptions=False) as test_client:
        yield test_client
    services.close()


def test_a_missing_content_type_is_refused_not_read_as_json(client: TestClient) -> None:
    response = client.post("/v1/usage", content=orjson.dumps(event("a")))
    assert response.status_code == 415
    assert "without a Content-Type" in response.json()["error"]


def test_gzip_bodies_are_decoded_and_a_gzip_bomb_is_refused(client: TestClient) -> None:
    body = gzip.compress(orjson.dumps([event("g1"), event("g2")]))
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    assert client.post("/v1/usage", content=body, headers=headers).json()["accepted"] == 2
    bomb = gzip.compress(b" " * 50_000_000)  # ~50 KB that inflates to 50 MB, over the 1 MB limit
    response = client.post("/v1/usage", content=bomb, headers=headers)
    assert response.status_code == 413
    assert response.json()["detail"] == {"limit_bytes": 1_000_000}
    response = client.post("/v1/usage", content=body, headers={**headers, "Content-Encoding": "br"})
    assert response.status_code == 415
    assert "'br'" in response.json()["error"]
    response = client.post("/v1/usage", content=body[:-8], headers=headers)
    assert response.status_code == 400


def test_decode_body() -> None:
    assert decode_body(b"plain", None, 10) == b"plain"
    assert decode_body(zlib.compress(b"abc"), "deflate", 10) == b"abc"
    assert decode_body(gzip.compress(gzip.compress(b"abc")), "gzip, gzip", 100) == b"abc"
    with pytest.raises(DecodedTooLarge):
        decode_body(gzip.compress(b"x" * 11), "gzip", 10)
    with pytest.raises(UnsupportedEncoding):
        decode_body(b"x", "zstd", 10)
    with pytest.raises(BadEncoding):
        decode_body(b"not gzip", "gzip", 10)


def test_values_bound_counts_values_outside_strings() -> None:
    body = orjson.dumps([{"a": "x,y:[z", "b": [1, 2]}, {"t": "2025-01-01T00:00:00Z", "e": 'q\\"[,:'}])
    # 7 values: the array, 2 objects, 4 members, [1, 2] holding 2 more; the bound may count object commas too.
    assert 9 <= values_bound(body, ndjson=False, limit=0) <= 12
    assert values_bound(b"[" + b"{}," * 999 + b"{}]", ndjson=False, limit=10) == 1001
    assert values_bound(b"{}\n{}\n", ndjson=True, limit=10) == 3


def body_with_deep_metadata(depth: int) -> bytes:
    deep = b'{"a":' * depth + b"1" + b"}" * depth
    good = orjson.dumps(event("e1"))
    return b"[" + good + b"," + good[:-1] + b',"metadata":' + deep + b"}," + orjson.dumps(event("e3")) + b"]"


def test_an_element_too_deep_is_rejected_alone(client: TestClient) -> None:
    headers = {"Content-Type": "application/json"}
    response = client.post("/v1/usage", content=body_with_deep_metadata(900), headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 2
    assert answer["rejected"] == [{"index": 1, "error": "metadata: is nested more than 254 levels deep"}]
    # Past the JSON parsers' own depth (about 1,000 levels) an array cannot even be split: the body is
    # malformed (400, naming the depth); sent as NDJSON, that line alone is rejected (test_hardening_poison).
    response = client.post("/v1/usage", content=body_with_deep_metadata(5000), headers=headers)
    assert response.status_code == 400
    assert "depth" in response.json()["error"]


def test_too_many_json_values_is_413_before_parsing(sqlite_url: str) -> None:
    services = Services.build(make_config(sqlite_url, ingest={"max_json_values": 1000}))
    with TestClient(build_app(services)) as client:
        body = b"[" + b"{}," * 2000 + b"{}]"
        response = client.post("/v1/usage", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["detail"] == {"limit_values": 1000}
    services.close()


def test_a_shared_commit_that_fails_is_retried_per_request(db_url: str) -> None:
    # Events built past validation (as a future bug might): the guilty one cannot be written.
    store = Store(db_url)
    queue = CommitQueue(store)
    try:
        guilty = UsageEvent("bad", NOW - 60, "openai", "m", metadata={"n": 2**64}, cost_nanousd=0)
        normal = [
            [UsageEvent(f"ok-{k}-{i}", NOW - 60, "openai", "m", cost_nanousd=0) for i in range(3)] for k in range(4)
        ]
        gate = threading.Lock()
        with gate:  # hold the writer back so all submissions join one batch
            store_write = store.write_events

            def gated(events, rejected=0, skipped=None):  # type: ignore[no-untyped-def]
                with gate:
                    return store_write(events, rejected=rejected, skipped=skipped)

            store.write_events = gated  # type: ignore[method-assign]
            first = queue.submit(normal[0])
            futures = [queue.submit(events) for events in normal[1:2]]
            bad = queue.submit([guilty])
            futures += [queue.submit(events) for events in normal[2:]]
        assert first.result(timeout=30) == (3, 0)
        assert [f.result(timeout=30) for f in futures] == [(3, 0)] * 3
        with pytest.raises(WriteFailed):
            bad.result(timeout=30)
    finally:
        queue.close()
        store.close()
