"""`llmcost report` on real SQLite and PostgreSQL: ranges, breakdowns, top-N, formats and hints."""

from __future__ import annotations

import csv
import io
import json
import shlex
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from sqlalchemy import text

from exporter.pricing import PriceBook
from exporter.report.periods import parse_when, period_range
from llmcost.cli import main
from llmcost.services import open_services
from tests.support.helpers import make_config
from tests.support.months import DAY, NOW, history, load_history

UNTIL = "2026-11-11T12:00:00Z"


def report(capsys: pytest.CaptureFixture[str], db_url: str, *argv: str) -> str:
    capsys.readouterr()
    assert main(["report", "--db", db_url, *argv]) == 0
    return capsys.readouterr().out


def report_json(capsys: pytest.CaptureFixture[str], db_url: str, *argv: str) -> dict[str, Any]:
    return json.loads(report(capsys, db_url, "--format", "json", "--until", UNTIL, *argv))


def store_state(db_url: str) -> list[Any]:
    services = open_services(make_config(db_url), start_writer=False)
    try:
        with services.store.reading() as conn:
            return [
                conn.execute(text(f"SELECT COUNT(*), SUM(requests), SUM(cost_nanousd) FROM {table}")).one()
                for table in ("usage_rollup", "usage_series")
            ] + [sorted(conn.execute(text("SELECT name, value FROM ingest_counters")).all())]
    finally:
        services.close()


def events_cost(db_url: str, since: float, until: float) -> tuple[int, int]:
    services = open_services(make_config(db_url), start_writer=False)
    try:
        with services.store.reading() as conn:
            n, cost = conn.execute(
                text("SELECT COUNT(*), SUM(cost_nanousd) FROM usage_events WHERE ts >= :a AND ts < :b"),
                {"a": since, "b": until},
            ).one()
            return int(n), int(cost or 0)
    finally:
        services.close()


@pytest.fixture
def months(db_url: str) -> str:
    load_history(db_url, history(40))
    return db_url


