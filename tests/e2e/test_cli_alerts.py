"""`llmcost alerts list|ack`: what a user is told is what happened (in-process, through `main`)."""

from __future__ import annotations

import json

import pytest

from alerting.gateway.config import settings_from_config
from alerting.gateway.service import GatewayService
from exporter.services import Services
from llmcost.cli import main
from llmcost.services import open_services
from tests.support.helpers import make_config


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def gateway_on(url: str) -> tuple[GatewayService, Services]:
    services = open_services(make_config(url), start_writer=False)
    gateway = GatewayService(services.store, settings_from_config(services.config), start_workers=False)
    services.closers.append(gateway.close)
    return gateway, services


@pytest.fixture
def alert_id(sqlite_url: str) -> int:
    """A firing alert in a fresh store."""
    gateway, services = gateway_on(sqlite_url)
    try:
        change = gateway.fire("LLMBudgetExceeded", {"budget": "all"}, severity="critical")
        assert change.alert is not None and change.alert.id is not None
        return change.alert.id
    finally:
        services.close()


def test_acknowledging_again_says_who_did_it_first_and_records_nothing(
    sqlite_url: str, alert_id: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "alerts", "ack", str(alert_id), "--db", sqlite_url, "--by", "alice")
    assert code == 0 and out == f"alert {alert_id} acknowledged by alice\n"

    code, out, _ = run(capsys, "alerts", "ack", str(alert_id), "--db", sqlite_url, "--by", "carol", "--comment", "mine")
    assert code == 0
    assert out.startswith(f"alert {alert_id} is already acknowledged by alice at 20")
    assert out.rstrip().endswith("nothing changed")
    assert "acknowledged by carol" not in out

    code, out, _ = run(capsys, "alerts", "list", "--db", sqlite_url)
    assert "by alice" in out and "carol" not in out


