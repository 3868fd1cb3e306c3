"""`llmcost report --since/--until`: one rule for every breakdown (whole 5-minute buckets, widened so that
nothing recorded in the range is left out), and the report shows the bounds it used."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmcost.cli import main

BUCKET = 300
T0 = (int(time.time()) - 86_400) // BUCKET * BUCKET  # a 5-minute boundary yesterday


def iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


@pytest.fixture
def store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Calls at T0+10 s and T0+130 s (one bucket), and T0+310 s (the next), each in its own session."""
    calls = tmp_path / "calls.jsonl"
    rows = [
        {"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100, "timestamp": T0 + offset}
        | {"request_id": f"r{offset}", "session": f"s{offset}"}
        for offset in (10, 130, 310)
    ]
    calls.write_bytes(b"\n".join(orjson.dumps(row) for row in rows) + b"\n")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert main(["ingest", "--db", url, str(calls)]) == 0
    capsys.readouterr()
    return url


def report(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> dict[str, Any]:
    assert main(["report", "--db", url, "--format", "json", "--no-hints", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_breakdown_covers_the_same_whole_buckets(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    # 60 s .. 200 s cuts the first bucket on both sides: it is read whole, by any breakdown.
    bounds = ("--since", iso(T0 + 60), "--until", iso(T0 + 200))
    by_model = report(capsys, store, *bounds, "--by", "model")
    by_session = report(capsys, store, *bounds, "--by", "session")
    assert by_model["total"]["requests"] == by_session["total"]["requests"] == 2
    assert by_model["total_cost_usd"] == by_session["total_cost_usd"]
    assert sorted(row["session"] for row in by_session["rows"]) == ["s10", "s130"]


def test_the_report_shows_the_bounds_it_used(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    shown = report(capsys, store, "--since", iso(T0 + 60), "--until", iso(T0 + 200))
    assert (shown["since"], shown["until"]) == (T0, T0 + BUCKET)
    assert (shown["requested_since"], shown["requested_until"]) == (T0 + 60, T0 + 200)

    assert main(["report", "--db", store, "--since", iso(T0 + 60), "--until", iso(T0 + 200), "--no-hints"]) == 0
    title = capsys.readouterr().out.splitlines()[0]
    assert title.startswith(f"llmcost report: {iso(T0)} .. {iso(T0 + BUCKET)}, by provider, model, project")
    assert f"(asked {iso(T0 + 60)} .. {iso(T0 + 200)}; widened to whole 5-minute buckets)" in title


def test_aligned_bounds_are_used_as_given(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    shown = report(capsys, store, "--since", iso(T0), "--until", iso(T0 + BUCKET), "--by", "session")
    assert (shown["since"], shown["until"]) == (T0, T0 + BUCKET) == (shown["requested_since"], shown["requested_until"])
    assert shown["total"]["requests"] == 2
    assert main(["report", "--db", store, "--since", iso(T0), "--until", iso(T0 + BUCKET), "--no-hints"]) == 0
    assert "widened" not in capsys.readouterr().out
