"""Reading recorded calls from files: every format, bad records beside good ones, auto-detection."""

from __future__ import annotations

import csv
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

from exporter.config import OtlpConfig
from exporter.events import InvalidEvent, parse_event
from exporter.normalize import to_canonical
from exporter.otlp import parse_json, span_records
from exporter.readers import FORMATS, detect_format, iter_file_records
from tests.support.paths import DATA as TEST_DATA
from tests.support.paths import RECORDED_USAGE

NOW = 2_000_000_000.0
RECORDED = RECORDED_USAGE
DATA = TEST_DATA / "normalize"


def read(path: Path, fmt: str = "auto") -> list[tuple[int, Any]]:
    return list(iter_file_records(path, fmt))


def plain(records: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """Records with errors as (field, reason): exceptions do not compare equal."""
    return [(i, (r.field, r.reason) if isinstance(r, InvalidEvent) else r) for i, r in records]


def errors(records: list[tuple[int, Any]]) -> dict[int, InvalidEvent]:
    return {index: record for index, record in records if isinstance(record, InvalidEvent)}


def good(records: list[tuple[int, Any]]) -> dict[int, dict[str, Any]]:
    return {index: record for index, record in records if not isinstance(record, InvalidEvent)}


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_bytes(b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines))
    return path


def event(i: int) -> dict[str, Any]:
    return {"request_id": f"r{i}", "provider": "openai", "model": "gpt-4o", "input_tokens": i, "output_tokens": 1}


def test_formats_are_the_cli_choices() -> None:
    assert FORMATS == ("auto", "jsonl", "csv", "litellm", "openai-usage", "otel")
    with pytest.raises(ValueError, match="unknown format"):
        iter_file_records(RECORDED, "yaml")


# --- JSON lines -----------------------------------------------------------------------------------


def test_jsonl_bad_lines_do_not_stop_the_good_ones(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "events.jsonl", [event(0), b'{"provider": "openai", ', b"", event(3), b"[1, 2]", event(5)]
    )
    records = read(path, "jsonl")
    assert [index for index, _ in records] == [0, 1, 3, 4, 5]  # index = line number - 1; blank line skipped
    assert good(records) == {0: event(0), 3: event(3), 5: event(5)}
    assert "line 2: not valid JSON" in str(errors(records)[1])
    assert "line 5: a record must be a JSON object, got array" in str(errors(records)[4])


def test_jsonl_line_that_is_not_utf8_says_so(tmp_path: Path) -> None:
    """A line in another encoding was rejected in orjson's words, `not valid JSON (str is not valid UTF-8:
    surrogates not allowed: …)`, which do not say what to do; it is rejected as the CSV reader rejects one."""
    latin1 = orjson.dumps({**event(1), "user": "José"}).replace("é".encode(), "é".encode("latin-1"))
    path = write_lines(tmp_path / "events.jsonl", [event(0), latin1, event(2)])
    records = read(path)
    assert good(records) == {0: event(0), 2: event(2)}
    assert str(errors(records)[1]) == "line 2: not UTF-8 text (save the file as UTF-8)"


def test_jsonl_first_line_broken(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "events.jsonl", [b'{"provider": ', event(1), event(2)])
    records = read(path)
    assert list(errors(records)) == [0]
    assert good(records) == {1: event(1), 2: event(2)}


def test_json_array_and_pretty_printed_object(tmp_path: Path) -> None:
    array = tmp_path / "events.json"
    array.write_bytes(orjson.dumps([event(0), 7, event(2)], option=orjson.OPT_INDENT_2))
    records = read(array, "jsonl")
    assert good(records) == {0: event(0), 2: event(2)}
    assert "a record must be a JSON object, got number" in str(errors(records)[1])
    single = tmp_path / "event.json"
    single.write_bytes(orjson.dumps(event(4), option=orjson.OPT_INDENT_2))
    assert read(single, "jsonl") == [(0, event(4))]


def test_broken_json_array_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text('[{"provider": "openai"}, ')
    [(index, record)] = read(path)
    assert index == 0 and isinstance(record, InvalidEvent)


def test_jsonl_records_are_the_parsed_dicts_for_to_canonical(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "events.jsonl", [event(1)])
    [(_, record)] = read(path)
    assert parse_event(to_canonical(record), now=NOW).input_tokens == 1


