"""`llmcost alerts [list|ack ID]`: the gateway's alerts from the command line (beside the gateway it drives).

`list` opens the store read-only; `ack` records the acknowledgement and queues its notifications,
which the running server's delivery workers send (this command starts none).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from exporter.config import Config
from exporter.services import Services
from exporter.store import store_location

if TYPE_CHECKING:
    from alerting.gateway.service import GatewayService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `alerts` subcommand's arguments (after `--config` and `--db`)."""
    parser.add_argument("action", nargs="?", choices=("list", "ack"), default="list")
    parser.add_argument("id", nargs="?", type=int)
    parser.add_argument("--state", choices=("firing", "acknowledged", "resolved"))
    parser.add_argument("--by", default=os.environ.get("USER", "cli"))
    parser.add_argument("--comment", default="")


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

    config = config_from_args(args)
    read_only = args.action != "ack"
    services = open_services(config, start_writer=False, read_only=read_only, must_exist=True)
    print(f"store: {store_location(config.database_url)}", file=sys.stderr)
    try:
        gateway = GatewayService(
            services.store, settings_from_config(config), clock=services.clock, start_workers=False
        )
        services.closers.append(gateway.close)
        if args.action == "ack":
            return _ack(gateway, args)
        for alert in gateway.alerts(args.state):
            by = f" by {alert.acknowledged_by}" if alert.acknowledged_by else ""
            labels = ",".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
            print(f"{alert.id:>5} {alert.state:<12} {alert.severity:<8} {alert.alertname:<26} {labels}{by}")
    finally:
        services.close()
    return 0


def _ack(gateway: GatewayService, args: argparse.Namespace) -> int:
    if args.id is None:
        print("usage: llmcost alerts ack ID [--by NAME]", file=sys.stderr)
        return 2
    if gateway.alert(args.id) is None:
        print(f"no alert with id {args.id}", file=sys.stderr)
        return 1
    gateway.ack(args.id, by=args.by, via="cli", comment=args.comment)
    print(f"alert {args.id} acknowledged by {args.by}")
    return 0
