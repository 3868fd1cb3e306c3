"""The fast path of file ingest takes only lines the general path takes, and builds the same event.

`canonical_event` answers an event or None (take the general path); the general path is
`parse_event(to_canonical(orjson.loads(line)))`. For every line here: either the fast path declines,
or both give the same `UsageEvent`; and where the general path rejects a line, the fast path declines.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from exporter.body_records import MalformedBody, iter_records
from exporter.canonical_lines import canonical_event, canonical_events
from exporter.demo import load_trace, make_events
from exporter.events import InvalidEvent, UsageEvent, parse_event
from exporter.normalize import to_canonical
from tests.support.paths import RECORDED_USAGE

NOW = time.time()
SKEW = 300.0
RECORDED = RECORDED_USAGE
BASE: dict[str, Any] = {
    "request_id": "req-1",
    "timestamp": NOW - 60,
    "provider": "openai",
    "model": "gpt-4o-mini",
    "input_tokens": 800,
    "cache_read_tokens": 100,
    "output_tokens": 50,
    "project": "checkout",
    "service": "api",
}


def general(line: bytes) -> UsageEvent | None:
    try:
        return parse_event(to_canonical(orjson.loads(line)), now=NOW, max_future_skew=SKEW)
    except (InvalidEvent, orjson.JSONDecodeError, TypeError):
        return None


def fast(line: bytes) -> UsageEvent | None:
    return canonical_event(line, now=NOW, max_future_skew=SKEW)


def assert_agrees(line: bytes) -> UsageEvent | None:
    quick = fast(line)
    if quick is not None:
        assert quick == general(line), line
    return quick


ODD_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 5.0, 5.5, -0.0, 1e300, 2**63, 10**12, 10**12 + 1, 10**30,
    "", " ", "x", "5", "0.25", "2026-11-30T12:00:00Z", "a\tb", "a\u0007b", "caf\u00e9", "zero\u200bwidth",
    "a\u2028b", "del\x7f", "x" * 256, "x" * 257, [], [1], {}, {"k": "v"}, NOW, NOW + 1e6, NOW - 1e3, 946_684_799,
    NOW * 1000, "success", "error", "ok",
]  # fmt: skip


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()  # not orjson: it refuses integers beyond 64 bits


def variants() -> Iterator[bytes]:
    yield dumps(BASE)
    for field in [*BASE, "cache_write_tokens", "reasoning_tokens", "cost_usd", "latency_ms", "status", "user",
                  "metadata", "unknown_field", "usage"]:  # fmt: skip
        for value in ODD_VALUES:
            yield dumps({**BASE, field: value})
            yield json.dumps({**BASE, field: value}, ensure_ascii=False).encode()  # raw UTF-8, unescaped
        yield dumps({k: v for k, v in BASE.items() if k != field})
    yield dumps({**BASE, "output_tokens": 10, "reasoning_tokens": 11})
    yield dumps({**BASE, "output_tokens": 10, "reasoning_tokens": 10})
    yield dumps({**BASE, "metadata": {"team": "a"}, "cost_usd": 0.0125, "latency_ms": 812})
    # Escapes, duplicate keys, whitespace, and text that is not one JSON object.
    yield b'{"request_id": "r\\u0041", "provider": "openai", "model": "m", "timestamp": %d}' % int(NOW)
    yield b'{"request_id": "r\\n", "provider": "openai", "model": "m", "timestamp": %d}' % int(NOW)
    yield b'{"request_id": "r", "provider": "x", "provider": "openai", "model": "m", "timestamp": %d}' % int(NOW)
    yield b'  {"request_id": "r", "provider": "openai", "model": "m", "timestamp": %d}\r' % int(NOW)
    yield b'{"request_id": "r", "provider": "openai", "model": "m", "timestamp": 1e400}'
    yield b'{"request_id": "r", "provider": "openai", "model": "m", "timestamp": NaN}'
    yield b'[{"request_id": "r", "provider": "openai", "model": "m"}]'
    yield b'{"request_id": "r", "provider": "openai", "model": "m", "timestamp": %d}, {}' % int(NOW)
    yield b'{"request_id": "r", "provider": "op\xc3\xa9nai", "model": "m", "timestamp": %d}' % int(NOW)
    yield b""
    yield b"   "
    yield b"{not json"


def test_edge_and_hostile_lines_agree_with_the_general_path() -> None:
    taken = [line for line in variants() if assert_agrees(line) is not None]
    assert dumps(BASE) in taken  # the plain line does take the fast path
    assert len(taken) > 100


def test_plain_canonical_lines_take_the_fast_path() -> None:
    trace = load_trace()[:2000]
    lines = [orjson.dumps(event) for event in make_events(trace, start=NOW - 3600, loop=0)]
    assert all(assert_agrees(line) is not None for line in lines)


def test_lenient_forms_are_left_to_the_general_path() -> None:
    for change in (
        {"timestamp": "2026-11-30T12:00:00Z"},  # RFC 3339
        {"input_tokens": 800.0},  # a whole-number float count
        {"cost_usd": "0.0125"},  # a decimal string
        {"team": "growth"},  # an unknown field, kept in metadata
        {"project": None},
    ):
        line = orjson.dumps({**BASE, **change})
        assert fast(line) is None
        assert general(line) is not None, change
    line = orjson.dumps({k: v for k, v in BASE.items() if k != "request_id"})  # a derived request_id
    assert fast(line) is None
    assert general(line) is not None


def test_provider_usage_objects_are_left_to_the_general_path() -> None:
    for line in RECORDED.read_bytes().splitlines():
        assert fast(line) is None


@pytest.mark.parametrize("field", ["cost_usd", "latency_ms", "timestamp"])
def test_numbers_read_by_either_parser_are_the_same_number(field: str) -> None:
    rng = random.Random(field)
    for _ in range(3000):
        digits = rng.choice([3, 8, 12, 17, 20, 25])
        if field == "timestamp":
            text = f"{rng.randrange(1_700_000_000, int(NOW))}.{rng.randrange(10**digits):0{digits}d}"
        else:
            text = f"{rng.randrange(0, 5000)}.{rng.randrange(10**digits):0{digits}d}e{rng.randrange(-9, 2)}"
        line = orjson.dumps({**BASE, field: 0}).replace(f'"{field}":0'.encode(), f'"{field}":{text}'.encode())
        quick = assert_agrees(line)
        assert quick is not None or general(line) is None, text


def general_body(body: bytes, kind: str) -> list[UsageEvent] | None:
    """The general path's events of a request body, or None if it rejects anything in it."""
    try:
        records = list(iter_records(body, ndjson=kind == "application/x-ndjson", max_records=1_000_000))
    except MalformedBody:
        return None
    events = []
    for _, raw in records:
        if isinstance(raw, InvalidEvent):
            return None
        try:
            events.append(parse_event(to_canonical(raw), now=NOW, max_future_skew=SKEW))
        except (InvalidEvent, TypeError):
            return None
    return events