def test_jsonl_memory_stays_flat(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    line = orjson.dumps({**event(1), "metadata": {"note": "x" * 200}}) + b"\n"
    path.write_bytes(line * 50_000)
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_file_records(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50_000
    assert peak < 4 * 1024 * 1024  # the whole file as dicts would take well over 50 MB


# --- CSV ------------------------------------------------------------------------------------------

CSV_HEADER = (
    "request_id,timestamp,provider,model,input_tokens,cache_read_tokens,output_tokens,cost_usd,latency_ms,"
    "project,metadata,team\n"
)


def test_csv_conversion(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(
        CSV_HEADER
        + 'r1,1735689600,openai,gpt-4o,1200,1000,50,0.000123456789,812.5,search,"{""ticket"": ""T-1""}",core\n'
        + "r2,2025-01-01T00:00:00Z,anthropic,claude-sonnet-4-5, 7 ,,3.0,,,,,\n",
        encoding="utf-8-sig",  # a spreadsheet's byte-order mark must not stick to "request_id"
    )
    records = read(path)
    assert records[0] == (
        0,
        {
            "request_id": "r1",
            "timestamp": 1735689600.0,
            "provider": "openai",
            "model": "gpt-4o",
            "input_tokens": 1200,
            "cache_read_tokens": 1000,
            "output_tokens": 50,
            "cost_usd": "0.000123456789",  # text: parse_event reads it as an exact Decimal
            "latency_ms": 812.5,
            "project": "search",
            "metadata": {"ticket": "T-1"},
            "team": "core",
        },
    )
    # Empty cells are absent fields; numbers with spaces or ".0" are whole numbers.
    assert records[1] == (
        1,
        {
            "request_id": "r2",
            "timestamp": "2025-01-01T00:00:00Z",
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "input_tokens": 7,
            "output_tokens": 3,
        },
    )
    first = parse_event(to_canonical(records[0][1]), now=NOW)
    assert (first.cost_nanousd, first.metadata) == (123_457, {"team": "core", "ticket": "T-1"})


def test_csv_bad_row_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(
        CSV_HEADER
        + "r1,,openai,gpt-4o,10,,1,,,,,\n"
        + "r2,,openai,gpt-4o,ten,,1,,,,,\n"
        + "r3,,openai,gpt-4o,1.5,,1,,,,,\n"
        + "r4,,openai,gpt-4o,10,,1,,fast,,,\n"
        + "r5,,openai,gpt-4o,10,,1,,,,[1],\n"
        + "r6,,openai,gpt-4o,10,,1,,,,,,extra\n"
        + "r7,,openai,gpt-4o,10,,1,,,,,\n"
    )
    records = read(path, "csv")
    assert [record["request_id"] for record in good(records).values()] == ["r1", "r7"]
    failures = {index: (error.field, str(error)) for index, error in errors(records).items()}
    # Data row N is on line N + 1 (after the header): each message names the line.
    assert failures[1] == ("input_tokens", "line 3: input_tokens: is not a number: 'ten'")
    assert failures[2] == ("input_tokens", "line 4: input_tokens: must be a whole number, got '1.5'")
    assert failures[3] == ("latency_ms", "line 5: latency_ms: is not a number: 'fast'")
    assert failures[4][0] == "metadata" and failures[4][1].startswith("line 6: metadata: ")
    assert failures[5][1].startswith("line 7: ") and "more cells than the header" in failures[5][1]


def test_llmcost_ingest_names_the_file_line_where_a_rejected_csv_record_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/events.md: record N is data row N of a CSV file, and the message gives its file line too. It did
    not (`record 4: cost_usd: is not a number: '$0.10'`), and quoted cells spanning lines (a JSON metadata
    cell written over several lines) put row N far from line N + 1."""
    from llmcost.cli import main

    path = tmp_path / "calls.csv"
    path.write_text(
        "request_id,provider,model,input_tokens,output_tokens,cost_usd,metadata\n"  # line 1
        'r1,openai,gpt-4o,10,5,,"{""note"":\n""two lines""}"\n'  # lines 2-3
        "r2,openai,gpt-4o,ten,5,,\n"  # line 4: rejected while reading the file
        'r3,openai,gpt-4o,10,5,,"{""a"":\n1,\n""b"":2}"\n'  # lines 5-7
        "r4,openai,gpt-4o,10,5,$0.10,\n"  # line 8: rejected by validation
        "\n"  # line 9: blank, skipped
        'r5,openai,gpt-4o,10,5,,"[1,\n2]"\n'  # lines 10-11: the record starts on line 10
        "r6,,gpt-4o,10,5,,\n"  # line 12
    )
    assert main(["ingest", "--db", f"sqlite:///{tmp_path / 'llmcost.db'}", str(path)]) == 1
    out = capsys.readouterr().out
    assert "2 accepted, 0 duplicates, 4 rejected" in out
    rejected = [line.strip() for line in out.splitlines() if line.strip().startswith("record ")]
    assert rejected == [
        "record 2: line 4: input_tokens: is not a number: 'ten'",
        "record 4: line 8: cost_usd: is not a number: '$0.10'",
        "record 5: line 10: metadata: must be a JSON object, got array",
        "record 6: line 12: provider: is required",
    ]


def test_llmcost_ingest_rejects_a_csv_record_the_csv_module_cannot_read_and_reads_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cell over the csv module's field size limit made it raise, and that error stopped the whole
    file (a traceback, nothing after it stored). Such a record is rejected alone, naming its line and why;
    a quoted cell spanning lines is skipped to its end, not read on from its middle as records. (The
    reader's bound is lowered from its 64 MiB so the test need not write cells that large.)"""
    from llmcost.cli import main

    monkeypatch.setattr("exporter.readers.csv_lines.MAX_CSV_CELL_CHARS", 1000)
    huge = "x" * 1001
    path = tmp_path / "calls.csv"
    path.write_text(
        "request_id,provider,model,input_tokens,output_tokens,metadata\n"  # line 1
        "r1,openai,gpt-4o,10,5,\n"  # line 2
        f"r2,openai,gpt-4o,10,5,{huge}\n"  # line 3: over the limit, unquoted
        "r3,openai,gpt-4o,10,5,\n"  # line 4
        # lines 5-8: over the limit in a quoted cell of several lines, holding quotes and commas; read on
        # from line 6, the closing quote on line 8 would open a cell swallowing r5 and r6
        f'r4,openai,gpt-4o,10,5,"{huge}\n,""a"",\nr9,openai,gpt-4o,1,1,\n"\n'
        "r5,openai,gpt-4o,10,5,\n"  # line 9
        "r6,openai,gpt-4o\0,10,5,\n"  # line 10: a NUL byte, rejected by validation
        "r7,openai,gpt-4o,ten,5,\n"  # line 11: the lines after a skipped record are still numbered right
        "r8,openai,gpt-4o,10,5,\n"  # line 12
    )
    assert main(["ingest", "--db", f"sqlite:///{tmp_path / 'llmcost.db'}", str(path)]) == 1
    out = capsys.readouterr().out
    assert "4 accepted, 0 duplicates, 4 rejected" in out  # r1, r3, r5, r8 (r9 is text in r4's cell)
    rejected = [line.strip() for line in out.splitlines() if line.strip().startswith("record ")]
    limit = "field larger than field limit (1000)"
    assert rejected == [
        f"record 2: line 3: cannot be read as CSV ({limit})",
        f"record 4: line 5: cannot be read as CSV ({limit})",
        "record 6: line 10: model: contains control characters",
        "record 7: line 11: input_tokens: is not a number: 'ten'",
    ]


def test_csv_quotes_never_closed_reject_their_rows_alone(tmp_path: Path) -> None:
    """Each quote that never closes rejects its own row (the header's, the whole file); a quoted cell
    over several lines that closes as CSV allows is one row, as a quote inside one line's cell is."""
    path = tmp_path / "calls.csv"
    head = "request_id,provider,model,input_tokens,output_tokens,metadata\n"
    path.write_text(
        head
        + 'r1,openai,"gpt-4o,1,1,\n'  # line 2: runs into line 3, closed by the quote opening r2's cell
        + 'r2,openai,gpt-4o,1,1,"{""a"":\n1}"\n'  # lines 3-4
        + 'r3,"openai,gpt-4o,1,1,\n'  # line 5: the same, into r4's cell
        + 'r4,openai,gpt-4o,1,1,"{""b"":\n2}"\n'  # lines 6-7
        + 'r5,openai,gpt"4o,1,1,\n'  # line 8: a quote inside an unquoted cell is a character of it
    )
    records = read(path, "csv")
    assert {r["request_id"]: r["model"] for r in good(records).values()} == {
        "r2": "gpt-4o",
        "r4": "gpt-4o",
        "r5": 'gpt"4o',
    }
    assert [(e.field, e.where) for e in errors(records).values()] == [("model", "line 2"), ("provider", "line 5")]
    assert "ran over the next 1 line, to line 3;" in errors(records)[0].reason
    assert "ran over the next 1 line, to line 6;" in errors(records)[2].reason
    path.write_text(head + 'r1,openai,"gpt-4o,1,1,\nr2,openai,gpt-4o,1,1,\n')
    assert "to line 3 (the end of the file);" in errors(read(path, "csv"))[0].reason

    path.write_text('request_id,"provider,model\nr1,openai,gpt-4o\n')
    [(index, header)] = read(path, "csv")
    assert index == 0 and str(header).startswith("line 1: the header row: the quote opening cell 2 on this line")


def test_csv_header_the_csv_module_cannot_read_is_one_rejection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("exporter.readers.csv_lines.MAX_CSV_CELL_CHARS", 1000)
    path = tmp_path / "calls.csv"
    path.write_text("\n" + "x" * 1001 + ",model\nr1,gpt-4o\n")
    records = read(path)
    assert [index for index, _ in records] == [0]
    assert str(records[0][1]).startswith("line 2: the header row cannot be read as CSV (field larger than")


# --- LiteLLM --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["litellm_standard_logging.jsonl", "litellm_spend_logs.json"])
def test_litellm_files(name: str) -> None:
    records = read(DATA / name, "litellm")
    assert records == read(DATA / name)  # auto-detected
    assert all(not isinstance(record, InvalidEvent) for _, record in records)
    events = [parse_event(to_canonical(record), now=NOW) for _, record in records]
    assert all(event.request_id.startswith("chatcmpl-") for event in events)
    assert all(event.cost_nanousd is not None for event in events)


def test_litellm_bad_line(tmp_path: Path) -> None:
    rows = [orjson.loads(line) for line in (DATA / "litellm_standard_logging.jsonl").read_bytes().splitlines()]
    path = write_lines(tmp_path / "litellm.jsonl", [rows[0], b"not json", rows[1]])
    records = read(path, "litellm")
    assert list(good(records)) == [0, 2]
    assert list(errors(records)) == [1]


def spend_logs_csv(path: Path) -> Path:
    """`litellm_spend_logs.json` as PostgreSQL's `\\copy "LiteLLM_SpendLogs" TO … CSV HEADER` writes it."""
    return write_spend_logs_csv(path, orjson.loads((DATA / "litellm_spend_logs.json").read_bytes()))


def write_spend_logs_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Spend-log `rows` written as PostgreSQL's `\\copy … CSV HEADER` writes them (JSON cells as JSON text)."""
    columns = list(rows[0])
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            cells = [row.get(c) for c in columns]
            writer.writerow(
                ["" if v is None else orjson.dumps(v).decode() if isinstance(v, dict | list) else v for v in cells]
            )
    return path


@pytest.mark.parametrize("fmt", ["litellm", "auto"])
def test_litellm_spend_logs_exported_as_csv_read_as_the_json_rows(tmp_path: Path, fmt: str) -> None:
    # docs/sending-data.md: `llmcost ingest --format litellm spend_logs.csv`. That read the CSV as JSON
    # lines (every row "not valid JSON"); the default format read it as CSV but left the token columns as
    # text (every row "prompt_tokens: must be a non-negative integer, got str").
    from_csv = read(spend_logs_csv(tmp_path / "spend_logs.csv"), fmt)
    assert not errors(from_csv), plain(from_csv)
    from_json = read(DATA / "litellm_spend_logs.json", "litellm")
    assert len(from_csv) == len(from_json) == 2
    for (_, csv_row), (_, json_row) in zip(from_csv, from_json, strict=True):
        a, b = parse_event(to_canonical(csv_row), now=NOW), parse_event(to_canonical(json_row), now=NOW)
        assert (a.request_id, a.provider, a.model, a.timestamp) == (b.request_id, b.provider, b.model, b.timestamp)
        assert (a.input_tokens, a.cache_read_tokens, a.output_tokens) == (
            b.input_tokens,
            b.cache_read_tokens,
            b.output_tokens,
        )
        assert (a.cost_nanousd, a.latency_ms, a.project, a.user, a.status) == (
            b.cost_nanousd,
            b.latency_ms,
            b.project,
            b.user,
            b.status,
        )


def test_llmcost_ingest_loads_litellm_spend_logs_exported_as_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmcost.cli import main

    path = spend_logs_csv(tmp_path / "spend_logs.csv")
    assert main(["ingest", "--db", f"sqlite:///{tmp_path / 'llmcost.db'}", "--format", "litellm", str(path)]) == 0
    assert "2 accepted, 0 duplicates, 0 rejected" in capsys.readouterr().out


def test_llmcost_ingest_keeps_the_usage_of_a_spend_log_row_with_a_300_kib_prompt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # LiteLLM_SpendLogs keeps the whole prompt in `messages`. A 300 KiB cell is past Python's 128 KiB
    # CSV limit: `llmcost ingest` stopped with "_csv.Error: field larger than field limit (131072)",
    # the row's usage (and every row after it) lost.
    import sqlite3

    from llmcost.cli import main

    rows = orjson.loads((DATA / "litellm_spend_logs.json").read_bytes())
    prompt = "PROMPT-TEXT " + "lorem ipsum " * (300 * 1024 // 12)
    rows[0]["messages"] = [{"role": "user", "content": prompt}]
    rows[0]["proxy_server_request"] = {"model": "gpt-4o-mini", "messages": rows[0]["messages"]}
    path = write_spend_logs_csv(tmp_path / "spend_logs.csv", rows)
    assert len(prompt) > 300 * 1024 > csv.field_size_limit()

    db = tmp_path / "llmcost.db"
    assert main(["ingest", "--db", f"sqlite:///{db}", "--format", "litellm", str(path)]) == 0
    assert "2 accepted, 0 duplicates, 0 rejected" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT request_id, input_tokens, cache_read_tokens, output_tokens FROM usage_events")
        assert sorted(stored) == [("chatcmpl-1a2b3c", 176, 1024, 100), ("chatcmpl-4d5e6f", 5000, 0, 12)]
    assert b"PROMPT-TEXT" not in db.read_bytes()  # the usage is kept, the prompt is not
    assert csv.field_size_limit() == 128 * 1024  # raised for the reading only


def test_a_csv_cell_past_the_reader_s_bound_rejects_its_row_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bound stays (a quote never closed must not read the rest of the file into one cell): a row
    # past it is rejected with the reason, and the rows after it are read.
    monkeypatch.setattr("exporter.readers.csv_lines.MAX_CSV_CELL_CHARS", 1000)
    path = tmp_path / "calls.csv"
    path.write_text(
        "request_id,provider,model,input_tokens,output_tokens\n"
        f'r1,openai,gpt-4o,1,1\nr2,openai,"{"x" * 2000}",1,1\nr3,openai,gpt-4o,3,1\n'
    )
    records = read(path, "csv")
    assert [r["request_id"] for r in good(records).values()] == ["r1", "r3"]
    assert "field larger than field limit (1000)" in next(iter(errors(records).values())).reason


def otlp_export(resource: dict[str, str], span_attributes: dict[str, str] | None = None) -> dict[str, Any]:
    """One GenAI span in an OTLP/JSON export, as an exporter writes it to a file."""
    string = lambda k, v: {"key": k, "value": {"stringValue": v}}  # noqa: E731
    usage = [
        string("gen_ai.provider.name", "openai"),
        string("gen_ai.request.model", "gpt-4o"),
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1200"}},
        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "80"}},
    ]
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b199",
        "name": "chat gpt-4o",
        "startTimeUnixNano": "1764842400000000000",
        "endTimeUnixNano": "1764842401200000000",
        "attributes": usage + [string(k, v) for k, v in (span_attributes or {}).items()],
    }
    resource_attributes = [string(k, v) for k, v in resource.items()]
    return {"resourceSpans": [{"resource": {"attributes": resource_attributes}, "scopeSpans": [{"spans": [span]}]}]}


@pytest.mark.parametrize(
    ("rule", "resource", "span", "expected"),
    [
        (OtlpConfig(), {"service.name": "chatbot", "llmcost.project": "search"}, {}, ("search", "chatbot")),
        (OtlpConfig(), {"service.name": "chatbot"}, {"llmcost.project": "ads", "service.name": "x"}, ("ads", "x")),
        (
            OtlpConfig(project_attributes=["llmcost.project", "service.namespace"]),
            {"service.name": "chatbot", "service.namespace": "shop"},
            {},
            ("shop", "chatbot"),
        ),
    ],
)
def test_an_otlp_export_file_is_attributed_as_the_receiver_attributes_it(
    tmp_path: Path, rule: OtlpConfig, resource: dict[str, str], span: dict[str, str], expected: tuple[str, str]
) -> None:
    # `llmcost ingest export.json` left `project` empty where `POST /v1/traces` of the same export read it
    # from `llmcost.project` (docs/sending-data.md, "Service and project"): a backfill lost its projects.
    export = otlp_export(resource, span)
    path = tmp_path / "export.json"
    path.write_bytes(orjson.dumps(export))
    [(_, record)] = read_with(path, rule)
    from_file = parse_event(to_canonical(record), now=NOW)
    [(_, received)] = span_records(parse_json(orjson.dumps(export)), rule).records
    from_receiver = parse_event(to_canonical(received), now=NOW)
    assert (from_file.project, from_file.service) == (from_receiver.project, from_receiver.service) == expected


def read_with(path: Path, rule: OtlpConfig) -> list[tuple[int, Any]]:
    return list(iter_file_records(path, "otel", otlp=rule))


def test_llmcost_ingest_attributes_an_otlp_export_by_the_config_s_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmcost.cli import main

    path = tmp_path / "export.json"
    path.write_bytes(orjson.dumps(otlp_export({"service.name": "chatbot", "service.namespace": "shop"})))
    config = tmp_path / "llmcost.yml"
    config.write_text("otlp: {project_attributes: [llmcost.project, service.namespace]}\n")
    db = f"sqlite:///{tmp_path / 'llmcost.db'}"
    assert main(["ingest", "--config", str(config), "--db", db, str(path)]) == 0
    capsys.readouterr()
    assert main(["report", "--db", db, "--by", "project,service", "--format", "json", "--no-hints"]) == 0
    [row] = orjson.loads(capsys.readouterr().out)["rows"]
    assert (row["project"], row["service"]) == ("shop", "chatbot")


def test_llmcost_ingest_counts_the_spans_the_receiver_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backfill of an export counts what `POST /v1/traces` counted: a span of OpenLLMetry's first `llm.*` names is a
    call, a model span without token counts (a stream without `include_usage`) is skipped, not a 0-token call, and a
    failed model call (no usage to report) is an error with 0 tokens."""
    from llmcost.cli import main

    export = otlp_export({"service.name": "chatbot"})
    [span] = export["resourceSpans"][0]["scopeSpans"][0]["spans"]
    legacy = {
        "llm.vendor": {"stringValue": "OpenAI"},
        "llm.request.model": {"stringValue": "gpt-4o"},
        "llm.usage.prompt_tokens": {"intValue": "300"},
        "llm.usage.completion_tokens": {"intValue": "20"},
    }
    no_usage = {"gen_ai.provider.name": {"stringValue": "openai"}, "gen_ai.request.model": {"stringValue": "gpt-4o"}}
    export["resourceSpans"][0]["scopeSpans"][0]["spans"] += [
        {**span, "spanId": span_id, "attributes": [{"key": k, "value": v} for k, v in attributes.items()], **status}
        for span_id, attributes, status in (
            ("00000000000000a1", legacy, {}),
            ("00000000000000a2", no_usage, {}),
            ("00000000000000a3", no_usage, {"status": {"code": 2, "message": "throttled"}}),
        )
    ]
    received = span_records(parse_json(orjson.dumps(export)), OtlpConfig())
    assert ([index for index, _ in received.records], received.skipped) == ([0, 1, 3], 1)

    path = tmp_path / "export.json"
    path.write_bytes(orjson.dumps(export))
    db = f"sqlite:///{tmp_path / 'llmcost.db'}"
    assert main(["ingest", "--db", db, str(path)]) == 0
    capsys.readouterr()
    assert main(["report", "--db", db, "--by", "model", "--format", "json", "--no-hints"]) == 0
    [row] = orjson.loads(capsys.readouterr().out)["rows"]
    assert (row["requests"], row["input_tokens"], row["output_tokens"]) == (3, 1500, 100)


# --- recorded provider responses ------------------------------------------------------------------


def test_openai_usage_records(tmp_path: Path) -> None:
    lines = RECORDED.read_bytes().splitlines()
    path = write_lines(
        tmp_path / "usage.jsonl",
        [
            lines[0],  # Anthropic
            lines[155],  # Bedrock Converse: the model only in the URI
            b"{broken",
            {"host": "api.openai.com", "request_model": "gpt-4o", "response_model": None, "object": "x"},
            {"host": "api.openai.com", "request_model": "gpt-4o", "status": 500, "usage": {"prompt_tokens": 3}},
        ],
    )
    records = read(path, "openai-usage")
    assert plain(read(path)) == plain(records)  # auto-detected
    anthropic, bedrock = good(records)[0], good(records)[1]
    assert (anthropic["provider"], anthropic["model"]) == ("anthropic", "claude-sonnet-4-5-20250929")
    assert anthropic["request_id"].startswith("rec-")
    assert anthropic["metadata"]["source"].startswith("pydantic/pydantic-ai@")
    assert (bedrock["provider"], bedrock["model"]) == ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert good(records)[4]["status"] == "error"
    assert isinstance(errors(records)[2], InvalidEvent)
    assert errors(records)[3].field == "usage"
    # The request id comes from the source: replaying the file gives the same ids.
    assert plain(read(path)) == plain(records)


def test_openai_usage_merges_an_anthropic_stream() -> None:
    records = dict(read(RECORDED, "openai-usage"))
    assert 174 not in records  # the message_delta, merged into its message_start
    merged = records[173]
    assert isinstance(merged, dict)
    assert (merged["usage"]["input_tokens"], merged["usage"]["output_tokens"]) == (2411, 145)
    assert merged["model"] == "claude-sonnet-5"


def test_openai_usage_whole_recorded_file_is_auto_detected() -> None:
    records = read(RECORDED)
    assert len(records) == 711
    assert not errors(records)


# --- OpenTelemetry --------------------------------------------------------------------------------


def test_otlp_export_document() -> None:
    records = read(DATA / "otel_export.json", "otel")
    assert read(DATA / "otel_export.json") == records  # auto-detected
    # Span 2 is an HTTP span and span 3 an agent span adding up span 1: neither is a model call. Both calls
    # are record 0, the file's one document; each says which span of it it is.
    assert [(index, record.where) for index, record in records] == [
        (0, "span 1 of this export (span id eee19b7ec3c1b174)"),
        (0, "span 4 of this export (span id eee19b7ec3c1b176)"),
    ]
    events = [parse_event(to_canonical(record), now=NOW) for _, record in records]
    assert [(e.provider, e.model, e.service, e.status) for e in events] == [
        ("openai", "gpt-4o-2024-08-06", "checkout-api", "success"),
        ("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", "checkout-api", "error"),
    ]
    assert (events[0].input_tokens, events[0].cache_read_tokens, events[0].output_tokens) == (325, 1024, 10)


def test_otlp_jsonl_with_a_bad_line(tmp_path: Path) -> None:
    # The collector's file exporter writes one export request per line.
    doc = orjson.loads((DATA / "otel_export.json").read_bytes())
    path = write_lines(tmp_path / "traces.jsonl", [doc, b"{oops", {"resourceSpans": [{"scopeSpans": "bad"}]}, doc])
    records = read(path)
    # Numbered by line, as every JSON-lines file is: before, by span across the file ([0, 3, 4, 5, 6, 9]), so
    # `llmcost ingest` said "record 6: … line 3" of a four-line file.
    assert [index for index, _ in records] == [0, 0, 1, 2, 3, 3]
    assert list(errors(records)) == [1, 2]
    assert "line 3" in str(errors(records)[2])


def test_llmcost_ingest_names_the_line_and_span_of_a_rejected_span(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Collector's file export: one export per line, several spans each. A rejected span is found by its
    line (`record N`, as for any JSON-lines file) and its place and id in that line's export."""
    from llmcost.cli import main

    doc = orjson.loads((DATA / "otel_export.json").read_bytes())
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    no_model = {
        **spans[0],
        "spanId": "0000000000000bad",
        "attributes": [a for a in spans[0]["attributes"] if not a["key"].endswith("model")],
    }
    second = {"resourceSpans": [{"scopeSpans": [{"spans": [spans[1], no_model]}]}]}
    path = write_lines(tmp_path / "traces.jsonl", [doc, second])
    assert main(["ingest", "--db", f"sqlite:///{tmp_path / 'llmcost.db'}", str(path)]) == 1
    out = capsys.readouterr().out
    assert "2 accepted, 0 duplicates, 1 rejected" in out
    assert "  record 2: span 2 of this export (span id 0000000000000bad): model: is required\n" in out


def test_jsonl_of_span_attribute_dicts(tmp_path: Path) -> None:
    spans = [
        {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 5},
        {"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude", "gen_ai.usage.output_tokens": 2},
    ]
    path = write_lines(tmp_path / "spans.jsonl", [spans[0], b"nope", spans[1]])
    records = read(path)
    assert plain(read(path, "otel")) == plain(records)
    assert good(records) == {0: spans[0], 2: spans[1]}
    assert [parse_event(to_canonical(r), now=NOW).provider for r in good(records).values()] == ["openai", "anthropic"]


# --- auto-detection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "fmt"),
    [
        ({"resourceSpans": []}, "otel"),
        ({"host": "api.openai.com", "request_model": "gpt-4o", "usage": {}}, "openai-usage"),
        ({"request_id": "x", "spend": 0.1, "call_type": "acompletion"}, "litellm"),
        ({"id": "x", "response_cost": 0.1}, "litellm"),
        ({"gen_ai.system": "openai"}, "otel"),
        ({"attributes": []}, "otel"),
        ({"provider": "openai", "model": "m"}, "jsonl"),
        ({"provider": "openai", "model": "m", "usage": {}}, "jsonl"),
    ],
)
def test_detect_format(record: dict[str, Any], fmt: str) -> None:
    assert detect_format(record) == fmt


