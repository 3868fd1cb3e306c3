"""`llmcost alerts [list|ack ID|unack ID]`: the gateway's alerts from the command line (beside the gateway it drives).

`list` opens the store read-only; `ack` and `unack` record the change and queue its notifications,
which the running server's delivery workers send (this command starts none).

`ack` exit status: 0 when the alert is acknowledged, including one that already was (nothing is
recorded then, and the message names who acknowledged it and when: the first acknowledgement stands);
1 when there is no such alert or it is resolved (nothing to acknowledge); 2 without an ID. `unack`
likewise: 0 when the alert is firing again, including one that was not acknowledged (nothing changed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC
from typing import TYPE_CHECKING

import orjson

from alerting.actor import actor
from alerting.notify.text_limits import terminal_text
from exporter.config import Config
from exporter.services import Services
from exporter.store import store_location

if TYPE_CHECKING:
    from alerting.gateway.service import GatewayService
    from alerting.model import Alert, Silence

LIST_LIMIT = 1000
"""`llmcost alerts list` prints the newest this many, then how many more there are."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `alerts` subcommand's arguments (after `--config` and `--db`)."""
    parser.add_argument("action", nargs="?", choices=("list", "ack", "unack"), default="list")
    parser.add_argument("id", nargs="?", type=int)
    parser.add_argument("--state", choices=("firing", "acknowledged", "resolved"))
    parser.add_argument("--by", help="ack, unack: who (default $USER)")
    parser.add_argument("--comment", default="", help="ack, unack: why")
    parser.add_argument(
        "--format", choices=("table", "json"), help="list: output format (default table; json for scripts)"
    )


# The options each action reads: one parser serves all three, so `alerts list --by alice` (read as "the
# alerts alice acknowledged") listed every alert, and `alerts ack 7 --state firing` ignored the filter.
_READS = {"list": {"state", "format"}, "ack": {"id", "by", "comment"}, "unack": {"id", "by", "comment"}}


def _options_not_read(args: argparse.Namespace) -> list[str]:
    given = {"id": args.id is not None, "state": args.state is not None, "by": args.by is not None}
    given["format"] = args.format is not None
    given["comment"] = args.comment != ""
    return [
        ("ID" if name == "id" else f"--{name}")
        for name, set_ in given.items()
        if set_ and name not in _READS[args.action]
    ]


def run(
    args: argparse.Namespace,
    config_from_args: Callable[[argparse.Namespace], Config],
    open_services: Callable[..., Services] = Services.build,
) -> int:
    """List alerts (read-only), or acknowledge one (the running server delivers the updates).

    `open_services` opens the store (the application passes its own, with its write hooks).
    """
    from alerting.gateway.config import settings_from_config  # here: `llmcost --help` need not load the gateway
    from alerting.gateway.service import GatewayService

    ignored = _options_not_read(args)
    if ignored:
        print(
            f"llmcost alerts {args.action}: {', '.join(ignored)} not used by {args.action} (see --help)",
            file=sys.stderr,
        )
        return 2
    args.by = actor(args.by)
    config = config_from_args(args)
    read_only = args.action == "list"
    services = open_services(config, start_writer=False, read_only=read_only, must_exist=True)
    print(f"store: {store_location(config.database_url)}", file=sys.stderr)
    try:
        gateway = GatewayService(
            services.store, settings_from_config(config), clock=services.clock, start_workers=False
        )
        services.closers.append(gateway.close)
        if args.action == "ack":
            return _ack(gateway, args)
        if args.action == "unack":
            return _unack(gateway, args)
        _list(gateway, args)
    finally:
        services.close()
    return 0


