"""URL and duration settings that parsed, then failed once used: `check-config` and `serve` name each field.

`notifications.pagerduty.events_url: 5` passed `check-config`, `serve` started, and every PagerDuty page
then dead-lettered; `api_url: "http://[::1"` (an unbalanced bracket) and `silence_duration: 0s` (a
silence Alertmanager rejects on every ack) passed too. Every URL setting now goes through one check
(`exporter.config.http_url_problem`) and every gateway duration must be > 0 but those where 0
means something (`group_wait`, `tick_interval`, the retentions).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmcost.cli import main

CHANNELS = (
    "notifications:\n"
    "  slack: {token: xoxb-test, channel: '#llm-cost', api_url: '%(slack)s'}\n"
    "  pagerduty: {routing_key: R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32, events_url: %(pagerduty)s}\n"
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return code, out + err


def test_check_config_and_serve_name_each_unusable_url_and_zero_duration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(
        CHANNELS % {"slack": "http://[::1", "pagerduty": "5"} + "alerting:\n"
        "  outbox: {initial_backoff: 0s}\n"
        "  alertmanager: {url: 'http://am:port', silence_duration: 0s}\n"
        "alertmanager: {urls: ['http://[am-0:9093']}\n"
        "grafana_url: 'http://[::1'\n"
    )
    code, out = run(capsys, "check-config", str(config))
    assert code == 1
    for field in (
        "notifications.slack.api_url: must be an http(s) URL",
        "notifications.pagerduty.events_url: must be an http(s) URL, got int",
        "alerting.outbox.initial_backoff: must be > 0",
        "alerting.alertmanager.url: must be an http(s) URL",
        "alerting.alertmanager.silence_duration: must be > 0",
        "alertmanager.urls[0]: must be an http(s) URL",
        "grafana_url: must be an http(s) URL",
    ):
        assert field in out, (field, out)
    # `serve` loads the config the same way: it refuses to start rather than dead-letter every page.
    code, out = run(capsys, "serve", "--config", str(config), "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and "notifications.pagerduty.events_url" in out, out
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("url", ["http://", "http://host:abc/", "http://host:99999/", "mailto:x@example.com"])
def test_a_url_without_a_usable_host_or_port_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(CHANNELS % {"slack": url, "pagerduty": "https://events.example.com/v2/enqueue"})
    code, out = run(capsys, "check-config", str(config))
    assert code == 1 and "notifications.slack.api_url: must be an http(s) URL" in out, out


def test_usable_urls_and_durations_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(
        CHANNELS % {"slack": "http://[::1]:8080/api/", "pagerduty": "https://events.example.com/v2/enqueue"}
        + "alerting: {group_wait: 0s, alertmanager: {url: 'http://am:9093', silence_duration: 2h}}\n"
    )
    code, out = run(capsys, "check-config", str(config))
    assert code == 0, out


def test_control_characters_in_channel_names_and_secrets_are_named_by_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # All passed check-config; then every Slack send raised (a line break cannot go in the Authorization
    # header), PagerDuty got a routing key with a tab, mail a recipient with a CR LF.
    (tmp_path / "slack-token").write_text("xoxb-1-secret\nxoxb-2-pasted-twice\n")
    config = tmp_path / "llmcost.yml"
    config.write_text(
        "notifications:\n"
        '  slack: {token_file: slack-token, channel: "#llm\\0cost", signing_secret: "s\\x7f"}\n'
        '  email: {smtp_host: mail, from: a@example.com, username: "bob\\r\\nRCPT TO:<x@evil>",\n'
        '          to: [b@example.com, "Ops\\n <c@example.com>"]}\n'
        '  pagerduty: {routing_key: "R0123456789abcdef\\t0123456789abcd", source: "svc\\0",\n'
        '              webhook_secret: [ok, "bad\\x1b"]}\n'
    )
    code, out = run(capsys, "check-config", str(config))
    assert code == 1
    for problem in (
        "notifications.slack.token: must not contain control characters (U+000A at character 14)",
        "notifications.slack.channel: must not contain control characters (U+0000 at character 5)",
        "notifications.slack.signing_secret: must not contain control characters (U+007F at character 2)",
        "notifications.email.username: must not contain control characters (U+000D at character 4)",
        "notifications.email.to[1]: must not contain control characters (U+000A at character 4)",
        "notifications.pagerduty.routing_key: must not contain control characters (U+0009 at character 18)",
        "notifications.pagerduty.source: must not contain control characters (U+0000 at character 4)",
        "notifications.pagerduty.webhook_secret[1]: must not contain control characters (U+001B at character 4)",
    ):
        assert problem in out, (problem, out)
    assert "secret" not in out.replace("signing_secret", "").replace("webhook_secret", "")
    assert "0123456789abc" not in out
    code, out = run(capsys, "serve", "--config", str(config), "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and "notifications.slack.token: must not contain control characters" in out, out


def test_a_pagerduty_routing_key_of_the_wrong_length_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PagerDuty refuses every event whose routing key is not 32 characters ("Length of 'routing_key' is
    incorrect"): a key pasted without its last characters passed check-config, `serve` started, and every
    page dead-lettered. Now it is a problem naming the key as given, never showing it."""
    monkeypatch.setenv("LLMCOST_TEST_PD_KEY", "R0123456789abcdef0123456789")
    config = tmp_path / "llmcost.yml"
    config.write_text("notifications:\n  pagerduty: {routing_key_env: LLMCOST_TEST_PD_KEY}\n")
    code, out = run(capsys, "check-config", str(config))
    assert code == 1
    assert (
        "notifications.pagerduty.routing_key_env: a PagerDuty Events API v2 integration key is 32 characters, "
        "this one is 27 (PagerDuty refuses every event sent with it)"
    ) in out, out
    assert "R0123456789" not in out
    config.write_text("notifications:\n  pagerduty: {routing_key: R0123456789abcdef0123456789abcde}\n")
    code, out = run(capsys, "check-config", str(config))
    assert code == 0, out