def test_request_bodies_agree_with_the_general_path() -> None:
    lines = list(variants())
    rng = random.Random(5)
    good = [line for line in lines if fast(line) is not None]
    bodies: list[tuple[bytes, str]] = []
    for _ in range(300):
        picked = rng.sample(good, 5) + ([rng.choice(lines)] if rng.random() < 0.5 else [])
        rng.shuffle(picked)
        bodies.append((b"[" + b",".join(p for p in picked if p.strip()) + b"]", "application/json"))
        bodies.append((b"\n".join(picked), "application/x-ndjson"))
    plain = orjson.dumps(BASE)
    bodies += [
        (plain, "application/json"),  # one event, not in an array
        (b"[]", "application/json"),
        (b"\n" + plain + b"\r\n\n  \n" + plain + b"\n", "application/x-ndjson"),  # blank lines are skipped
        (plain + b" " + plain, "application/x-ndjson"),  # two objects on one line: that line is rejected
        (plain[:-1] + b"\n}", "application/x-ndjson"),  # one object over two lines: both are rejected
        (b"[" + plain + b"] [" + plain + b"]", "application/json"),
    ]
    taken = 0
    for body, kind in bodies:
        quick = canonical_events(body, ndjson=kind == "application/x-ndjson", now=NOW, max_future_skew=SKEW)
        if quick is not None:
            taken += 1
            assert quick == general_body(body, kind), body
    assert taken > 300