def test_default_report_keeps_its_table_and_json(months: str, capsys: pytest.CaptureFixture[str]) -> None:
    table = report(capsys, months)
    lines = table.splitlines()
    assert lines[1].split() == ["provider", "model", "project", "requests", "tokens", "cost_usd"]
    assert any(line.startswith("total") for line in lines)
    assert "(unpriced)" in table
    data = report_json(capsys, months)
    first = data["rows"][0]
    for key in ("provider", "model", "project", "requests", "input_tokens", "cache_read_tokens", "cost_usd"):
        assert key in first
    assert data["total_cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in data["rows"]))


def test_a_range_counts_exactly_the_calls_inside_it(months: str, capsys: pytest.CaptureFixture[str]) -> None:
    since, until = NOW - 10 * DAY, NOW - 3 * DAY  # 5-minute aligned
    data = json.loads(
        report(capsys, months, "--format", "json", "--since", "2026-11-01T12:00:00Z", "--until", "2026-11-08T12:00:00Z")
    )
    n, cost = events_cost(months, since, until)
    assert data["total"]["requests"] == n
    assert round(data["total_cost_usd"] * 1e9) == cost
    last_week = json.loads(report(capsys, months, "--format", "json", "--period", "last-7d", "--until", UNTIL))
    n, cost = events_cost(months, NOW - 7 * DAY, NOW)
    assert last_week["total"]["requests"] == n


def test_breakdowns_by_any_dimensions_with_the_rest_summed(months: str, capsys: pytest.CaptureFixture[str]) -> None:
    whole = report_json(capsys, months)
    for by in ("user,service", "model,user", "project,session", "service"):
        data = report_json(capsys, months, "--by", by, "--top", "3")
        assert data["by"] == by.split(",")
        assert len(data["rows"]) <= 3
        shown = sum(r["requests"] for r in data["rows"]) + (data["rest"]["requests"] if data["rest"] else 0)
        assert shown == whole["total"]["requests"]
        cost = sum(r["cost_usd"] for r in data["rows"]) + (data["rest"]["cost_usd"] if data["rest"] else 0)
        assert cost == pytest.approx(whole["total_cost_usd"])
    sessions = report_json(capsys, months, "--by", "session", "--top", "100")
    assert {"s0", ""} <= {r["session"] for r in sessions["rows"]}
    users = report_json(capsys, months, "--by", "user", "--top", "2")
    assert users["rest"]["groups"] == len({f"u{i}" for i in range(4)} | {""}) - 2


def test_per_model_cache_hit_and_output_input_ratios(months: str, capsys: pytest.CaptureFixture[str]) -> None:
    models = {m["model"]: m for m in report_json(capsys, months)["models"]}
    haiku = models["claude-haiku-4-5"]
    assert haiku["cache_hit_ratio"] == pytest.approx(100 / 2900)
    assert haiku["output_input_ratio"] == pytest.approx(280 / 2900)
    assert models["claude-sonnet-4-5"]["cache_hit_ratio"] == 0


def test_hints_carry_the_money_at_stake_and_their_figures(months: str, capsys: pytest.CaptureFixture[str]) -> None:
    hints = report_json(capsys, months)["hints"]
    by_kind = {h["kind"]: h for h in hints}
    assert set(by_kind) == {"cheaper_model", "prompt_caching", "unpriced", "growth"}
    cheaper = by_kind["cheaper_model"]["figures"]
    assert (cheaper["model"], cheaper["sibling_model"], cheaper["project"]) == (
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "search",
    )
    book = PriceBook()
    calls = cheaper["calls"]
    # The same figure, computed here from the events' averages and the sibling's price.
    avg_in = round(cheaper["avg_input_tokens"])
    at_haiku = book.cost_nanousd("anthropic", "claude-haiku-4-5", NOW, avg_in, 0, 0, cheaper["avg_output_tokens"])
    assert at_haiku is not None
    assert cheaper["cost_at_sibling_price_usd"] == pytest.approx(at_haiku * calls / 1e9)
    assert by_kind["cheaper_model"]["usd_at_stake"] == pytest.approx(cheaper["cost_usd"] - at_haiku * calls / 1e9)
    assert by_kind["prompt_caching"]["subject"] == "claude-sonnet-4-5"
    assert by_kind["prompt_caching"]["usd_at_stake"] > 0
    assert by_kind["unpriced"]["usd_at_stake"] is None and by_kind["unpriced"]["figures"]["unpriced_calls"] == 320
    growth = by_kind["growth"]["figures"]
    assert growth["last_7d_usd"] > growth["previous_7d_usd"] > 0
    stakes = [h["usd_at_stake"] for h in hints if h["usd_at_stake"] is not None]
    assert stakes == sorted(stakes, reverse=True)
    table = report(capsys, months, "--until", UNTIL)
    assert "hints (money at stake first)" in table and "figures: " in table


def test_csv_and_markdown(months: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = report(capsys, months, "--format", "csv", "--by", "project", "--until", UNTIL)
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert {r["project"] for r in parsed} == {"search", "chat", "batch"}
    assert sum(int(r["requests"]) for r in parsed) == 4 * 320
    md = report(capsys, months, "--format", "markdown", "--until", UNTIL)
    assert "| provider | model | project | requests | tokens | cost (USD) |" in md
    assert "## Hints" in md


def ingest_projects(db_url: str, tmp_path: Path, projects: list[str], *, model: str) -> None:
    """One $0.10 call a project, on `model`, ingested from a JSONL file as a user would."""
    calls = tmp_path / "calls.jsonl"
    rows = (
        {"request_id": f"r{i}", "timestamp": time.time() - 60, "provider": "openai", "model": model}
        | {"project": project, "input_tokens": 10, "cost_usd": 0.1}
        for i, project in enumerate(projects)
    )
    calls.write_text("\n".join(json.dumps(row) for row in rows))
    assert main(["ingest", "--db", db_url, str(calls)]) == 0


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Anyone with an ingest token names projects; whoever opens the CSV in a spreadsheet must not run them.
    hostile = ['=HYPERLINK("http://evil.example/","x")', "@SUM(1+1)", "+1+cmd|' /C calc'!A0", "-2+3", "plain"]
    ingest_projects(sqlite_url, tmp_path, hostile, model="=1+1")
    out = report(capsys, sqlite_url, "--format", "csv", "--by", "project,model", "--period", "all")
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert sorted(r["project"] for r in parsed) == sorted(["'" + p if p[0] in "=@+-" else p for p in hostile])
    assert {r["model"] for r in parsed} == {"'=1+1"}
    assert {r["requests"] for r in parsed} == {"1"}  # figures stay numbers
    # JSON is read by programs, not spreadsheets: its values stay as stored.
    rows = json.loads(report(capsys, sqlite_url, "--format", "json", "--by", "project", "--period", "all"))["rows"]
    assert sorted(r["project"] for r in rows) == sorted(hostile)


def test_markdown_cells_show_hostile_names_as_written_without_links_html_or_extra_cells(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Pasted into a weekly note, a project named `[x](https://evil)` was a link, `<img …>` raw HTML, and
    # `a\\|b` lost its backslash (GitHub ended the cell at that pipe).
    hostile = [
        "[click](https://evil.example/)",
        '"><img src=x onerror=alert(1)>',
        "<https://evil.example|click>",
        "a\\|b",
        "*bold* _it_ ~~gone~~ `code`",
        "&lt;b&gt;",
        "plain|pipe",
    ]
    ingest_projects(sqlite_url, tmp_path, hostile, model="m[1](https://evil.example/)")
    md = report(capsys, sqlite_url, "--format", "markdown", "--by", "project", "--period", "all", "--no-hints")
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    assert not [t for t in tokens if t.type == "html_block"]
    inline = [t for t in tokens if t.type == "inline"]
    assert not [c for t in inline for c in t.children or [] if c.type in ("link_open", "html_inline", "em_open")]
    by_project, per_model = _table_rows(tokens)
    assert sorted(row[0] for row in by_project[1:-1]) == sorted(hostile)
    assert all(len(row) == 4 for row in by_project)  # project, requests, tokens, cost: no cell split off
    assert [row[0] for row in per_model[1:]] == ["openai/m[1](https://evil.example/)"]

    # A hint's command stays a code span to copy as it is, the hostile model inside it included.
    unpriced = {"request_id": "u", "timestamp": time.time() - 60, "provider": "vllm", "input_tokens": 5}
    calls = tmp_path / "unpriced.jsonl"
    calls.write_text(json.dumps({**unpriced, "model": "llama[x]*y*"}))
    assert main(["ingest", "--db", sqlite_url, str(calls)]) == 0
    md = report(capsys, sqlite_url, "--format", "markdown", "--by", "project", "--period", "all")
    spans = [c.content for t in MarkdownIt("commonmark").parse(md) for c in t.children or [] if c.type == "code_inline"]
    assert any(span.startswith("llmcost reprice") and "'llama[x]*y*'" in span for span in spans), spans


def _table_rows(tokens: list[Any]) -> list[list[list[str]]]:
    """Each rendered table as rows of cells, a cell as the plain text a reader sees."""
    tables: list[list[list[str]]] = []
    inside = False
    for t in tokens:
        if t.type in ("table_open", "table_close"):
            inside = t.type == "table_open"
            tables += [[]] if inside else []
        elif t.type == "tr_open":
            tables[-1].append([])
        elif t.type == "inline" and inside:
            shown = (c.content for c in t.children or [] if c.type in ("text", "code_inline"))
            tables[-1][-1].append("".join(shown))
    return tables


def test_a_report_changes_nothing(months: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = store_state(months)
    for fmt in ("table", "json", "csv", "markdown"):
        report(capsys, months, "--format", fmt, "--by", "project,session")
    assert store_state(months) == before


def config_pricing_llama(tmp_path: Path, extra: str = "") -> Path:
    """An `llmcost.yml` (`extra` first) whose overrides file prices the unpriced `llama-internal` model."""
    prices = tmp_path / "prices.yml"
    prices.write_text(
        "prices:\n  - {provider: self-hosted, model: llama-internal, input_per_mtok: 1, output_per_mtok: 2}\n"
    )
    config = tmp_path / "llmcost.yml"
    config.write_text(f"{extra}pricing: {{overrides_file: {prices}}}\n")
    return config


@pytest.mark.parametrize("argv", [(), ("--period", "last-7d", "--until", UNTIL)], ids=["all", "last-7d"])
def test_the_unpriced_hint_names_a_reprice_command_that_runs(
    months: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: tuple[str, ...]
) -> None:
    # The hint said "then run `llmcost reprice`", which stops at once: reprice requires --since.
    hint = next(h for h in report_json(capsys, months, *argv)["hints"] if h["kind"] == "unpriced")
    command = shlex.split(hint["text"].split("`")[1])
    assert command[:2] == ["llmcost", "reprice"] and "--since" in command and "llama-internal" in command
    config = config_pricing_llama(tmp_path)
    capsys.readouterr()
    assert main([*command[1:], "--config", str(config), "--db", months, "--format", "json"]) == 0
    repriced = json.loads(capsys.readouterr().out)
    changed = sum(m["changed"] for m in repriced["models"] if m["model"] == "llama-internal")
    assert changed == hint["figures"]["unpriced_calls"]
    after = report_json(capsys, months, *argv)
    assert not [h for h in after["hints"] if h["kind"] == "unpriced"]


def test_after_a_prune_the_unpriced_hint_reprices_only_what_is_still_kept(
    db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # After `llmcost prune`, the hint still said `llmcost reprice --since <first unpriced call>`, 60 days
    # back: reprice then warned that most of the range was pruned, and the calls the hint counted could
    # not be repriced. The commands run on the real clock, as a user runs them.
    now = time.time()
    load_history(db_url, history(60, step_hours=12, now=now), now=now)
    config = config_pricing_llama(tmp_path, "retention: {events_days: 30, rollups_days: 60}\n")
    capsys.readouterr()
    assert main(["prune", "--db", db_url, "--config", str(config)]) == 0

    def unpriced_hint() -> dict[str, Any]:
        capsys.readouterr()
        assert main(["report", "--db", db_url, "--config", str(config), "--format", "json"]) == 0
        return next(h for h in json.loads(capsys.readouterr().out)["hints"] if h["kind"] == "unpriced")

    hint = unpriced_hint()
    figures = hint["figures"]
    assert figures["unpriced_calls"] == 120  # the rollups still count all 60 days
    assert 55 <= figures["repriceable_calls"] <= 62  # about 30 days of 2 calls a day
    old = figures["unpriced_calls"] - figures["repriceable_calls"]
    assert f"{old} of them are from before" in hint["text"] and "can no longer be repriced" in hint["text"]
    command = shlex.split(hint["text"].split("`")[1])
    since = command[command.index("--since") + 1]
    assert parse_when(since, now=now) >= figures["repriceable_since"] > now - 30 * DAY - 3600

    capsys.readouterr()
    assert main([*command[1:], "--config", str(config), "--db", db_url, "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert "retention.events_days" not in err  # reprice itself has nothing to warn about
    changed = sum(m["changed"] for m in json.loads(out)["models"] if m["model"] == "llama-internal")
    assert changed == figures["repriceable_calls"]

    after = unpriced_hint()  # what is left cannot be repriced: no command, said so
    assert after["figures"]["unpriced_calls"] == old and after["figures"]["repriceable_calls"] == 0
    assert "`" not in after["text"] and "can no longer be repriced" in after["text"], after["text"]


def test_csv_has_the_same_columns_for_an_empty_range(months: str, capsys: pytest.CaptureFixture[str]) -> None:
    # A range without calls wrote `provider,model,project,requests,cost_usd`: a weekly export loaded
    # into a table with the usual 13 columns broke on the quiet week.
    full = report(capsys, months, "--format", "csv", "--until", UNTIL).splitlines()[0]
    empty = report(capsys, months, "--format", "csv", "--since", "2020-01-01", "--until", "2020-01-02")
    assert empty.splitlines() == [full]
    assert full.split(",")[:4] == ["provider", "model", "project", "requests"] and "cost_usd" in full


def test_bad_arguments_are_refused(months: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--db", months, "--by", "colour"]) == 2
    assert "cannot group by colour" in capsys.readouterr().err
    assert main(["report", "--db", months, "--since", "last tuesday"]) == 2
    assert main(["report", "--db", months, "--period", "fortnight"]) == 2


def test_a_period_and_a_since_together_are_refused(months: str, capsys: pytest.CaptureFixture[str]) -> None:
    # `--period last-7d --since 2026-11-01` reported 2026-11-01 .. now: the period was dropped unsaid.
    capsys.readouterr()
    assert main(["report", "--db", months, "--period", "last-7d", "--since", "2026-11-01"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "--period and --since both give the start" in err
    assert main(["report", "--db", months, "--period", "last-7d", "--until", UNTIL, "--format", "json"]) == 0


def test_a_time_beyond_the_calendar_is_refused_in_one_line(months: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    for command in (["report", "--db", months], ["reprice", "--db", months, "--dry-run"]):
        assert main([*command, "--since", "99999999999999999d"]) == 2
        err = capsys.readouterr().err
        assert "out of range" in err and "Traceback" not in err, err


def test_periods() -> None:
    assert parse_when("2026-11-01", now=NOW) == NOW - 10.5 * DAY
    assert parse_when("7d", now=NOW) == NOW - 7 * DAY
    assert period_range("this-month", now=NOW) == (NOW - 10.5 * DAY, None)
    assert period_range("last-week", now=NOW) == (NOW - 9.5 * DAY, NOW - 2.5 * DAY)
    assert period_range("yesterday", now=NOW) == (NOW - 1.5 * DAY, NOW - 0.5 * DAY)


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_periods_in_a_timezone_follow_its_calendar_across_dst() -> None:
    """Los Angeles' clocks went back at 2026-11-01T09:00Z: that day lasted 25 hours, October 31 days."""
    la = "America/Los_Angeles"
    now = at("2026-11-02T12:00:00+00:00")  # 04:00 local on Monday, November 2nd
    assert period_range("yesterday", now=now, tz=la) == (
        at("2026-11-01T07:00:00+00:00"),
        at("2026-11-02T08:00:00+00:00"),
    )
    assert period_range("last-month", now=now, tz=la) == (
        at("2026-10-01T07:00:00+00:00"),
        at("2026-11-01T07:00:00+00:00"),
    )
    assert period_range("this-week", now=now, tz=la) == (at("2026-11-02T08:00:00+00:00"), None)
    assert parse_when("2026-12-01", now=now, tz=la) == at("2026-12-01T08:00:00+00:00")
    assert parse_when("2026-12-01T09:00", now=now, tz=la) == at("2026-12-01T17:00:00+00:00")
    assert parse_when("2026-12-01T09:00Z", now=now, tz=la) == at("2026-12-01T09:00:00+00:00")


def test_one_unpriced_call_reads_as_one_call(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = tmp_path / "calls.jsonl"
    event = {"request_id": "r1", "timestamp": time.time() - 60, "provider": "acme", "model": "secret-7b"}
    calls.write_text(json.dumps({**event, "input_tokens": 10}))
    assert main(["ingest", "--db", sqlite_url, str(calls)]) == 0
    out = report(capsys, sqlite_url, "--period", "all")
    assert "1 call to acme/secret-7b (10 tokens) has no price and counts as $0" in " ".join(out.split()), out


def test_a_project_new_this_week_reads_without_a_python_none(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A first week has no growth ratio: the table and markdown printed `growth_ratio=None`; JSON keeps null."""
    calls = tmp_path / "calls.jsonl"
    event = {"request_id": "r1", "timestamp": time.time() - 60, "provider": "openai", "model": "gpt-4o"}
    calls.write_text(json.dumps({**event, "input_tokens": 1000, "output_tokens": 100, "project": "search"}))
    assert main(["ingest", "--db", sqlite_url, str(calls)]) == 0
    for fmt in ("table", "markdown"):
        out = report(capsys, sqlite_url, "--format", fmt)
        assert "(new this week)" in out and "growth_ratio=-" in out and "None" not in out, out
    answer = json.loads(report(capsys, sqlite_url, "--format", "json"))
    assert [h["figures"]["growth_ratio"] for h in answer["hints"] if h["kind"] == "growth"] == [None]
