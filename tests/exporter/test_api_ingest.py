"""POST /v1/usage and /metrics through the real ASGI app, against real SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest
from starlette.testclient import TestClient

from exporter.http.app import build_app
from exporter.services import Services
from tests.support.helpers import make_config, rank_epochs_later, total
from tests.support.paths import DATA
from tests.support.pricing import ingest_client

NOW = time.time()
TOKEN = "ingest-token-0123456789"
ADMIN = "admin-token-0123456789ab"


def usage(rid: str, **kw):  # type: ignore[no-untyped-def]
    event = {
        "request_id": rid,
        "timestamp": NOW - 30,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 200,
        "project": "search",
        "service": "api",
    }
    event.update(kw)
    return event


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    yield from ingest_client(db_url, ingest={"max_body_bytes": 2_000_000})


def test_one_event_an_array_and_ndjson_are_accepted(client: TestClient) -> None:
    assert client.post("/v1/usage", json=usage("a")).json() == {
        "accepted": 1,
        "duplicates": 0,
        "rejected": [],
    }
    body = client.post("/v1/usage", json=[usage("b"), usage("c")]).json()
    assert body["accepted"] == 2
    lines = b"\n".join(orjson.dumps(usage(r)) for r in ("d", "e")) + b"\n"
    response = client.post("/v1/usage", content=lines, headers={"Content-Type": "application/x-ndjson"})
    assert response.json()["accepted"] == 2
    text = client.get("/metrics").text
    assert total(text, "llm_requests_total", project="search") == 5
    assert total(text, "llm_tokens_total", token_type="input") == 5000
    assert total(text, "llm_ingest_events_total", outcome="accepted") == 5


def test_bad_events_are_rejected_by_index_and_do_not_block_good_ones(client: TestClient) -> None:
    head = orjson.dumps([usage("ok1"), usage("bad", input_tokens=-5), {"model": "x"}])[:-1]
    # Not strict JSON, but what Python's json.dumps writes: only these events may be rejected.
    odd = b', {"provider":"openai","model":"m","cost_usd":1e999}, {"provider":"openai","model":"m","latency_ms":NaN}'
    raw = head + odd + b", " + orjson.dumps(usage("ok2")) + b"]"
    body = client.post("/v1/usage", content=raw, headers={"Content-Type": "application/json"}).json()
    assert body["accepted"] == 2
    errors = {r["index"]: r["error"] for r in body["rejected"]}
    assert errors[1].startswith("input_tokens: must be >= 0")
    assert errors[2] == "provider: is required"
    assert errors[3] == "cost_usd: must be a finite number"
    assert errors[4] == "latency_ms: must be a finite number"
    text = client.get("/metrics").text
    assert total(text, "llm_ingest_events_total", outcome="rejected") == 4


def test_ndjson_bad_line_is_rejected_alone(client: TestClient) -> None:
    raw = orjson.dumps(usage("n1")) + b"\n{not json\n" + orjson.dumps(usage("n2")) + b"\n"
    body = client.post("/v1/usage", content=raw, headers={"Content-Type": "application/x-ndjson"}).json()
    assert body["accepted"] == 2
    assert body["rejected"][0]["index"] == 1
    assert "not valid JSON" in body["rejected"][0]["error"]


def test_duplicates_count_once(client: TestClient) -> None:
    client.post("/v1/usage", json=[usage("x"), usage("y")])
    body = client.post("/v1/usage", json=[usage("x"), usage("y"), usage("z"), usage("z")]).json()
    assert body == {"accepted": 1, "duplicates": 3, "rejected": []}
    text = client.get("/metrics").text
    assert total(text, "llm_requests_total") == 3
    assert total(text, "llm_ingest_events_total", outcome="duplicate") == 3


def test_cost_is_priced_supplied_or_counted_as_unpriced(client: TestClient) -> None:
    client.post(
        "/v1/usage",
        json=[
            usage("priced"),
            usage("supplied", model="my-finetune", provider="self-hosted", cost_usd=0.25),
            usage("unknown", model="no-such-model-xyz", provider="self-hosted"),
        ],
    )
    text = client.get("/metrics").text
    priced = total(text, "llm_cost_usd_total", model="gpt-4o-mini")
    # gpt-4o-mini: $0.15 / M input, $0.60 / M output → 1000 × 0.15e-6 + 200 × 0.6e-6
    assert priced == pytest.approx(0.00027, abs=1e-9)
    assert total(text, "llm_cost_usd_total", model="my-finetune") == 0.25
    assert total(text, "llm_cost_usd_total", model="no-such-model-xyz") == 0
    assert total(text, "llm_unpriced_requests_total", model="no-such-model-xyz") == 1
    assert total(text, "llm_unpriced_requests_total", model="my-finetune") == 0


def test_records_of_no_call_are_skipped_counted_by_reason_and_not_rejected(client: TestClient) -> None:
    """A request LiteLLM's proxy refused before any provider, beside a call and a bad record (SQLite and PostgreSQL)."""
    logged = orjson.loads((DATA / "litellm-proxy" / "logged_calls.json").read_bytes())
    refused = logged["wrong_key"]["standard_logging_object"]
    body = [usage("ok"), refused, usage("bad", input_tokens=-5), {**refused, "id": "refused-2"}]
    answer = client.post("/v1/usage", json=body)
    assert answer.status_code == 200
    assert answer.json()["skipped"] == {"reached_no_provider": 2}
    assert (answer.json()["accepted"], [r["index"] for r in answer.json()["rejected"]]) == (1, [2])
    only_skipped = client.post("/v1/usage", json=[refused])
    assert (only_skipped.status_code, only_skipped.json()["skipped"]) == (200, {"reached_no_provider": 1})
    text = client.get("/metrics").text
    assert total(text, "llm_ingest_events_skipped_total", reason="reached_no_provider") == 3
    assert total(text, "llm_ingest_events_total", outcome="rejected") == 1
    assert total(text, "llm_requests_total", provider="unknown") == 0