def _list(gateway: GatewayService, args: argparse.Namespace) -> None:
    """The newest `LIST_LIMIT` alerts: a table headed by its columns, as `budgets list` prints, or JSON."""
    listed = gateway.alerts(args.state, limit=LIST_LIMIT)
    # Only the newest are read: say how many were left out rather than end as if that were all.
    more = max(gateway.alert_count(args.state) - LIST_LIMIT, 0) if len(listed) == LIST_LIMIT else 0
    if args.format == "json":
        from alerting.gateway.records import api_alert

        # Each alert as GET /v1/alerts shows it; `not_listed` counts the older ones beyond the limit.
        print(orjson.dumps({"alerts": [api_alert(alert) for alert in listed], "not_listed": more}).decode())
        return
    if not listed:
        print(f"no {args.state} alerts" if args.state else "no alerts")
        return
    print(f"{'id':>5} {'state':<12} {'severity':<8} {'alertname':<26} labels")
    for alert in listed:
        # Names and labels come from Alertmanager's rules and targets, people's names from Slack, PagerDuty
        # and the API: shown, never sent to the terminal as they are (terminal_text).
        by = f" by {alert.acknowledged_by}" if alert.acknowledged_by else ""
        state: str = alert.state
        if alert.silence is not None and alert.state == "firing":
            state = "inhibited" if alert.silence.inhibition else "silenced"
            by = _silenced(alert.silence)
        labels = ",".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        name = terminal_text(alert.alertname)
        print(f"{alert.id:>5} {state:<12} {alert.severity:<8} {name:<26} {terminal_text(labels + by)}")
    if more:
        noun = "alert" if more == 1 else "alerts"
        print(f"… and {more:,} more {noun} not listed (the newest {LIST_LIMIT:,} are shown; narrow with --state)")


def _ack(gateway: GatewayService, args: argparse.Namespace) -> int:
    from alerting.gateway.changes import AlertConflict

    if args.id is None:
        print("usage: llmcost alerts ack ID [--by NAME]", file=sys.stderr)
        return 2
    alert = gateway.alert(args.id)
    if alert is None:
        print(f"no alert with id {args.id}", file=sys.stderr)
        return 1
    if alert.state == "resolved":
        print(f"alert {args.id} is resolved; nothing to acknowledge", file=sys.stderr)
        return 1
    try:
        change = gateway.ack(args.id, by=args.by, via="cli", comment=args.comment)
    except AlertConflict:  # resolved between the read above and the write
        print(f"alert {args.id} is resolved; nothing to acknowledge", file=sys.stderr)
        return 1
    if change.action != "acknowledged":
        # Someone acknowledged it first: their acknowledgement stands and this one records nothing.
        current = change.alert or gateway.alert(args.id) or alert
        print(f"alert {args.id} is already acknowledged{terminal_text(_acknowledged(current))}; nothing changed")
        return 0
    print(f"alert {args.id} acknowledged by {args.by}")
    return 0


def _unack(gateway: GatewayService, args: argparse.Namespace) -> int:
    from alerting.gateway.changes import AlertConflict

    if args.id is None:
        print("usage: llmcost alerts unack ID [--by NAME]", file=sys.stderr)
        return 2
    alert = gateway.alert(args.id)
    if alert is None:
        print(f"no alert with id {args.id}", file=sys.stderr)
        return 1
    resolved = f"alert {args.id} is resolved; nothing to unacknowledge"
    if alert.state == "resolved":
        print(resolved, file=sys.stderr)
        return 1
    try:
        change = gateway.unack(args.id, by=args.by, via="cli", comment=args.comment)
    except AlertConflict:  # resolved between the read above and the write
        print(resolved, file=sys.stderr)
        return 1
    if change.action != "unacknowledged":
        print(f"alert {args.id} is not acknowledged; nothing changed")
        return 0
    print(f"alert {args.id} unacknowledged by {args.by}: firing again")
    return 0


def _acknowledged(alert: Alert) -> str:
    """` by NAME (via cli) at TIME` for an acknowledged alert, as much as is recorded."""
    text = f" by {alert.acknowledged_by}" if alert.acknowledged_by else ""
    if alert.acknowledged_at is not None:
        text += f" at {alert.acknowledged_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return text


def _silenced(silence: Silence) -> str:
    """` silenced in Alertmanager by NAME until TIME: COMMENT`, as much as Alertmanager said.

    For an inhibition: ` held in Alertmanager: inhibited by ALERTNAME {labels}`.
    """
    if silence.inhibition:
        return f" held in Alertmanager: {silence.comment}"
    text = " silenced in Alertmanager" + (f" by {silence.by}" if silence.by else "")
    if silence.ends_at is not None:
        text += f" until {silence.ends_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return text + (f": {silence.comment}" if silence.comment else f" (silence {silence.id})")
