"""The command line as a user meets it: refused arguments and missing stores give one line and an exit
status, never a traceback, and a refused command leaves nothing behind (in-process, through `main`)."""

from __future__ import annotations

import os
import pwd
import socket
import time
from pathlib import Path

import orjson
import pytest

from llmcost.cli import main

EVENT = {"provider": "openai", "model": "gpt-4o", "input_tokens": 100, "output_tokens": 10}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `llmcost ARGV` (an argparse refusal is exit status 2 too)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def events_file(tmp_path: Path, name: str = "calls.jsonl", count: int = 2) -> Path:
    path = tmp_path / name
    now = time.time()
    lines = [
        orjson.dumps({**EVENT, "timestamp": now - 600 * (i + 1), "request_id": f"{name}-{i}"}) for i in range(count)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture
def store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A store holding two calls."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert main(["ingest", "--db", url, str(events_file(tmp_path))]) == 0
    capsys.readouterr()
    return url


@pytest.mark.parametrize(
    "argv",
    [
        ["prune", "--dry-run"],
        ["prune", "--vacuum", "--dry-run"],
        ["prune"],
        ["reprice", "--since", "7d", "--dry-run"],
    ],
)
def test_maintenance_commands_refuse_a_store_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    config = tmp_path / "ret.yml"
    config.write_text("retention: {events_days: 30, rollups_days: 60}\n")
    missing = tmp_path / "nx.db"
    code, _out, err = run(capsys, *argv, "--config", str(config), "--db", f"sqlite:///{missing}")
    assert code == 3
    assert f"no store at sqlite:///{missing}" in err
    assert list(tmp_path.iterdir()) == [config]  # no store created, not even a lock file


def test_prune_dry_run_reads_only(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "ret.yml"
    config.write_text("retention: {events_days: 30, rollups_days: 60}\n")
    db = Path(store.removeprefix("sqlite:///"))
    before = db.read_bytes()
    code, out, _err = run(capsys, "prune", "--dry-run", "--config", str(config), "--db", store)
    assert code == 0
    assert "would delete 0" in out
    assert "(0 hours)" in out and "(1 hours)" not in out
    assert "unchanged: a dry run changes nothing" in out and "->" not in out
    assert db.read_bytes() == before


def test_reprice_dry_run_reads_only(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = Path(store.removeprefix("sqlite:///"))
    before = db.read_bytes()
    code, out, _err = run(capsys, "reprice", "--since", "7d", "--dry-run", "--db", store)
    assert code == 0
    assert "would change 0 events" in out
    assert db.read_bytes() == before


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["report", "--db", "garbage"], "--db: is not a database URL"),
        (["budgets", "--db", "garbage"], "--db: is not a database URL"),
        (["alerts", "--db", "garbage"], "--db: is not a database URL"),
        (
            ["report", "--db", "mysql://u:p@localhost/x"],
            "unsupported database backend 'mysql' (supported: sqlite, postgresql",
        ),
        # A misspelt libpq option: serve died with psycopg's ProgrammingError traceback, report said the
        # database "holds no llmcost store".
        (
            ["serve", "--db", "postgresql://u:p@127.0.0.1:1/x?sslmod=require"],
            "--db: unknown connection option 'sslmod' in the URL's query",
        ),
        (
            ["report", "--db", "postgresql://u:p@127.0.0.1:1/x?sslmode=require&conect_timeout=3"],
            "--db: unknown connection option 'conect_timeout' in the URL's query",
        ),
        (["serve", "--listen", "127.0.0.1:99999"], "--listen: port must be 1-65535, got 99999"),
        (["serve", "--listen", "nowhere"], "--listen: must be HOST:PORT"),
        (["--log-level", "bogus", "report"], "--log-level: unknown log level 'bogus' (choose from DEBUG, INFO"),
        # After the command, beside its other options (it was "unrecognized arguments: --log-level bogus").
        (["serve", "--log-level", "bogus"], "--log-level: unknown log level 'bogus' (choose from DEBUG, INFO"),
    ],
)
def test_unusable_arguments_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], said: str
) -> None:
    monkeypatch.chdir(tmp_path)  # the default store would be ./llmcost.db: it must not appear
    code, _out, err = run(capsys, *argv)
    assert code == 2
    assert said in err
    assert "u:p" not in err  # a URL's password is never echoed
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["before", "after"])
def test_log_level_is_taken_before_or_after_the_command(
    store: str, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    # docs/configuration.md lists --log-level with serve's options: `llmcost report --log-level WARNING`
    # was refused with "unrecognized arguments"; only `llmcost --log-level WARNING report` worked.
    argv = ["report", "--db", store, "--format", "json"]
    code, out, err = run(
        capsys, *(["--log-level", "WARNING", *argv] if where == "before" else [*argv, "--log-level", "WARNING"])
    )
    assert (code, err.splitlines()[-1:]) == (0, [f"store: {store}"])
    assert orjson.loads(out)["total"]["requests"] == 2


def test_ingest_of_history_past_the_retention_says_how_to_load_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A backfill of last year's file under a config with retention.events_days: each old record was refused
    # with why, and nothing said how to load such history (docs/retention.md: without retention, then prune).
    config = tmp_path / "llmcost.yml"
    config.write_text(f"database: {{url: sqlite:///{tmp_path / 'x.db'}}}\nretention: {{events_days: 30}}\n")
    old = tmp_path / "last-year.jsonl"
    rows = [{**EVENT, "request_id": f"old-{i}", "timestamp": time.time() - 400 * 86_400} for i in range(2)]
    old.write_bytes(b"\n".join(map(orjson.dumps, rows)) + b"\n")
    code, out, _err = run(capsys, "ingest", "--config", str(config), str(old))
    assert code == 1
    assert out.splitlines()[-1] == (
        "2 records are older than retention.events_days: to load history that old, ingest it with a config "
        "without retention: (or with a larger events_days), then run llmcost prune (docs/retention.md)"
    )
    code, out, _err = run(capsys, "ingest", "--db", f"sqlite:///{tmp_path / 'x.db'}", str(old))
    assert code == 0 and "older than" not in out


@pytest.mark.parametrize("user", [None, ""])
def test_a_change_from_a_shell_without_user_is_recorded_as_its_account(
    store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, user: str | None
) -> None:
    # budgets.md: --by defaults to $USER. A shell without it (su, docker exec, cron) recorded every change as
    # by "cli"; `llmcost alerts ack` from a shell whose $USER was empty, as by "".
    monkeypatch.delenv("LOGNAME", raising=False)
    if user is None:
        monkeypatch.delenv("USER", raising=False)
    else:
        monkeypatch.setenv("USER", user)
    code, out, _err = run(capsys, "budgets", "create", "g", "--period", "daily", "--limit", "5", "--db", store)
    assert code == 0
    assert out.splitlines()[0] == f"budget g created (origin cli, by {pwd.getpwuid(os.getuid()).pw_name})"


def test_ingest_with_an_unusable_db_url_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calls = events_file(tmp_path)
    code, _out, err = run(capsys, "ingest", "--db", "garbage", str(calls))
    assert code == 2 and "--db: is not a database URL" in err
    assert list(tmp_path.iterdir()) == [calls]


def test_environment_variables_are_named_in_their_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMCOST_LOG_LEVEL", "verbose")
    code, _out, err = run(capsys, "report", "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and "LLMCOST_LOG_LEVEL: unknown log level 'verbose'" in err
    monkeypatch.delenv("LLMCOST_LOG_LEVEL")
    monkeypatch.setenv("LLMCOST_DB_URL", "garbage")
    code, _out, err = run(capsys, "report")
    assert code == 2 and "LLMCOST_DB_URL: is not a database URL" in err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["report", "--by", ","], "--by: no dimension given"),
        (["report", "--top", "-1"], "argument --top: must be 1 or more, got -1"),
        (["report", "--top", "0"], "argument --top: must be 1 or more, got 0"),
        (["report", "--since", "2026-01-02", "--until", "2026-01-01"], "must be before --until"),
        (["reprice", "--since", "2026-01-02", "--until", "2026-01-01"], "must be before --until"),
        # The flag a value belongs to is named (the line began "not a date, time or age: ..." alone).
        (["report", "--since", "2026-13-01"], "--since: not a date, time or age: '2026-13-01'"),
        (["report", "--until", "yesterdayy"], "--until: not a date, time or age: 'yesterdayy'"),
        (["reprice", "--since", "last week", "--dry-run"], "--since: not a date, time or age: 'last week'"),
        (["reprice", "--since", "7d", "--until", "noon"], "--until: not a date, time or age: 'noon'"),
    ],
)
def test_meaningless_report_arguments_are_refused(
    store: str, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    code, _out, err = run(capsys, *argv, "--db", store)
    assert code == 2
    assert said in err


def test_ingest_refuses_negative_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calls = events_file(tmp_path)
    code, _out, err = run(capsys, "ingest", "--workers", "-2", "--db", f"sqlite:///{tmp_path / 'w.db'}", str(calls))
    assert code == 2 and "argument --workers: must be 0 or more, got -2" in err
    assert not (tmp_path / "w.db").exists()


def test_serve_refuses_a_worker_count_below_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _out, err = run(capsys, "serve", "--workers", "-3", "--listen", "127.0.0.1:1")
    assert code == 2 and "argument --workers: must be 1 or more, got -3" in err
    # The environment variable is checked the same way, and only by `serve`: a typo in it used to be a
    # traceback from every command, `budgets list` included.
    monkeypatch.setenv("LLMCOST_WORKERS", "lots")
    code, _out, _err = run(capsys, "budgets", "list", "--db", f"sqlite:///{tmp_path / 'b.db'}")
    assert code in (0, 3)  # answers (or finds no store), never a traceback
    code, _out, err = run(capsys, "serve", "--listen", "127.0.0.1:1")
    assert code == 2 and "LLMCOST_WORKERS: not a whole number: 'lots'" in err
    assert list(tmp_path.iterdir()) == []


def test_serve_on_a_busy_port_fails_before_touching_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to print "serving on", create the store and take the scheduler's lease, then fail."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        listen = f"127.0.0.1:{busy.getsockname()[1]}"
        code, out, err = run(capsys, "serve", "--listen", listen, "--db", f"sqlite:///{tmp_path / 's.db'}")
    assert code == 2
    assert f"cannot listen on {listen}: Address already in use" in err
    assert "serving on" not in out
    assert list(tmp_path.iterdir()) == []


def test_ingest_checks_every_path_before_storing_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, last = events_file(tmp_path, "first.jsonl"), events_file(tmp_path, "last.jsonl")
    folder = tmp_path / "folder"
    folder.mkdir()
    db = tmp_path / "new.db"
    argv = ["ingest", "--db", f"sqlite:///{db}", str(first), str(tmp_path / "missing.jsonl"), str(folder), str(last)]
    code, _out, err = run(capsys, *argv)
    assert code == 2
    assert f"{tmp_path / 'missing.jsonl'}: no such file" in err
    assert f"{folder}: is a directory" in err
    assert not db.exists()  # the first file was not stored before the missing one was found


def test_a_csv_row_that_is_not_utf8_is_rejected_and_the_other_files_are_read(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bin.csv"
    bad.write_bytes(b"provider,model,input_tokens,output_tokens\n\xff,m,1,1\nopenai,gpt-4o,5,5\n")
    more = events_file(tmp_path, "more.jsonl")
    code, out, _err = run(capsys, "ingest", "--db", store, str(bad), str(more))
    assert code == 1  # rejected records
    assert "bin.csv: 1 accepted, 0 duplicates, 1 rejected" in out
    assert "record 1: line 2: not UTF-8 text" in out
    assert "more.jsonl: 2 accepted" in out
    assert "more rejected records" not in out  # the total line does not list rejections it never showed


def test_prune_without_a_retention_section_still_answers_scripts_in_json_and_names_a_missing_store(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without `retention:`, `llmcost prune --format json` printed the sentence "nothing to prune: …" (a
    # script's JSON parse failed), and a mistyped --db was answered "nothing to prune" with status 0.
    code, out, _err = run(capsys, "prune", "--format", "json", "--db", store)
    assert code == 0
    answer = orjson.loads(out)
    assert answer["events"] == 0 and answer["rollup_rows"] == 0 and answer["events_cutoff"] is None
    assert answer["notes"] == ["nothing to prune: no `retention:` section in the config (data is kept for ever)"]
    code, out, _err = run(capsys, "prune", "--db", store)
    assert (code, out) == (0, "nothing to prune: no `retention:` section in the config (data is kept for ever)\n")
    missing = tmp_path / "typo.db"
    code, _out, err = run(capsys, "prune", "--dry-run", "--db", f"sqlite:///{missing}")
    assert code == 3
    assert f"no store at sqlite:///{missing}" in err
    assert not missing.exists()


def test_after_rolling_back_an_upgrade_the_commands_say_the_store_is_newer(
    capsys: pytest.CaptureFixture[str], pg_url: str
) -> None:
    """An operator who rolled llmcost back after a newer version migrated the store was told by `report`
    to "start `llmcost serve` of this version once to upgrade it", which then refused to start."""
    import psycopg

    from alerting.store import open_store

    open_store(pg_url).close()
    with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099_from_a_newer_llmcost'")
    for command in ("report", "ingest"):
        argv = [command, "--db", pg_url, *(["/dev/null"] if command == "ingest" else [])]
        code, _out, err = run(capsys, *argv)
        assert code == 3, err
        assert "a newer llmcost upgraded it; run that version" in err
        assert "to upgrade it" not in err


def test_llmcost_db_url_ending_in_a_newline_opens_the_store_as_database_url_env_does(
    store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Kubernetes Secret made `--from-file` hands its final newline to the variable.

    `database.url_env: LLMCOST_DB_URL` strips it; the same variable read as the command line's fallback
    kept it, and `llmcost report` said there was no store at the URL the server was using.
    """
    monkeypatch.setenv("LLMCOST_DB_URL", store + "\n")
    code, _out, err = run(capsys, "report")
    assert code == 0, err
