"""Prometheus and Alertmanager for the live end-to-end test, configured from the shipped files.

Builds on `scripts/stack.py` (what `make stack` runs), so the test exercises the same derivation of the
shipped configs: scrape and Alertmanager targets on loopback ports, the gateway webhook on llmcost's port
with its bearer token in a `credentials_file`. On top of that, for a run measured in seconds:

- scrape and evaluation intervals of `interval` seconds, and copies of the shipped rule files whose
  groups lose their own `interval:` (the daily group evaluates every 2 minutes in production);
- in those copies, a shorter `for:` for the alerts named in `for_overrides`;
- Alertmanager routes with `timings` (e.g. group_wait 1s) instead of their seconds-to-hours waits.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import monitoring_assets as assets
from tests.support.pg import free_port


def _load_stack_script() -> ModuleType:
    name = "llmcost_stack_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, assets.REPO / "scripts" / "stack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


stack = _load_stack_script()
Ports = stack.Ports
TraceFeed = stack.TraceFeed
instant_query = stack.instant_query
wait_until = stack.wait_until
scraped = stack.scraped


def fast_rule_files(dest: Path, for_overrides: Mapping[str, str]) -> list[Path]:
    """Copies of the shipped rule files: no per-group `interval:`, and `for:` replaced where overridden."""
    dest.mkdir(parents=True, exist_ok=True)
    unused = set(for_overrides)
    written = []
    for path in assets.rule_files():
        data = assets.load_yaml(path)
        for group in data["groups"]:
            group.pop("interval", None)
            for rule in group["rules"]:
                if rule.get("alert") in for_overrides:
                    rule["for"] = for_overrides[rule["alert"]]
                    unused.discard(rule["alert"])
        written.append(stack.dump_yaml(data, dest / path.name, source=path))
    assert not unused, f"no shipped alert rule named {sorted(unused)}"
    return written


def _routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield route
    for child in route.get("routes") or []:
        yield from _routes(child)


def prometheus_server(workdir: Path, ports: Any, *, rule_files: list[Path], interval: float) -> Any:
    """Prometheus (not started) on `ports.prometheus` from the shipped prometheus.yml, fast, with these rules."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = stack.prometheus_config(
        assets.load_yaml(assets.PROMETHEUS_CONFIG),
        ports,
        rule_files=[str(p) for p in rule_files],
        interval=interval,
    )
    path = stack.dump_yaml(config, workdir / "prometheus.yml", source=assets.PROMETHEUS_CONFIG)
    check = assets.run(["promtool", "check", "config", str(path)])
    assert check.returncode == 0, f"derived prometheus.yml is invalid:\n{check.stdout}{check.stderr}"
    return stack.prometheus_server(path, workdir / "data", ports.prometheus, workdir / "prometheus.log")


def alertmanager_server(
    workdir: Path,
    ports: Any,
    *,
    credentials_file: Path,
    timings: Mapping[str, str],
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Any:
    """Alertmanager (not started) on `ports.alertmanager` from the shipped alertmanager.yml, fast.

    `edit` changes the derived config before the timings apply (routes of one's own, as a team adds them).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = stack.alertmanager_config(
        assets.load_yaml(assets.ALERTMANAGER_CONFIG), ports, credentials_file=credentials_file
    )
    if edit is not None:
        edit(config)
    root = config["route"]
    for route in _routes(root):
        for key, value in timings.items():
            if route is root or key in route:
                route[key] = value
    path = stack.dump_yaml(config, workdir / "alertmanager.yml", source=assets.ALERTMANAGER_CONFIG)
    check = assets.run(["amtool", "check-config", str(path)])
    assert check.returncode == 0, f"derived alertmanager.yml is invalid:\n{check.stdout}{check.stderr}"
    return stack.alertmanager_server(path, workdir / "data", ports.alertmanager, workdir / "alertmanager.log")


def webhook_token_file(workdir: Path, token: str) -> Path:
    """The file Alertmanager reads the bearer token of llmcost's webhook from (its `credentials_file`)."""
    path = workdir / "webhook_token"
    path.write_text(token + "\n", encoding="utf-8")
    return path


def start_alertmanager(
    cleanup: ExitStack,
    workdir: Path,
    ports: Any,
    *,
    credentials_file: Path,
    timings: Mapping[str, str],
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Any:
    """`alertmanager_server`, started, and stopped when `cleanup` closes."""
    server = alertmanager_server(workdir, ports, credentials_file=credentials_file, timings=timings, edit=edit)
    cleanup.callback(server.stop)
    server.start()
    return server


def bearer(token: str) -> dict[str, str]:
    """The headers of a request authorized by `token`."""
    return {"Authorization": f"Bearer {token}"}


def spend(base_url: str, ingest_token: str, project: str, request_id: str, cost: float) -> None:
    """One gpt-4o call of `project` costing `cost` USD, ingested by the llmcost at `base_url`."""
    event = {"request_id": request_id, "provider": "openai", "model": "gpt-4o", "project": project, "cost_usd": cost}
    response = httpx.post(f"{base_url}/v1/usage", json=event, headers=bearer(ingest_token), timeout=10)
    assert response.json()["accepted"] == 1, response.text


def metric_value(base_url: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples with these labels, read straight from a server's /metrics."""
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def free_ports(count: int, *, taken: tuple[int, ...] = ()) -> list[int]:
    """`count` distinct free loopback ports, none of them in `taken`."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports and port not in taken:
            ports.append(port)
    return ports


def diagnostics(
    sources: Iterable[tuple[str, Callable[[], Any]]],
    workdir: Path,
    *,
    answer_chars: int,
    log_chars: int,
) -> str:
    """What a failing live-stack test prints: each source's answer (or why it had none), then each log's tail."""
    parts = []
    for title, call in sources:
        try:
            parts.append(f"{title}: {json.dumps(call(), default=str)[:answer_chars]}")
        except (httpx.HTTPError, ValueError) as exc:
            parts.append(f"{title}: unavailable ({exc})")
    for log in sorted(workdir.rglob("*.log")):
        parts.append(f"--- {log.name} (tail)\n{log.read_text(errors='replace')[-log_chars:]}")
    return "\n".join(parts)
