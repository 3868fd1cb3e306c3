"""`make stack`: llmcost, Prometheus and Alertmanager on this machine, without Docker.

Starts three processes on loopback, with state in `.stack/` (wiped at the start of every run):

- llmcost (`llmcost serve`): a fresh SQLite store, the demo's budgets (`exporter.demo.DEMO_CONFIG`) plus
  one the trace crosses at once (`STACK_BUDGET`), `auth.webhook_tokens_file` pointing at a token
  generated into `.stack/webhook_token`, and `alertmanager.url` set: its budget and spike alerts are
  pushed to Alertmanager, which shows them and routes them back to llmcost's gateway. The ingest and
  admin endpoints stay open, as in `llmcost demo`: nothing listens beyond 127.0.0.1.
- Prometheus with the shipped `prometheus/prometheus.yml` and rule files (`prometheus/rules/*.rules.yml`,
  read in place), its scrape and Alertmanager targets rewritten to the loopback ports.
- Alertmanager with the shipped `alertmanager/alertmanager.yml`, the gateway webhook URL rewritten to
  llmcost's port and its `credentials_file` to `.stack/webhook_token`.

The bundled real trace (`exporter.demo`) is sent to llmcost's `POST /v1/usage`, its calls timed to end
now: the first ten minutes before Prometheus starts, the other fifty once Prometheus has scraped llmcost
(so `increase()` over the last hour sees them arrive), then the trace again in real time, so rates keep
moving. Prints where to look and three PromQL queries, runs until Ctrl-C (or `--duration`), then stops
everything. `--check` instead waits until Prometheus answers the example queries with llmcost's data and
Alertmanager has delivered an alert to llmcost and shows llmcost's budget alerts in its own API,
prints the outputs and exits (status 1 if not in time).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, Self
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import yaml

from exporter.demo import ATTRIBUTION, DEMO_CONFIG, load_trace, make_events, trace_span

REPO = Path(__file__).resolve().parent.parent
SHIPPED_PROMETHEUS = REPO / "prometheus" / "prometheus.yml"
SHIPPED_ALERTMANAGER = REPO / "alertmanager" / "alertmanager.yml"
DEFAULT_DIR = REPO / ".stack"
MARKER = ".llmcost-stack"
EARLY_HISTORY_SECONDS = (
    600.0  # of the trace, sent before Prometheus starts  # only a folder holding this file is ever wiped
)

# (what it shows, PromQL): printed at start, run by --check.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Spend in the last hour by project (USD)", "sort_desc(project:llm_cost_usd:increase1h)"),
    ("Top 5 models by spend rate (USD per hour)", "topk(5, provider_model:llm_cost_usd:rate5m * 3600)"),
    ("Budgets closest to their limit (share of the limit spent)", "topk(5, budget:llm_budget_usage_ratio:max)"),
)


@dataclass(frozen=True)
class Ports:
    """The loopback ports of the three servers."""

    llmcost: int = 9800
    prometheus: int = 9090
    alertmanager: int = 9093

    def url(self, name: str) -> str:
        """Base URL of one server: `llmcost`, `prometheus` or `alertmanager`."""
        return f"http://127.0.0.1:{getattr(self, name)}"


# --- configs derived from the shipped ones -------------------------------------------------------


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


# --- processes -----------------------------------------------------------------------------------


def binary(*names: str) -> str:
    """The first of `names` found on PATH (Debian calls Alertmanager `prometheus-alertmanager`)."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    raise RuntimeError(
        f"{' or '.join(names)} not found on PATH (Debian: apt-get install prometheus prometheus-alertmanager)"
    )


