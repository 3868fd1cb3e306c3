"""One run's state folder: wiped, then the generated token and every config written into it."""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from local_stack.configs import (
    SHIPPED_ALERTMANAGER,
    SHIPPED_PROMETHEUS,
    Ports,
    alertmanager_config,
    dump_yaml,
    llmcost_config,
    load_yaml,
    prometheus_config,
    shipped_rule_files,
)
from local_stack.servers import Server, alertmanager_server, llmcost_server, prometheus_server

MARKER = ".llmcost-stack"
"""Only a folder holding this file is ever wiped."""


def prepare_dir(path: Path) -> Path:
    """An empty state folder: created, or wiped if an earlier run made it; never someone else's folder."""
    if path.exists():
        if any(path.iterdir()) and not (path / MARKER).exists():
            raise RuntimeError(f"{path} exists and was not made by this script; remove it or pass --dir")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("state of scripts/stack.py, wiped on every run\n", encoding="utf-8")
    return path


@dataclass
class Stack:
    """The three servers of one run, with the configs written into the state folder."""

    ports: Ports
    state: Path
    servers: list[Server]


def build_stack(state: Path, ports: Ports, *, interval: float | None) -> Stack:
    """Write every config into `state` and prepare (not start) llmcost, Alertmanager and Prometheus."""
    token_file = state / "webhook_token"
    token_file.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
    token_file.chmod(0o600)
    llmcost_yml = dump_yaml(llmcost_config(token_file, ports), state / "llmcost.yml")
    prometheus_yml = dump_yaml(
        prometheus_config(
            load_yaml(SHIPPED_PROMETHEUS),
            ports,
            rule_files=shipped_rule_files(load_yaml(SHIPPED_PROMETHEUS)),
            interval=interval,
        ),
        state / "prometheus.yml",
        source=SHIPPED_PROMETHEUS,
    )
    alertmanager_yml = dump_yaml(
        alertmanager_config(load_yaml(SHIPPED_ALERTMANAGER), ports, credentials_file=token_file),
        state / "alertmanager.yml",
        source=SHIPPED_ALERTMANAGER,
    )
    servers = [
        llmcost_server(llmcost_yml, f"sqlite:///{state / 'llmcost.db'}", ports.llmcost, state / "llmcost.log"),
        alertmanager_server(alertmanager_yml, state / "alertmanager", ports.alertmanager, state / "alertmanager.log"),
        prometheus_server(prometheus_yml, state / "prometheus", ports.prometheus, state / "prometheus.log"),
    ]
    return Stack(ports, state, servers)
