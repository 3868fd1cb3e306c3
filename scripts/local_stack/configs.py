"""The configurations of one stack, derived from the shipped ones with every address on loopback."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from exporter.demo import DEMO_CONFIG

REPO = Path(__file__).resolve().parents[2]
SHIPPED_PROMETHEUS = REPO / "prometheus" / "prometheus.yml"
SHIPPED_ALERTMANAGER = REPO / "alertmanager" / "alertmanager.yml"


@dataclass(frozen=True)
class Ports:
    """The loopback ports of the three servers."""

    llmcost: int = 9800
    prometheus: int = 9090
    alertmanager: int = 9093

    def url(self, name: str) -> str:
        """Base URL of one server: `llmcost`, `prometheus` or `alertmanager`."""
        return f"http://127.0.0.1:{getattr(self, name)}"


def load_yaml(path: Path) -> Any:
    """Parse one YAML file."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


class _PlainDumper(yaml.SafeDumper):
    """Writes shared nodes out in full (the shipped Alertmanager receivers share one anchor)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any, path: Path, *, source: Path | None = None) -> Path:
    """Write `data` as YAML to `path` (saying which shipped file it was derived from) and return the path."""
    header = f"# Derived from {source.relative_to(REPO)}: edit that file, not this copy.\n" if source else ""
    path.write_text(header + yaml.dump(data, Dumper=_PlainDumper, sort_keys=False), encoding="utf-8")
    return path


def seconds(duration: str) -> float:
    """Seconds in a Prometheus duration such as `30s`, `5m` or `1h30m`."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|[smhdwy])", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * units[u] for n, u in parts)


def shipped_rule_files(shipped: Mapping[str, Any], base: Path = SHIPPED_PROMETHEUS.parent) -> list[str]:
    """The shipped `rule_files` globs as absolute paths (they are relative to the shipped file)."""
    return [str(base / pattern) for pattern in shipped.get("rule_files", [])]


def prometheus_config(
    shipped: Mapping[str, Any], ports: Ports, *, rule_files: Sequence[str], interval: float | None = None
) -> dict[str, Any]:
    """The shipped prometheus.yml with every target on loopback and the given rule files.

    `interval` (seconds) replaces the scrape and evaluation intervals; scrape timeouts are capped at it.
    A scrape job with no known loopback port is an error rather than a target that cannot resolve.
    """
    config = copy.deepcopy(dict(shipped))
    config["rule_files"] = list(rule_files)
    if interval is not None:
        step = f"{interval:g}s"
        config["global"].update(scrape_interval=step, scrape_timeout=step, evaluation_interval=step)
    ports_by_job = {"llmcost": ports.llmcost, "prometheus": ports.prometheus, "alertmanager": ports.alertmanager}
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name not in ports_by_job:
            raise ValueError(f"scrape job {name!r} of the shipped prometheus.yml has no loopback port here")
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports_by_job[name]}"]}]
        if interval is not None and "scrape_timeout" in job and seconds(job["scrape_timeout"]) > interval:
            job["scrape_timeout"] = f"{interval:g}s"
    for alertmanager in config["alerting"]["alertmanagers"]:
        alertmanager["static_configs"] = [{"targets": [f"127.0.0.1:{ports.alertmanager}"]}]
    return config


def alertmanager_config(shipped: Mapping[str, Any], ports: Ports, *, credentials_file: Path) -> dict[str, Any]:
    """The shipped alertmanager.yml with the gateway webhook on llmcost's loopback port and this token file."""
    config = copy.deepcopy(dict(shipped))
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs") or []:
            url = urlsplit(hook["url"])
            hook["url"] = urlunsplit((url.scheme, f"127.0.0.1:{ports.llmcost}", url.path, url.query, url.fragment))
            hook["http_config"]["authorization"]["credentials_file"] = str(credentials_file)
    return config


STACK_BUDGET = {"name": "stack-requests", "scope": "global", "period": "total", "unit": "requests", "limit": 100}
"""A budget the trace crosses within its first minutes, so Alertmanager shows llmcost's own budget alerts."""


def llmcost_config(token_file: Path, ports: Ports | None = None) -> dict[str, Any]:
    """The llmcost configuration: the demo's budgets, and Alertmanager's webhook token read from a file.

    With `ports`, llmcost also pushes its own alerts to the local Alertmanager (`alertmanager.url`), with
    links built from its loopback address, and has one more budget that the trace crosses at once.
    """
    config: dict[str, Any] = {
        "auth": {"webhook_tokens_file": str(token_file)},
        "budgets": copy.deepcopy(DEMO_CONFIG["budgets"]),
    }
    if ports is not None:
        config["external_url"] = ports.url("llmcost")
        config["alertmanager"] = {"url": ports.url("alertmanager"), "resend_interval": "15s"}
        config["budgets"].append(dict(STACK_BUDGET))
    return config