def test_auto_uses_the_csv_extension_and_skips_leading_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "CALLS.CSV"
    path.write_text("provider,model,input_tokens\nopenai,gpt-4o,3\n")
    assert read(path) == [(0, {"provider": "openai", "model": "gpt-4o", "input_tokens": 3})]
    lines = RECORDED.read_bytes().splitlines()
    usage = write_lines(tmp_path / "usage.jsonl", [b"garbage", lines[0]])
    records = read(usage)
    assert isinstance(records[0][1], InvalidEvent)
    assert records[1][1]["provider"] == "anthropic"  # detected from the first readable record


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert read(path) == []


def test_csv_columns_of_the_optional_counts_are_read_as_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # docs/events.md: web_search_requests and the audio, image and video parts are canonical fields, so a
    # CSV may have their columns; their cells were passed on as text and every such row was rejected.
    from llmcost.cli import main

    path = tmp_path / "calls.csv"
    path.write_text(
        "request_id,timestamp,provider,model,input_tokens,output_tokens,web_search_requests,input_audio_tokens\n"
        "r1,1764842400,anthropic,claude-sonnet-4-5,1000,100,5,\n"
        "r2,1764842400,openai,gpt-4o-audio-preview,1000,100,,400\n",
        encoding="utf-8",
    )
    lines = tmp_path / "calls.jsonl"
    lines.write_bytes(
        b"\n".join(orjson.dumps({k: v for k, v in row.items() if v is not None}) for _, row in read(path))
    )
    from_csv = [parse_event(to_canonical(row), now=NOW) for _, row in read(path)]
    from_jsonl = [parse_event(to_canonical(row), now=NOW) for _, row in read(lines)]
    assert [(e.web_search_requests, e.input_audio_tokens) for e in from_csv] == [(5, 0), (0, 400)]
    assert from_csv == from_jsonl
    assert main(["ingest", "--db", f"sqlite:///{tmp_path / 'llmcost.db'}", str(path)]) == 0
    assert "2 accepted, 0 duplicates, 0 rejected" in capsys.readouterr().out