def test_a_mail_recipient_problem_names_the_entry_as_written_and_the_address_in_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The index counted addresses after each entry's commas were split: with a first entry of two
    # addresses, a line break in the second entry was named to[2] (the YAML list has no item 2), and a
    # `to` written as one string was named to[0]. A bad part of an entry of several was named by `to:` alone.
    config = tmp_path / "llmcost.yml"
    email = "  email: {smtp_host: mail, from: a@example.com, to: %s}\n"
    listed = '[ "a@example.com, b@example.com", "Ops\\n <c@example.com>", "d@example.com, finance" ]'
    config.write_text("notifications:\n" + email % listed)
    code, out = run(capsys, "check-config", str(config))
    assert code == 1
    assert "notifications.email.to[1]: must not contain control characters (U+000A at character 4)" in out, out
    assert "notifications.email.to[2]: 'finance' (address 2 of the entry) is not a mail address" in out, out
    assert "to[3]" not in out and "to[4]" not in out, out

    config.write_text("notifications:\n" + email % '"a@example.com, Ops\\r <c@example.com>"')
    code, out = run(capsys, "check-config", str(config))
    assert code == 1
    assert "notifications.email.to: must not contain control characters (U+000D at character 19)" in out, out
    assert "to[0]" not in out, out


@pytest.mark.parametrize(
    ("section", "problems"),
    [
        ("pagerduty: {}", ["notifications.pagerduty.routing_key: required (notifications.pagerduty is empty"]),
        ("pagerduty:", ["notifications.pagerduty.routing_key: required (notifications.pagerduty is empty"]),
        (
            "pagerduty: {events_url: 'https://events.example.com/v2/enqueue'}",
            ["notifications.pagerduty.routing_key: required"],
        ),
        ("slack: {}", ["notifications.slack.token: required (", "notifications.slack.channel: required ("]),
        (
            "email:",
            [
                "notifications.email.smtp_host: required (",
                "notifications.email.from: required (",
                "notifications.email.to: required (",
            ],
        ),
    ],
)
def test_a_channel_section_written_without_its_required_keys_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, problems: list[str]
) -> None:
    # `pagerduty: {}` passed check-config as if no PagerDuty were configured (only a notice that no channel
    # was), and critical alerts then paged nobody.
    config = tmp_path / "llmcost.yml"
    config.write_text(f"notifications:\n  {section}\n")
    code, out = run(capsys, "check-config", str(config))
    assert code == 1, out
    lines = [line.strip().removeprefix("- ") for line in out.splitlines() if line.startswith("  - ")]
    assert len(lines) == len(problems), out
    for line, problem in zip(lines, problems, strict=True):
        assert line.startswith(problem), (line, out)