def llmcost_binary() -> str:
    """The `llmcost` entry point of the running interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).with_name("llmcost")
    return str(beside) if beside.exists() else binary("llmcost")


def port_in_use(port: int) -> bool:
    """True when something listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Server:
    """A child process serving HTTP on loopback: started, awaited until `ready_url` answers 200, stopped."""

    def __init__(self, name: str, argv: Sequence[str], ready_url: str, log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.ready_url = ready_url
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Self:
        """Start the process and wait until it is ready; raises with the log's tail if it is not."""
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.ready_url, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} was not ready within {timeout:g} s:\n{self.log_tail()}")

    def log_tail(self, size: int = 3000) -> str:
        """The end of the process's output."""
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if it hangs; safe to call twice and on a process that never started."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def prometheus_server(config: Path, data: Path, port: int, log: Path) -> Server:
    """Prometheus on 127.0.0.1:port with this config and TSDB folder."""
    argv = [
        binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return Server("prometheus", argv, f"http://127.0.0.1:{port}/-/ready", log)


def alertmanager_server(config: Path, data: Path, port: int, log: Path) -> Server:
    """Alertmanager on 127.0.0.1:port, with HA clustering off (it would listen on 0.0.0.0:9094)."""
    argv = [
        binary("prometheus-alertmanager", "alertmanager"),
        f"--config.file={config}",
        f"--storage.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    return Server("alertmanager", argv, f"http://127.0.0.1:{port}/-/ready", log)


def llmcost_server(config: Path, db_url: str, port: int, log: Path) -> Server:
    """`llmcost serve` on 127.0.0.1:port."""
    argv = [llmcost_binary(), "serve", "--config", str(config), "--db", db_url, "--listen", f"127.0.0.1:{port}"]
    return Server("llmcost", argv, f"http://127.0.0.1:{port}/readyz", log)


# --- Prometheus HTTP API -------------------------------------------------------------------------


def instant_query(prometheus: str, expr: str, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The result of an instant vector query (raises on an API error)."""
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=timeout)
    body = response.json()
    if body.get("status") != "success":
        raise RuntimeError(f"query {expr!r} failed: {body.get('error', response.text)}")
    data = body["data"]
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    return list(data["result"])


def format_sample(sample: Mapping[str, Any]) -> str:
    """One sample as `{label="value", ...} => 1.23456` (name first when there is one)."""
    labels = dict(sample["metric"])
    name = labels.pop("__name__", "")
    inner = ", ".join(f"{key}={json.dumps(value)}" for key, value in sorted(labels.items()))
    value = float(sample["value"][1])
    return f"{name}{{{inner}}} => {value:.6g}"


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return True
        except (httpx.HTTPError, RuntimeError, ValueError, KeyError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def scraped(prometheus: str, job: str) -> bool:
    """True once Prometheus has scraped `job` successfully."""
    return any(float(s["value"][1]) == 1 for s in instant_query(prometheus, f'up{{job="{job}"}}'))


# --- the trace -----------------------------------------------------------------------------------


class TraceFeed:
    """Sends the bundled trace to llmcost's `POST /v1/usage`: its last hour (in two parts), then in real time."""

    def __init__(self, llmcost: str, *, headers: Mapping[str, str] | None = None) -> None:
        self.url = f"{llmcost}/v1/usage"
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.trace = load_trace()
        # The trace's calls ending now (loop 0 of the demo's seeded mix).
        self.history = list(make_events(self.trace, start=time.time() - trace_span(self.trace), loop=0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._replay, name="trace-feed", daemon=True)

    def history_parts(self, first_seconds: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The history split after its first `first_seconds`."""
        cut = self.history[0]["timestamp"] + first_seconds
        return [e for e in self.history if e["timestamp"] < cut], [e for e in self.history if e["timestamp"] >= cut]

    def post(self, events: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Send events; the response body (raises on an HTTP error)."""
        response = httpx.post(self.url, content=orjson.dumps(list(events)), headers=self.headers, timeout=60)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def start(self) -> None:
        """Replay the trace again in real time, in a background thread, until `stop`."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the replay and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _replay(self) -> None:
        loop = 1
        while not self._stop.is_set():
            pending = list(make_events(self.trace, start=time.time(), loop=loop))
            position = 0
            while position < len(pending) and not self._stop.wait(0.5):
                due = time.time()
                batch = []
                while position < len(pending) and pending[position]["timestamp"] <= due:
                    batch.append(pending[position])
                    position += 1
                if batch:
                    try:
                        self.post(batch)
                    except httpx.HTTPError as exc:  # llmcost stopping or busy: the replay is best effort
                        print(f"trace replay: {exc}", file=sys.stderr)
            loop += 1


# --- make stack ----------------------------------------------------------------------------------


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


def banner(stack: Stack, accepted: int) -> str:
    """Where to look, and the example queries."""
    p = stack.ports
    lines = [
        f"Sent the trace's last hour to llmcost: {accepted:,} calls accepted ({ATTRIBUTION}).",
        "It keeps replaying in real time. State, configs and logs are in " + str(stack.state) + ".",
        "",
        f"  llmcost       {p.url('llmcost')}/          (metrics: {p.url('llmcost')}/metrics)",
        f"  Prometheus    {p.url('prometheus')}/graph     (targets: {p.url('prometheus')}/targets)",
        f"  Alertmanager  {p.url('alertmanager')}/",
        f"  Runbook       {p.url('llmcost')}/runbook",
        "",
        "llmcost's own budget alerts, in Alertmanager (budget stack-requests is crossed at once):",
        f"  amtool alert query --alertmanager.url={p.url('alertmanager')} llmcost_origin=llmcost",
        "",
        "PromQL to try (recording rules fill in after the first evaluations; rates after a few scrapes):",
    ]
    for title, expr in EXAMPLES:
        lines += [f"  # {title}", f"  {expr}"]
    lines += [
        "",
        "From a shell:",
        f"  curl -s {p.url('prometheus')}/api/v1/query --data-urlencode 'query={EXAMPLES[0][1]}'",
        "Grafana is not started here: `docker compose up` runs the whole stack with the dashboards.",
    ]
    return "\n".join(lines)


def check(stack: Stack, expected_calls: int, timeout: float) -> bool:
    """Prove the stack works end to end; prints what it checked and the example queries' outputs."""
    prometheus = stack.ports.url("prometheus")
    alertmanager = stack.ports.url("alertmanager")
    llmcost = stack.ports.url("llmcost")
    alert = {
        "labels": {"alertname": "StackCheck", "severity": "critical"},
        "annotations": {"summary": "scripts/stack.py --check: Alertmanager reaches the llmcost gateway."},
    }

    def requests_scraped() -> bool:
        found = instant_query(prometheus, 'sum(llm_requests_total{job="llmcost"})')
        return bool(found) and float(found[0]["value"][1]) >= expected_calls

    def alertmanager_discovered() -> bool:
        body = httpx.get(f"{prometheus}/api/v1/alertmanagers", timeout=5).json()
        urls = [a["url"] for a in body["data"]["activeAlertmanagers"]]
        return any(u.startswith(f"{alertmanager}/") for u in urls)

    def budget_alert_in_alertmanager() -> bool:
        found = httpx.get(
            f"{alertmanager}/api/v2/alerts", params={"filter": 'llmcost_origin="llmcost"'}, timeout=5
        ).json()
        budget_alerts = [a for a in found if a["labels"]["alertname"].startswith("LLMBudget")]
        for alert in budget_alerts:
            print(f"  {alert['labels']} {alert['status']['state']}: {alert['annotations'].get('summary', '')}")
        return bool(budget_alerts)

    def alert_delivered() -> bool:
        # Alertmanager holds a group for the route's group_wait (10 s for critical) before the webhook.
        alerts = httpx.get(f"{llmcost}/v1/alerts", params={"state": "firing"}, timeout=5).json()
        return any(a["alertname"] == "StackCheck" for a in alerts)

    steps: list[tuple[str, Callable[[], bool]]] = [
        (
            "Prometheus scrapes llmcost, itself and Alertmanager",
            lambda: all(scraped(prometheus, job) for job in ("llmcost", "prometheus", "alertmanager")),
        ),
        (f"Prometheus holds llmcost's {expected_calls:,}+ calls", requests_scraped),
        ("Prometheus sends alerts to Alertmanager", alertmanager_discovered),
        *((f"{expr} has data", _has_data(prometheus, expr)) for _title, expr in EXAMPLES),
        ("Alertmanager delivers to llmcost's webhook with the generated token", alert_delivered),
        ("llmcost pushed its budget alerts to Alertmanager (GET /api/v2/alerts)", budget_alert_in_alertmanager),
    ]
    httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()
    deadline = time.monotonic() + timeout
    ok = True
    for label, condition in steps:
        passed = wait_until(condition, max(0.0, deadline - time.monotonic()))
        print(f"check: {'ok    ' if passed else 'FAILED'} {label}", flush=True)
        ok = ok and passed
    for title, expr in EXAMPLES:
        print(f"\n# {title}\n{expr}")
        for sample in instant_query(prometheus, expr):
            print(f"  {format_sample(sample)}")
    print(f"\ncheck {'passed' if ok else 'FAILED'}", flush=True)
    return ok


def start(server: Server) -> None:
    """Start one server and say so."""
    server.start()
    print(f"started {server.name} (log {server.log_path})", flush=True)


def _has_data(prometheus: str, expr: str) -> Callable[[], bool]:
    return lambda: bool(instant_query(prometheus, expr))


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stack until Ctrl-C, `--duration` or the end of `--check`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--duration", type=float, default=0, help="stop after this many seconds (0: at Ctrl-C; --check: 120)"
    )
    parser.add_argument("--check", action="store_true", help="prove it works end to end, print the outputs, stop")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state folder, wiped first (default .stack)")
    parser.add_argument("--interval", type=float, help="scrape and rule evaluation interval in seconds (default 30)")
    parser.add_argument("--llmcost-port", type=int, default=Ports.llmcost)
    parser.add_argument("--prometheus-port", type=int, default=Ports.prometheus)
    parser.add_argument("--alertmanager-port", type=int, default=Ports.alertmanager)
    args = parser.parse_args(argv)
    ports = Ports(args.llmcost_port, args.prometheus_port, args.alertmanager_port)

    busy = [f"{name} port {port}" for name, port in vars(ports).items() if port_in_use(port)]
    if busy:
        print(f"in use: {', '.join(busy)} (stop what runs there, or pick other --*-port values)", file=sys.stderr)
        return 2
    # Also SIGINT: a shell that starts this in the background hands it SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    stack = build_stack(prepare_dir(args.dir.resolve()), ports, interval=args.interval)
    feed = TraceFeed(ports.url("llmcost"))
    try:
        llmcost, *monitoring = stack.servers
        start(llmcost)
        # Every series exists before Prometheus's first scrape, so increase() over the hour counts the
        # rest of the history arriving afterwards (a series that appears out of nothing counts nothing).
        early, late = feed.history_parts(EARLY_HISTORY_SECONDS)
        accepted = int(feed.post(early)["accepted"])
        for server in monitoring:
            start(server)
        print("waiting for Prometheus's first scrape of llmcost", flush=True)
        if not wait_until(lambda: scraped(ports.url("prometheus"), "llmcost"), timeout=120):
            raise RuntimeError("Prometheus did not scrape llmcost within 120 s")
        accepted += int(feed.post(late)["accepted"])
        feed.start()
        print(banner(stack, accepted), flush=True)
        if args.check:
            return 0 if check(stack, accepted, timeout=args.duration or 120) else 1
        print(f"\nRunning {'for ' + format(args.duration, 'g') + ' s' if args.duration else 'until Ctrl-C'}.")
        deadline = time.monotonic() + args.duration if args.duration else None
        while deadline is None or time.monotonic() < deadline:
            for server in stack.servers:
                if server.proc is not None and server.proc.poll() is not None:
                    raise RuntimeError(f"{server.name} stopped unexpectedly:\n{server.log_tail()}")
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave servers behind
        print("stopping", flush=True)
        feed.stop()
        for server in reversed(stack.servers):
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
