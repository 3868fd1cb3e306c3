"""What `check-config` finds in the files a config points at (price overrides, token files) and in the
file itself (not UTF-8, a bad `listen`), and that every other command refuses the same config before it
creates anything (in-process, through `main`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import ConfigError
from llmcost.cli import main
from llmcost.config import load_config
from tests.support.paths import DATA

INVALID_PRICES = DATA / "pricing" / "invalid.yaml"


def check(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str]:
    code = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


def test_check_config_lists_the_problems_of_a_broken_price_overrides_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"pricing: {{overrides_file: {INVALID_PRICES}}}\n")
    code, out = check(capsys, config)
    assert code == 1
    assert "OK" not in out
    assert f"pricing.overrides_file: {INVALID_PRICES}: pricez: unknown top-level key" in out
    assert "prices[6].provider: must be a non-empty string" in out


@pytest.mark.parametrize("command", [["report"], ["ingest", "FILE"], ["serve"], ["prune"], ["budgets"]])
def test_every_command_refuses_a_broken_price_overrides_file_before_creating_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"pricing: {{overrides_file: {INVALID_PRICES}}}\n")
    calls = tmp_path / "calls.jsonl"
    calls.write_text('{"provider": "openai", "model": "gpt-4o", "input_tokens": 1, "output_tokens": 1}\n')
    db = tmp_path / "never.db"
    argv = [str(calls) if arg == "FILE" else arg for arg in command]
    code = main([*argv, "--config", str(config), "--db", f"sqlite:///{db}"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "prices[3].valid_from" in err and "Traceback" not in out + err
    assert not db.exists()


def test_a_config_file_that_is_not_utf8_is_one_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = tmp_path / "binary.yml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    code, out = check(capsys, binary)
    assert code == 1
    assert f"{binary}: not UTF-8 text (byte 0 is 0xff)" in out
    code = main(["serve", "--config", str(binary), "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert code == 2 and "not UTF-8 text" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    ("listen", "said"),
    [
        ("not-a-listen", "listen: must be HOST:PORT (IPv6 as [::1]:9800), got 'not-a-listen'"),
        ("127.0.0.1:99999", "listen: port must be 1-65535, got 99999"),
        ("127.0.0.1:0", "listen: port must be 1-65535, got 0"),
        (":9800", "listen: must be HOST:PORT"),
    ],
)
def test_check_config_reports_an_unusable_listen_address(tmp_path: Path, listen: str, said: str) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f'listen: "{listen}"\n')
    assert [p for p in problems_of(config) if p.startswith(said)] != []


def test_a_listen_address_that_is_fine_passes(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text('listen: "[::1]:9800"\n')
    assert load_config(config).listen == "[::1]:9800"


def test_token_files_hold_one_token_a_line_with_comments_and_blank_lines_skipped(tmp_path: Path) -> None:
    (tmp_path / "tokens").write_text("# ingest tokens, one a line\naaaaaaaaaaaaaaaaaaaa  \n\n  bbbbbbbbbbbbbbbbbbbb\n")
    config = tmp_path / "config.yml"
    config.write_text("auth: {ingest_tokens_file: tokens}\n")
    assert load_config(config).auth.ingest_tokens == ["aaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbb"]


def test_a_blank_token_in_a_list_names_its_entry(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text('auth: {ingest_tokens: ["aaaaaaaaaaaaaaaaaaaa", ""]}\n')
    assert problems_of(config) == ["auth.ingest_tokens: entries [1] are not tokens (each must be a non-empty string)"]


def test_problems_of_secret_files_and_variables_name_the_key_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMCOST_TEST_NO_SUCH_VAR", raising=False)
    config = tmp_path / "config.yml"
    config.write_text("database: {url_env: LLMCOST_TEST_NO_SUCH_VAR}\nauth: {webhook_tokens_file: missing-tokens}\n")
    problems = problems_of(config)
    assert "database.url_env: environment variable LLMCOST_TEST_NO_SUCH_VAR is not set" in problems
    assert any(p.startswith("auth.webhook_tokens_file: cannot read") for p in problems)
    assert not any("url.url_env" in p or "webhook_tokens.webhook_tokens" in p for p in problems)


def test_a_database_url_from_an_empty_variable_or_file_names_that_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A compose file's `LLMCOST_DATABASE_URL=${DATABASE_URL:-}` before DATABASE_URL was exported: the problem
    # was `database.url: is not a database URL …`, as if the URL belonged in the file (the channel secrets'
    # *_env were fixed to name their key; the store's was not).
    monkeypatch.setenv("LLMCOST_TEST_EMPTY_URL", "")
    (tmp_path / "db-url").write_text("\n")
    config = tmp_path / "config.yml"
    config.write_text("database: {url_env: LLMCOST_TEST_EMPTY_URL}\n")
    code, out = check(capsys, config)
    assert code == 1
    assert out.splitlines()[1:] == ["  - database.url_env: environment variable LLMCOST_TEST_EMPTY_URL is empty"]
    config.write_text("database: {url_file: db-url}\n")
    assert problems_of(config) == [f"database.url_file: {tmp_path / 'db-url'} is empty"]


def test_a_database_url_of_an_unsupported_backend_is_a_config_problem(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("database: {url: 'mysql://u:secret@db/x'}\n")
    problems = problems_of(config)
    assert len(problems) == 1 and "unsupported database backend 'mysql'" in problems[0]
    assert "secret" not in problems[0]


def test_check_config_names_a_misspelt_key_of_the_alerting_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A user who wrote `repeat_intervall: 1h` was told "OK" and kept getting reminders every 4 hours.
    config = tmp_path / "llmcost.yml"
    config.write_text(
        "alerting:\n  repeat_intervall: 1h\n  group_threshold: 3\n  runbook_base_url: https://wiki.example.com/llmcost\n"
    )
    code, out = check(capsys, config)
    assert code == 1
    assert "alerting.repeat_intervall: unknown key (allowed: " in out
    allowed = out.split("(allowed: ", 1)[1].split(")", 1)[0].split(", ")
    assert {"repeat_interval", "group_threshold", "runbook_base_url", "outbox", "alertmanager"} <= set(allowed)
    assert "alerting.group_threshold" not in out and "alerting.runbook_base_url" not in out


def test_a_token_variable_or_file_that_holds_no_token_is_a_problem_not_open_endpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: `admin_tokens_env: LLMCOST_ADMIN_TOKENS` with the variable set but empty (a deploy that
    forgot to fill a secret) passed check-config and served the admin endpoints without a token on
    loopback, as if no tokens had been asked for."""
    monkeypatch.setenv("LLMCOST_TEST_EMPTY_TOKENS", "  ")
    (tmp_path / "tokens").write_text("# filled in by the deploy\n\n")
    config = tmp_path / "config.yml"
    config.write_text("auth: {admin_tokens_env: LLMCOST_TEST_EMPTY_TOKENS, ingest_tokens_file: tokens}\n")
    problems = problems_of(config)
    assert any(
        p.startswith("auth.admin_tokens_env: environment variable LLMCOST_TEST_EMPTY_TOKENS is empty") for p in problems
    ), problems
    assert any(p.startswith("auth.ingest_tokens_file:") and "holds no token" in p for p in problems), problems


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('notifications:\n  email: {smtp_host: h, password: "hunter2-smtp-pass" x, to: [a@b.c]}\n', "line 2, column"),
        ("auth:\n\tadmin_tokens: [hunter2-admin-token-0123]\n", "line 2, column 1"),
        ("auth:\n  ingest_tokens: [hunter2-ingest-token-0123\n", "line 3"),
    ],
)
def test_a_yaml_error_on_a_secret_line_says_where_without_quoting_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str
) -> None:
    # PyYAML's message quotes the line, and `check-config` prints it, `serve` logs it: the secret with it.
    config = tmp_path / "llmcost.yml"
    config.write_text(text)
    code, out = check(capsys, config)
    assert code == 1
    assert "not valid YAML: " + where in out
    assert "hunter2" not in out
    assert main(["serve", "--config", str(config), "--db", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    out, err = capsys.readouterr()
    assert "not valid YAML" in out + err and "hunter2" not in out + err
