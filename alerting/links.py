"""Absolute links llmcost puts in its alerts: its external URL, and the runbook section of each alert.

`external_url` (top level of the config, like Alertmanager's `--web.external-url`) is llmcost's own
public URL; without it the URL is derived from `--listen` (`http://127.0.0.1:9800`; a wildcard
address becomes this host's name). Runbook links are `<base>#<anchor>`, where the base is
`alerting.runbook_base_url` for teams hosting their own copy of the runbook, else
`<external_url>/runbook`, which llmcost serves itself (`alerting.runbook`).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from alerting.spikes.messages import ALERTNAME as SPIKE_ALERTNAME
from exporter.config import Config, http_url_problem

RUNBOOK_PATH = "/runbook"
_NOT_ANCHOR = re.compile(r"[^\w\- ]", re.UNICODE)
_WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104  (recognised, not bound)


def anchor(title: str) -> str:
    """The anchor of a heading, as GitHub makes it: lower case, punctuation dropped, spaces to dashes."""
    return _NOT_ANCHOR.sub("", title.strip().lower()).replace(" ", "-")


def external_url(config: Config) -> str:
    """The public base URL of llmcost, without a trailing slash."""
    if config.external_url:
        return config.external_url.rstrip("/")
    host, _, port = config.listen.rpartition(":")
    host = host.strip("[]")
    if host in _WILDCARDS:
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def runbook_base_url(config: Config) -> str:
    """Where the runbook is read: `alerting.runbook_base_url`, else llmcost's own `/runbook`."""
    section = config.raw.get("alerting")
    configured = section.get("runbook_base_url") if isinstance(section, dict) else None
    if isinstance(configured, str) and configured:
        return configured.split("#", 1)[0]
    return external_url(config) + RUNBOOK_PATH


def runbook_url(config: Config, alertname: str) -> str:
    """The absolute runbook link of one alert."""
    return f"{runbook_base_url(config)}#{quote(anchor(alertname))}"


def budget_path(name: str) -> str:
    """The API path of one budget's status, `/v1/budgets/NAME`, with NAME percent-encoded whole."""
    # safe="": "?", "#" and "%" in a name must not end or bend the path. A "/" is encoded too, for
    # proxies and readers; the route itself takes the whole rest of the path as the name.
    return f"/v1/budgets/{quote(name, safe='')}"


def budget_anchor(name: str) -> str:
    """The console's anchor of one budget's rows, `budget-NAME`, with NAME percent-encoded as in `budget_path`."""
    # Encoded, the id holds no whitespace (an HTML id may not), and a link's fragment `#budget-a%2Fb`
    # matches it as written: browsers look for the fragment as is before decoding it.
    return f"budget-{quote(name, safe='')}"


def instance_anchor(name: str, key: str) -> str:
    """The console's anchor of one instance's row of a `key: "*"` budget, `budget-NAME:KEY` (both encoded)."""
    # quote(safe="") encodes every ":", so the separator cannot come from NAME or KEY: ids stay unique.
    return f"{budget_anchor(name)}:{quote(key, safe='')}"


def budget_page(name: str) -> str:
    """The console's page of one budget with every instance listed, `/?budget=NAME` (NAME encoded whole)."""
    return f"/?budget={quote(name, safe='')}"


def generator_url(config: Config, alertname: str, labels: Mapping[str, str], *, wildcard: bool = False) -> str:
    """Where an alert llmcost raised can be looked at: its budget's rows in the console, else its section.

    A page a person opens from Slack, a mail or PagerDuty: the console shows budgets and spikes without a
    token, where the JSON API (`/v1/budgets/NAME`, `/v1/alerts`) answers a browser 401 once admin tokens
    are configured. An instance of a `key: "*"` budget (`wildcard`) links to that budget's own page, on
    the instance's row: the main page lists only its highest instances.
    """
    name, key = labels.get("budget"), labels.get("key")
    if name and wildcard and key and key != "*":
        return f"{external_url(config)}{budget_page(name)}#{instance_anchor(name, key)}"
    if name:
        return f"{external_url(config)}/#{budget_anchor(name)}"
    return console_url(config, alertname)