def test_csv_citation_tokens_column_is_read_as_a_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # docs/events.md lists citation_tokens as an optional canonical field, like web_search_requests: a CSV may
    # have its column. Its cells were passed on as text, and every such row was rejected ("must be a
    # non-negative integer, got str").
    from llmcost.cli import main

    path = tmp_path / "calls.csv"
    path.write_text(
        "request_id,timestamp,provider,model,input_tokens,output_tokens,reasoning_tokens,citation_tokens\n"
        "r1,1764842400,perplexity,sonar-deep-research,1000,300,100,150\n",
        encoding="utf-8",
    )
    [event] = [parse_event(to_canonical(row), now=NOW) for _, row in read(path)]
    assert event.citation_tokens == 150
    assert main(["ingest", "--db", f"sqlite:///{tmp_path / 'llmcost.db'}", str(path)]) == 0
    assert "1 accepted, 0 duplicates, 0 rejected" in capsys.readouterr().out


def test_llmcost_ingest_of_one_record_says_one_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A first try with a one-line file printed `1 records in 0.00 s`."""
    from llmcost.cli import main

    path = tmp_path / "one.jsonl"
    path.write_text('{"request_id": "one", "provider": "openai", "model": "gpt-4o", "input_tokens": 5}\n')
    assert main(["ingest", "--db", f"sqlite:///{tmp_path / 'llmcost.db'}", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 accepted, 0 duplicates, 0 rejected" in out and "  1 record in " in out, out
