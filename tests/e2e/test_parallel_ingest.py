"""`llmcost ingest` with several worker processes gives exactly the serial result (real processes)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from tests.support.procs import LLMCOST

pytestmark = pytest.mark.real_process

LINES = 45_000  # pieces of CHUNK_LINES (20,000), then smaller ones: the odd lines below sit on piece boundaries


def write_calls(path: Path) -> None:
    lines = []
    for i in range(LINES):
        event = {
            "request_id": f"call-{i}",
            "timestamp": 1_795_000_000 + i,
            "provider": ["openai", "anthropic", "deepseek"][i % 3],
            "model": ["gpt-4o-mini", "claude-sonnet-4-5", "deepseek-chat"][i % 3],
            "input_tokens": 500 + i % 700,
            "output_tokens": 20 + i % 90,
            "project": f"project-{i % 7}",
        }
        lines.append(orjson.dumps(event))
    lines[19_999] = orjson.dumps({**orjson.loads(lines[5]), "project": "ignored"})  # a duplicate of line 5
    lines[20_000] = b"{not json"
    lines[20_001] = b""
    lines[30_000] = orjson.dumps({**orjson.loads(lines[30_000]), "input_tokens": -1})
    lines[40_000] = b"[1, 2]"
    path.write_bytes(b"\n".join(lines) + b"\n")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LLMCOST, *args], capture_output=True, text=True, timeout=300)


def test_several_workers_store_and_report_exactly_what_one_does(tmp_path: Path, db_url: str) -> None:
    calls = tmp_path / "calls.jsonl"
    write_calls(calls)
    serial_db = f"sqlite:///{tmp_path / 'serial.db'}"

    serial = run("ingest", str(calls), "--db", serial_db, "--workers", "1")
    parallel = run("ingest", str(calls), "--db", db_url, "--workers", "2")

    assert serial.returncode == parallel.returncode == 1, parallel.stderr  # some records were rejected
    summary = [line for line in parallel.stdout.splitlines() if not line.lstrip().startswith(tuple("0123456789"))]
    assert summary == [line for line in serial.stdout.splitlines() if "records/s" not in line]
    assert f"{LINES - 5} accepted, 1 duplicates, 3 rejected" in parallel.stdout
    assert "record 20001: line 20001: not valid JSON" in parallel.stdout
    assert "record 30001: input_tokens" in parallel.stdout
    assert "record 40001: line 40001: a record must be a JSON object" in parallel.stdout
    assert (
        run("report", "--db", db_url, "--format", "json").stdout
        == run("report", "--db", serial_db, "--format", "json").stdout
    )

    again = run("ingest", str(calls), "--db", db_url, "--workers", "2")
    assert f"0 accepted, {LINES - 4} duplicates, 3 rejected" in again.stdout


def test_lines_that_only_parse_together_are_each_rejected_with_their_line(sqlite_url: str) -> None:
    from exporter.pipeline import IngestPipeline
    from exporter.pricing import PriceBook
    from exporter.store import Store

    # Joined with commas, the first two lines would make one valid object and the third two: three
    # values for three lines. Each line must be judged on its own.
    blob = b'{"x": [1\n2]}\n{"a": 1}, {"b": 2}\n{"provider": "openai", "model": "gpt-4o", "request_id": "r"}\n'
    store = Store(sqlite_url)
    events, rejected, _ = IngestPipeline(store, PriceBook()).prepare_lines(100, blob.split(b"\n"))
    store.close()
    assert [r.index for r in rejected] == [100, 101, 102]
    assert "line 101: not valid JSON" in rejected[0].error
    assert [e.request_id for e in events] == ["r"]


def test_file_pieces_hold_every_line_once_with_its_index_and_shrink_at_the_end(tmp_path: Path) -> None:
    from exporter.parallel_ingest import file_chunks

    path = tmp_path / "calls.jsonl"
    lines = [b'{"n": %d%s}' % (i, b" " * (i % 13)) for i in range(10_000)]
    path.write_bytes(b"\n".join(lines))  # no newline after the last line

    pieces = list(file_chunks(path, workers=2, chunk_lines=1_500, tail_lines=100))

    assert b"".join(blob for _, blob in pieces) == path.read_bytes()
    index = 0
    for first, blob in pieces:
        assert first == index
        assert blob.split(b"\n")[0] == lines[first]
        index += len(blob.splitlines())
    assert index == len(lines)
    sizes = [len(blob.splitlines()) for _, blob in pieces]
    assert sizes[0] == 1_500
    assert sizes[-2] == 100  # the last full pieces are the smallest
    assert sizes[:-1] == sorted(sizes[:-1], reverse=True)  # pieces only ever shrink