def console_url(config: Config, alertname: str) -> str:
    """The console's section showing an alert of this name: spikes for `LLMCostSpike`, else the alerts.

    The spikes section draws each firing series' window against its baseline. A page a person opens
    from Slack or a mail: the console shows both without a token, where the JSON API (`/v1/alerts`)
    answers a browser 401 once admin tokens are configured.
    """
    return f"{external_url(config)}/#{'spikes' if alertname == SPIKE_ALERTNAME else 'alerts'}"


BUDGETS_DASHBOARD = "llmcost-budgets"
SPIKES_DASHBOARD = "llmcost-spikes-alerts"
_SPIKE_VARIABLES = ("provider", "model", "project", "service")
"""The labels of a spike series that the spikes dashboard filters on (its `var-…` variables)."""
INSTALLATION_PARAMETERS = ("orgId", "var-datasource", "var-job")
"""The parameters of `grafana_url`'s query every dashboard link keeps: which installation it shows.

Every dashboard has the `datasource` and `job` (Installation) variables; with two installations in one
Prometheus, a link without `var-job` opens on whichever Grafana selects first, another team's spend.
"""


def installation_query(grafana_url: str) -> list[tuple[str, str]]:
    """The organisation, data source and installation `grafana_url` names (`INSTALLATION_PARAMETERS`), in order."""
    first: dict[str, str] = {}
    for key, value in parse_qsl(urlsplit(grafana_url).query):
        first.setdefault(key, value)  # one each: the Installation variable is single-valued
    return [(name, first[name]) for name in INSTALLATION_PARAMETERS if name in first]


def _query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{key}={quote(value, safe='')}" for key, value in pairs)


def dashboard_url(config: Config, alertname: str, labels: Mapping[str, str]) -> str:
    """The Grafana dashboard of an alert, filtered on it: "" without `grafana_url` or for other alerts.

    `grafana_url` is where the console links (a dashboard URL, e.g. `https://grafana.example.com/d/llmcost-overview`):
    its part before `/d/` is Grafana's root, and its `orgId`, `var-datasource` and `var-job` go into every
    link, so that with several installations in one Prometheus the link opens this one's figures. Budget
    alerts open the Budgets dashboard on their budget, spikes the Spikes dashboard on their series. The
    time range is added when a message is rendered, around the alert's own start (`alerting.notify.templating`).
    """
    if not config.grafana_url:
        return ""
    root = config.grafana_url.split("/d/", 1)[0].split("?", 1)[0].rstrip("/")
    installation = installation_query(config.grafana_url)
    if labels.get("budget"):
        return f"{root}/d/{BUDGETS_DASHBOARD}?{_query([*installation, ('var-budget', labels['budget'])])}"
    if alertname == SPIKE_ALERTNAME:
        organisation = [] if any(key == "orgId" for key, _ in installation) else [("orgId", "1")]
        filters = [(f"var-{k}", labels[k]) for k in _SPIKE_VARIABLES if labels.get(k)]
        return f"{root}/d/{SPIKES_DASHBOARD}?{_query([*organisation, *installation, *filters])}"
    return ""


RUNBOOK_KEYS = frozenset({"runbook_base_url"})
"""The keys of the `alerting:` section the runbook links read."""


def validate_runbook_base_url(section: Any, problems: list[str], _base: Path) -> None:
    """Append the problem of an `alerting:` section's `runbook_base_url`, if any."""
    if not isinstance(section, dict) or "runbook_base_url" not in section:
        return
    value = section["runbook_base_url"]
    if http_url_problem(value):
        problems.append("alerting.runbook_base_url: must be an absolute http(s) URL")