def test_a_batch_sent_again_counts_its_skipped_records_again_and_its_calls_as_duplicates(client: TestClient) -> None:
    """A sender's retry, or `llmcost ingest` run again on a file: what each counter then says.

    Decided, not fixed (docs/metrics.md): `llm_ingest_events_skipped_total` counts the skipped records received,
    as `llm_ingest_events_total` counts every record received by outcome; only stored calls are deduplicated,
    by `request_id`. Recognising a skipped record sent again would mean storing the id of every request the
    proxy refused, a write per refused request that anyone reaching the proxy could grow.
    """
    logged = orjson.loads((DATA / "litellm-proxy" / "logged_calls.json").read_bytes())
    batch = [usage("call"), logged["wrong_key"]["standard_logging_object"]]
    first, again = (client.post("/v1/usage", json=batch).json() for _ in range(2))
    assert (first["accepted"], first["duplicates"], first["skipped"]) == (1, 0, {"reached_no_provider": 1})
    assert (again["accepted"], again["duplicates"], again["skipped"]) == (0, 1, {"reached_no_provider": 1})
    text = client.get("/metrics").text
    assert total(text, "llm_ingest_events_skipped_total", reason="reached_no_provider") == 2
    assert total(text, "llm_ingest_events_total", outcome="duplicate") == 1
    assert total(text, "llm_requests_total") == 1


