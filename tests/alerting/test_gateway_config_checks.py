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
    "  pagerduty: {routing_key: R0UT1NGKEY, events_url: %(pagerduty)s}\n"
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
