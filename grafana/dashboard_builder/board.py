"""The frame every llmcost dashboard shares: variables, alert annotations, links and the grid.

A dashboard is a list of sections; a section is rows of cells, a cell is (panel, width, height) on
Grafana's 24-column grid. `dashboard` places them top to bottom, numbers the panels, and adds what
every dashboard has: the data source, installation and filter variables, llmcost's alerts as annotations, the link
to the other dashboards (tag `llmcost`), UTC time and a one-minute refresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .panels import DS, Json, row
from .selector import INSTALLATION

Cell = tuple[Json, int, int]
"""A panel and its width and height in grid units."""

DATASOURCE_UID = "llmcost-prometheus"
"""The uid grafana/provisioning/datasources/prometheus.yml gives llmcost's Prometheus."""
TAG = "llmcost"
SCHEMA_VERSION = 39


def _layout(rows: Iterable[Sequence[Cell]]) -> list[Json]:
    """Place (panel, width, height) rows on Grafana's 24-column grid, top to bottom, and number them."""
    panels: list[Json] = []
    y = 0
    for line in rows:
        x, height = 0, 0
        for panel, width, h in line:
            if x + width > 24:
                raise ValueError(f"row overflows 24 columns at {panel['title']!r}")
            panels.append(dict(panel, gridPos={"h": h, "w": width, "x": x, "y": y}, id=len(panels) + 1))
            x, height = x + width, max(height, h)
        y += height
    return panels


def section(title: str) -> list[Cell]:
    """A full-width row header opening a section of the dashboard."""
    return [(row(title), 24, 1)]


def datasource_variable() -> Json:
    """The ${datasource} variable every panel and query uses; defaults to the provisioned source."""
    return {
        "current": {"selected": False, "text": "Prometheus (llmcost)", "value": DATASOURCE_UID},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def installation_variable() -> Json:
    """The `job` variable: which llmcost installation the dashboard shows (selector.for_installation).

    One value at a time, never "All": two installations' spend added up, or their budgets side by side
    under one name, is the mix-up the variable is there to avoid. Grafana selects the first job it
    finds, so with one installation there is nothing to choose.
    """
    query = f'label_values(up{{job="llmcost"}}, {INSTALLATION})'
    variable = _label_query(INSTALLATION, "Installation", query)
    variable.update(current={}, includeAll=False, multi=False)
    variable["description"] = "The llmcost installation (its scrape job) when Prometheus scrapes several."
    return variable


def query_variable(name: str, label: str, query: str) -> Json:
    """A multi-select label filter; "All" is `.*`, so it also matches empty values (no attribution)."""
    variable = _label_query(name, label, query)
    variable.update(allValue=".*", current={"selected": True, "text": ["All"], "value": ["$__all"]})
    return variable


def _label_query(name: str, label: str, query: str) -> Json:
    """A variable whose values a PromQL `label_values` query lists, refreshed with the time range."""
    return {
        "current": {},
        "datasource": DS,
        "definition": query,
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


def usage_variables(metric: str) -> list[Json]:
    """Provider, model, project and service filters, each narrowed by the ones before it."""
    return [
        query_variable("provider", "Provider", f"label_values({metric}, provider)"),
        query_variable("model", "Model", f'label_values({metric}{{provider=~"$provider"}}, model)'),
        query_variable(
            "project", "Project", f'label_values({metric}{{provider=~"$provider", model=~"$model"}}, project)'
        ),
        query_variable(
            "service",
            "Service",
            f'label_values({metric}{{provider=~"$provider", model=~"$model", project=~"$project"}}, service)',
        ),
    ]


def alert_annotations() -> list[Json]:
    """The alerts on every time axis: those of the Prometheus rules, and those llmcost raises itself."""

    def annotation(name: str, expr: str, color: str, title: str) -> Json:
        return {
            "datasource": DS,
            "enable": True,
            "expr": expr,
            "hide": False,
            "iconColor": color,
            "name": name,
            "step": "1m",
            "tagKeys": "alertname,severity",
            "textFormat": "",
            "titleFormat": title,
            "useValueForTime": False,
        }

    return [
        annotation(
            "Prometheus alerts",
            'ALERTS{alertname=~"LLM.*", alertstate="firing", job="llmcost"}',
            "red",
            "{{alertname}}",
        ),
        annotation(
            "llmcost alerts",
            'sum by (alertname, severity) (llm_alerts_active{state="firing"}) > 0',
            "orange",
            "{{alertname}} ({{severity}})",
        ),
    ]


def dashboards_link() -> Json:
    """The link to every llmcost dashboard (by tag), keeping the time range and the filters."""
    return {
        "asDropdown": False,
        "icon": "external link",
        "includeVars": True,
        "keepTime": True,
        "tags": [TAG],
        "targetBlank": False,
        "title": "LLM cost dashboards",
        "tooltip": "",
        "type": "dashboards",
        "url": "",
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: Sequence[Json],
    rows: Iterable[Sequence[Cell]],
    *,
    time_from: str = "now-24h",
) -> Json:
    """A complete dashboard with the shared tag, links, refresh and time settings."""
    return {
        "annotations": {"list": alert_annotations()},
        "description": description,
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [dashboards_link()],
        "liveNow": False,
        "panels": _layout(rows),
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": [TAG],
        "templating": {"list": [datasource_variable(), installation_variable(), *variables]},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        # Budget periods are calendar-aligned in UTC unless configured otherwise; "today" here agrees.
        "timezone": "utc",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "monday",
    }