def test_malformed_json_is_400_and_wrong_type_is_415(client: TestClient) -> None:
    response = client.post("/v1/usage", content=b'{"provider": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
    response = client.post("/v1/usage", content=b"42", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    response = client.post("/v1/usage", content=b"hello", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


def test_all_rejected_is_422_with_reasons(client: TestClient) -> None:
    response = client.post("/v1/usage", json=[{"model": "x"}])
    assert response.status_code == 422
    assert response.json()["rejected"] == [{"index": 0, "error": "provider: is required"}]


def test_oversized_body_is_413_before_reading_it_all(client: TestClient) -> None:
    big = b"[" + b",".join([orjson.dumps(usage("big"))] * 20_000) + b"]"
    response = client.post("/v1/usage", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["detail"] == {"limit_bytes": 2_000_000}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while streaming
        for _ in range(100):
            yield big[:50_000]

    response = client.post("/v1/usage", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_huge_labels_and_control_characters_are_rejected(client: TestClient) -> None:
    body = client.post(
        "/v1/usage", json=[usage("l1", project="p" * 10_240), usage("l2", user="a\x00b"), usage("l3")]
    ).json()
    assert body["accepted"] == 1
    assert [r["index"] for r in body["rejected"]] == [0, 1]


@pytest.mark.heavy  # replays or builds a large dataset: `make test` only
def test_a_batch_of_100000_events(db_url: str) -> None:
    services = Services.build(make_config(db_url))
    with TestClient(build_app(services)) as client:
        batch = [usage(f"bulk-{i}", project=f"p{i % 7}") for i in range(100_000)]
        response = client.post("/v1/usage", content=orjson.dumps(batch), headers={"Content-Type": "application/json"})
        assert response.status_code == 200
        assert response.json()["accepted"] == 100_000
        too_many = orjson.dumps([usage("t")] * 100_001)
        response = client.post("/v1/usage", content=too_many, headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert "limit is 100000" in response.json()["error"]
        assert total(client.get("/metrics").text, "llm_requests_total") == 100_000
    services.close()


def test_ingest_token_is_required_when_configured(sqlite_url: str) -> None:
    services = Services.build(make_config(sqlite_url, auth={"ingest_tokens": [TOKEN], "admin_tokens": [ADMIN]}))
    with TestClient(build_app(services)) as client:
        assert client.post("/v1/usage", json=usage("a")).status_code == 401
        bad = client.post("/v1/usage", json=usage("a"), headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        assert bad.json()["error"].startswith(
            "missing or invalid bearer token: this endpoint takes one of auth.ingest_tokens"
        )
        assert client.post("/v1/usage", json=usage("a"), headers={"Authorization": ADMIN}).status_code == 401
        good = client.post("/v1/usage", json=usage("a"), headers={"Authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200
        assert client.get("/metrics").status_code == 200
    services.close()


def test_user_label_is_opt_in_and_folds_into_other_keeping_totals_exact(sqlite_url: str) -> None:
    events = [usage(f"u{i}", user=f"user-{i}", cost_usd=float(i + 1)) for i in range(10)]
    plain = Services.build(make_config(sqlite_url))
    with TestClient(build_app(plain)) as client:
        client.post("/v1/usage", json=events)
        text = client.get("/metrics").text
        assert 'user="' not in text
    plain.close()
    capped = Services.build(make_config(sqlite_url, metrics={"extra_labels": ["user"], "max_series_per_label": 4}))
    rank_epochs_later(capped.registry)  # the values were ingested just now (exporter.label_ranks)
    with TestClient(build_app(capped)) as client:
        text = client.get("/metrics").text
    capped.close()
    users = {
        line.split('user="')[1].split('"')[0] for line in text.splitlines() if line.startswith("llm_cost_usd_total")
    }
    assert users == {"user-9", "user-8", "user-7", "__other__"}
    assert total(text, "llm_cost_usd_total") == sum(range(1, 11))
    assert total(text, "llm_cost_usd_total", user="__other__") == sum(range(1, 8))


def test_landing_health_and_readiness(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'href="/metrics"' in page.text
    assert client.get("/healthz").text == "ok\n"
    assert client.get("/readyz").status_code == 200
    assert 'llm_exporter_build_info{version="' in client.get("/metrics").text


def test_a_wrong_path_or_method_answers_in_the_api_error_shape(client: TestClient) -> None:
    """A typo in a path or method gets the same JSON error every other failure gets, not plain text."""
    missing = client.get("/v1/usagee")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not found", "detail": {"method": "GET", "path": "/v1/usagee"}}
    wrong = client.get("/v1/usage")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"] == "method not allowed"


@pytest.mark.parametrize("form", ["array", "ndjson"])
def test_whole_and_fractional_timestamps_in_one_batch_are_all_stored(client: TestClient, form: str) -> None:
    """A client sending `1764000000` beside `1764000000.25` (both valid JSON numbers) gets both stored."""
    events = [usage(f"ts-{form}-1", timestamp=int(NOW) - 60), usage(f"ts-{form}-2", timestamp=NOW - 59.75)]
    events[0]["latency_ms"], events[1]["latency_ms"] = 120, 80.5
    if form == "ndjson":
        body = b"\n".join(orjson.dumps(e) for e in events) + b"\n"
        response = client.post("/v1/usage", content=body, headers={"Content-Type": "application/x-ndjson"})
    else:
        response = client.post("/v1/usage", json=events)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 2


def test_a_flattened_provider_usage_is_rejected_by_index_not_stored_as_a_free_call(client: TestClient) -> None:
    # A newcomer copies OpenAI's usage fields into the event instead of sending them as "usage": before,
    # the answer was "accepted" and the call was stored at 0 tokens and $0.
    flat = usage("flat", prompt_tokens=1000, completion_tokens=200, total_tokens=1200)
    del flat["input_tokens"], flat["output_tokens"]
    body = client.post("/v1/usage", json=[usage("good"), flat]).json()
    assert body["accepted"] == 1
    assert body["rejected"] == [
        {
            "index": 1,
            "error": "prompt_tokens: is a provider usage field, not an event field: its 1000 tokens would not be "
            "counted; send the provider's usage object as \"usage\": {...} (read with that provider's meaning), "
            "or input_tokens (uncached input only)",
        }
    ]
    # Sent as the usage object it came from, the same call is counted with OpenAI's meaning.
    wrapped = {k: v for k, v in usage("flat").items() if not k.endswith("_tokens")}
    wrapped["usage"] = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}
    assert client.post("/v1/usage", json=wrapped).json()["accepted"] == 1
    text = client.get("/metrics").text
    assert total(text, "llm_tokens_total", token_type="input") == 2000