def test_acknowledging_a_resolved_alert_is_one_line_and_exit_1(
    sqlite_url: str, alert_id: int, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway, services = gateway_on(sqlite_url)
    gateway.resolve("LLMBudgetExceeded", {"budget": "all"})
    services.close()
    code, out, err = run(capsys, "alerts", "ack", str(alert_id), "--db", sqlite_url)
    assert code == 1
    assert err.splitlines()[-1] == f"alert {alert_id} is resolved; nothing to acknowledge"
    assert "acknowledged by" not in out


def test_an_empty_list_says_so(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    gateway_on(sqlite_url)[1].close()
    code, out, _ = run(capsys, "alerts", "list", "--db", sqlite_url)
    assert code == 0 and out == "no alerts\n"
    code, out, _ = run(capsys, "alerts", "list", "--state", "resolved", "--db", sqlite_url)
    assert code == 0 and out == "no resolved alerts\n"


def test_unacknowledging_puts_the_alert_back_to_firing(
    sqlite_url: str, alert_id: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # docs/alerting.md: an unack from the CLI, as from Slack or HTTP, re-opens the alert.
    assert run(capsys, "alerts", "ack", str(alert_id), "--db", sqlite_url, "--by", "alice")[0] == 0
    code, out, _ = run(capsys, "alerts", "unack", str(alert_id), "--db", sqlite_url, "--by", "bob")
    assert code == 0 and out == f"alert {alert_id} unacknowledged by bob: firing again\n"
    code, out, _ = run(capsys, "alerts", "list", "--state", "firing", "--db", sqlite_url)
    assert f"{alert_id:>5} firing" in out and "by alice" not in out

    code, out, _ = run(capsys, "alerts", "unack", str(alert_id), "--db", sqlite_url)
    assert code == 0 and out == f"alert {alert_id} is not acknowledged; nothing changed\n"
    assert run(capsys, "alerts", "unack", "--db", sqlite_url)[0] == 2
    assert run(capsys, "alerts", "unack", "999", "--db", sqlite_url)[0] == 1


def test_list_says_when_it_shows_only_the_newest_alerts(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # With 1,001 alerts in the store, `llmcost alerts list` printed 1,000 lines and nothing more: the
    # oldest firing alert was simply not there, and nothing said so.
    from alerting.gateway.changes import AlertInput

    gateway, services = gateway_on(sqlite_url)
    try:
        gateway.fire_many([AlertInput("LLMCostSpike", {"project": f"p{i:04d}"}, "warning") for i in range(1001)])
    finally:
        services.close()
    code, out, _ = run(capsys, "alerts", "list", "--db", sqlite_url)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1002  # the header, 1,000 alerts, the line saying what is left out
    assert lines[-1] == "… and 1 more alert not listed (the newest 1,000 are shown; narrow with --state)"
    code, out, _ = run(capsys, "alerts", "list", "--state", "acknowledged", "--db", sqlite_url)
    assert (code, out) == (0, "no acknowledged alerts\n")


def test_an_option_the_action_does_not_read_is_refused_not_ignored(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # One parser serves list, ack and unack: `alerts list --by alice` listed every alert as if filtered,
    # and `alerts list 7` ignored the id.
    gateway_on(sqlite_url)[1].close()
    code, out, err = run(capsys, "alerts", "list", "--by", "alice", "--db", sqlite_url)
    assert (code, out) == (2, "") and "llmcost alerts list: --by not used by list" in err, err
    code, out, err = run(capsys, "alerts", "list", "7", "--db", sqlite_url)
    assert code == 2 and "ID not used by list" in err, err
    code, _, err = run(capsys, "alerts", "ack", "7", "--state", "firing", "--db", sqlite_url)
    assert code == 2 and "--state not used by ack" in err, err


def test_list_prints_a_header_row_as_budgets_list_does_and_json_for_scripts(
    sqlite_url: str, alert_id: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # `budgets list` heads its table with its columns; `alerts list` printed bare rows, its columns unnamed.
    assert run(capsys, "alerts", "ack", str(alert_id), "--db", sqlite_url, "--by", "alice")[0] == 0
    code, out, _ = run(capsys, "alerts", "list", "--db", sqlite_url)
    header, row = out.splitlines()
    assert code == 0 and header.split() == ["id", "state", "severity", "alertname", "labels"], out
    assert row.split()[:4] == [str(alert_id), "acknowledged", "critical", "LLMBudgetExceeded"], out
    # Columns line up under their names.
    assert header.index("state") == row.index("acknowledged") and header.index("labels") == row.index("budget=")

    code, out, _ = run(capsys, "alerts", "list", "--format", "json", "--db", sqlite_url)
    body = json.loads(out)
    assert code == 0 and body["not_listed"] == 0, out
    [alert] = body["alerts"]
    assert (alert["id"], alert["state"], alert["acknowledged_by"]) == (alert_id, "acknowledged", "alice")
    assert alert["labels"] == {"budget": "all"}
    code, out, _ = run(capsys, "alerts", "list", "--format", "json", "--state", "resolved", "--db", sqlite_url)
    assert (code, json.loads(out)) == (0, {"alerts": [], "not_listed": 0})
    code, _, err = run(capsys, "alerts", "ack", str(alert_id), "--format", "json", "--db", sqlite_url)
    assert code == 2 and "--format not used by ack" in err, err


@pytest.mark.parametrize("by", ["", "  "])
def test_a_blank_by_is_the_account_running_the_command(
    sqlite_url: str, alert_id: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, by: str
) -> None:
    # `llmcost alerts ack 7 --by "$ONCALL"` with $ONCALL unset: the ack was recorded as by "" (nobody), where
    # budgets' --by fell back to $USER.
    monkeypatch.setenv("USER", "dana")
    code, out, _ = run(capsys, "alerts", "ack", str(alert_id), "--db", sqlite_url, "--by", by)
    assert (code, out) == (0, f"alert {alert_id} acknowledged by dana\n")
    code, out, _ = run(capsys, "alerts", "list", "--db", sqlite_url, "--format", "json")
    assert [a["acknowledged_by"] for a in json.loads(out)["alerts"]] == ["dana"]


def test_the_table_shows_control_and_bidi_characters_instead_of_sending_them_to_the_terminal(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Alertmanager's labels are whatever its rules and targets say, and an acknowledger's name whatever the
    # API was given: `alerts list` printed them raw, so an escape sequence cleared the operator's screen,
    # retitled the window or drew a fake row (and U+202E turned the rest of the row around).
    gateway, services = gateway_on(sqlite_url)
    try:
        labels = {"project": "p\x1b]0;pwned\x07\x1b[2Jx", "job": "j\u202eevil", "instance": "a\nfake row"}
        change = gateway.fire("Hostile\x1b[31m", labels, severity="warning")
        assert change.alert is not None and change.alert.id is not None
        alert_id = change.alert.id
        gateway.ack(alert_id, by="mallory\x1b[1A\x9b2K", via="api")
    finally:
        services.close()

    code, out, _ = run(capsys, "alerts", "list", "--db", sqlite_url)
    _header, row = out.splitlines()  # one row: the newline in a label did not start another
    assert code == 0
    assert row.split()[:4] == [str(alert_id), "acknowledged", "warning", "Hostile[U+001B][31m"], out
    assert "project=p[U+001B]]0;pwned[U+0007][U+001B][2Jx" in row and "job=j[U+202E]evil" in row, out
    assert "instance=a[U+000A]fake row" in row and row.endswith("by mallory[U+001B][1A[U+009B]2K"), out
    code, out, _ = run(capsys, "alerts", "ack", str(alert_id), "--db", sqlite_url, "--by", "bob")
    assert code == 0 and out.startswith(f"alert {alert_id} is already acknowledged by mallory[U+001B][1A[U+009B]2K at")
    # The JSON for scripts keeps the values as stored, escaped by JSON itself.
    code, out, _ = run(capsys, "alerts", "list", "--format", "json", "--db", sqlite_url)
    assert json.loads(out)["alerts"][0]["labels"] == labels
