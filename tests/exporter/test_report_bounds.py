"""`llmcost report --since/--until`: one rule for every breakdown (whole 5-minute buckets, widened so that
nothing recorded in the range is left out), and the report shows the bounds it used."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from exporter.usage_summary import summarize
from llmcost.cli import main
from llmcost.services import open_services
from tests.support.helpers import make_config

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


def test_a_range_cutting_an_hour_the_pruner_folded_covers_that_hour_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Folded into one hourly row, 12:00-13:00 cannot be split: a report from 12:20 (or a usage summary)
    counts it whole and says so. It counted the hour only when it started in the range: from 12:20 it
    lost the calls of 12:20-13:00, and its bounds still claimed 12:20."""
    hour = (int(time.time()) - 50 * 86_400) // 3600 * 3600  # 50 days ago: folded with rollups_days 35
    calls = tmp_path / "calls.jsonl"
    rows = [
        {"request_id": f"h{minute}", "timestamp": hour + minute * 60, "provider": "openai", "model": "gpt-4o"}
        | {"input_tokens": 1000, "output_tokens": 100}
        for minute in (10, 40, 70)
    ]
    calls.write_bytes(b"\n".join(orjson.dumps(row) for row in rows) + b"\n")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert main(["ingest", "--db", url, str(calls)]) == 0
    capsys.readouterr()
    cut = ("--since", iso(hour + 20 * 60), "--until", iso(hour + 50 * 60))
    whole = ("--since", iso(hour), "--until", iso(hour + 7200))
    before = report(capsys, url, *cut), report(capsys, url, *whole)
    assert before[0]["total"]["requests"] == 1  # 12:40, in 5-minute buckets

    config = tmp_path / "retention.yml"
    config.write_text("retention: {events_days: 35, rollups_days: 35}\n")
    assert main(["prune", "--db", url, "--config", str(config)]) == 0
    capsys.readouterr()

    after = report(capsys, url, *cut), report(capsys, url, *whole)
    assert after[1] == before[1]  # whole hours: the same to the cent
    assert (after[0]["since"], after[0]["until"]) == (hour, hour + 3600)
    assert after[0]["total"]["requests"] == 2  # 12:10 and 12:40: the folded hour, whole
    assert main(["report", "--db", url, *cut, "--no-hints"]) == 0
    assert "and to whole hours where pruning folded the 5-minute ones)" in capsys.readouterr().out.splitlines()[0]

    services = open_services(make_config(url), start_writer=False)
    try:
        summary = summarize(services.store, "model", hour + 20 * 60, hour + 50 * 60)
    finally:
        services.close()
    assert (summary.since, summary.until, summary.rows[0]["requests"]) == (hour, hour + 3600, 2)


def test_a_breakdown_by_session_counts_the_pruned_calls_in_one_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sessions are read from raw events, which the retention prunes: the calls no longer there are one
    `(pruned)` row, so `--by session` totals what every other breakdown does. It summed only the raw
    events left (the last `events_days`) under a header claiming the whole range, beside a per-model
    section counting everything."""
    old = (int(time.time()) - 50 * 86_400) // 3600 * 3600  # 50 days ago: pruned with events_days 35
    calls = tmp_path / "calls.jsonl"
    rows = [
        {"request_id": f"c{i}", "timestamp": ts, "provider": "openai", "model": "gpt-4o", "session": session}
        | {"input_tokens": 1000, "output_tokens": 100, "project": project}
        for i, (ts, session, project) in enumerate(
            [(old + 600, "s-old", "search"), (old + 700, "s-old", "chat"), (T0 + 10, "s-new", "search")]
        )
    ]
    calls.write_bytes(b"\n".join(orjson.dumps(row) for row in rows) + b"\n")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert main(["ingest", "--db", url, str(calls)]) == 0
    capsys.readouterr()
    config = tmp_path / "retention.yml"
    config.write_text("retention: {events_days: 35, rollups_days: 35}\n")
    assert main(["prune", "--db", url, "--config", str(config)]) == 0
    capsys.readouterr()

    by_project = report(capsys, url, "--by", "project")
    by_session = report(capsys, url, "--by", "session")
    assert by_session["total"] == by_project["total"]
    assert [(r["session"], r["requests"]) for r in by_session["rows"]] == [("(pruned)", 2), ("s-new", 1)]
    both = report(capsys, url, "--by", "project,session")
    assert {(r["project"], r["session"]): r["requests"] for r in both["rows"]} == {
        ("search", "(pruned)"): 1,
        ("chat", "(pruned)"): 1,
        ("search", "s-new"): 1,
    }
    assert both["total"] == by_project["total"]
    recent = report(capsys, url, "--by", "session", "--since", iso(T0))  # within the raw events: no such row
    assert [r["session"] for r in recent["rows"]] == ["s-new"]
