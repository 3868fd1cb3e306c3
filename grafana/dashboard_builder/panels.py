"""Panel helpers: targets, the four panel kinds the dashboards use, units and thresholds.

Every panel and target reads from the `${datasource}` variable (board.py defines it); every data
panel has a description and a unit (tests/test_grafana_dashboards.py checks both). Targets hold the
PromQL as written: selector.py adds llmcost's job selector once the dashboard is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Json = dict[str, Any]

DS: Json = {"type": "prometheus", "uid": "${datasource}"}
"""Where every panel and target reads from: the dashboard's data source variable."""

# Grafana unit ids (the panel's `unit`): one name each, so a typo is a NameError, not a blank axis.
USD = "currencyUSD"
RATIO = "percentunit"  # 0..1 shown as a percentage
TIMES = "suffix:×"  # a multiplier, such as a spike ratio
SECONDS = "s"
COUNT = "short"  # a plain number with k/M suffixes
NONE = "none"  # a number shown as it is (counts of alerts, states)
REQ_PER_S = "reqps"
PER_S = "cps"
OPS = "ops"
PER_MIN = "opm"


def _target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> Json:
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,  # the selector is added to the finished dashboard (selector.py)
        "format": "table" if table else "time_series",
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "refId": "",  # numbered by _panel
    }


def _panel(
    kind: str,
    title: str,
    description: str,
    unit: str,
    targets: Sequence[Json],
    *,
    defaults: Json | None = None,
    options: Json | None = None,
    overrides: Sequence[Json] = (),
    extra: Json | None = None,
) -> Json:
    numbered = [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)]
    panel: Json = {
        "datasource": DS,
        "description": description,
        "fieldConfig": {"defaults": {"unit": unit, **(defaults or {})}, "overrides": list(overrides)},
        "options": options or {},
        "targets": numbered,
        "title": title,
        "type": kind,
    }
    panel.update(extra or {})
    return panel


def _thresholds(steps: Sequence[Json] | None = None) -> Json:
    return {"mode": "absolute", "steps": list(steps or [{"color": "green", "value": None}])}


def _reduce() -> Json:
    return {"calcs": ["lastNotNull"], "fields": "", "values": False}


def stat(
    title: str,
    description: str,
    unit: str,
    expr: str,
    *,
    legend: str = "",
    decimals: int | None = None,
    steps: Sequence[Json] | None = None,
    mappings: Sequence[Json] = (),
    no_value: str | None = None,
    text_mode: str = "auto",
    time_from: str | None = None,
    more: Sequence[tuple[str, str]] = (),
) -> Json:
    """A single-number panel from an instant query; `more`: (expr, legend) of further numbers beside it."""
    defaults: Json = {
        "color": {"mode": "thresholds"},
        "mappings": list(mappings),
        "thresholds": _thresholds(steps),
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if no_value is not None:
        defaults["noValue"] = no_value
    options = {
        "colorMode": "value",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": _reduce(),
        "textMode": text_mode,
    }
    extra = {"timeFrom": time_from} if time_from else None
    return _panel(
        "stat",
        title,
        description,
        unit,
        [_target(expr, legend, instant=True), *(_target(e, lg, instant=True) for e, lg in more)],
        defaults=defaults,
        options=options,
        extra=extra,
    )


def timeseries(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[tuple[str, str]],
    *,
    stack: bool = False,
    threshold: float | None = None,
    overrides: Sequence[Json] = (),
    minimum: float | None = 0,
) -> Json:
    """A graph of one or more (expression, legend) range queries."""
    custom: Json = {
        "drawStyle": "line",
        "fillOpacity": 20 if stack else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        "thresholdsStyle": {"mode": "line" if threshold is not None else "off"},
    }
    steps: list[Json] = [{"color": "green", "value": None}]
    if threshold is not None:
        steps.append({"color": "red", "value": threshold})
    defaults: Json = {"color": {"mode": "palette-classic"}, "custom": custom, "thresholds": _thresholds(steps)}
    if minimum is not None:
        defaults["min"] = minimum
    options = {
        "legend": {
            "calcs": ["mean", "lastNotNull"],
            "displayMode": "table",
            "placement": "bottom",
            "showLegend": True,
            "sortBy": "Last *",
            "sortDesc": True,
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return _panel(
        "timeseries",
        title,
        description,
        unit,
        [_target(expr, legend) for expr, legend in targets],
        defaults=defaults,
        options=options,
        overrides=overrides,
    )


def bargauge(
    title: str,
    description: str,
    unit: str,
    expr: str,
    legend: str,
    *,
    steps: Sequence[Json] | None = None,
    maximum: float | None = None,
) -> Json:
    """Horizontal bars, one per series of an instant query (top-N lists, budget usage)."""
    defaults: Json = {"color": {"mode": "thresholds"}, "min": 0, "thresholds": _thresholds(steps)}
    if maximum is not None:
        defaults["max"] = maximum
    options = {
        "displayMode": "gradient",
        "minVizHeight": 16,
        "orientation": "horizontal",
        "reduceOptions": _reduce(),
        "showUnfilled": True,
        "valueMode": "color",
    }
    return _panel(
        "bargauge",
        title,
        description,
        unit,
        [_target(expr, legend, instant=True)],
        defaults=defaults,
        options=options,
    )


def table(
    title: str,
    description: str,
    unit: str,
    columns: Sequence[tuple[str, str, str]],
    *,
    hide: Sequence[str] = ("Time",),
) -> Json:
    """Instant queries merged into one table: columns are (expression, header, unit)."""
    targets = [_target(expr, instant=True, table=True) for expr, _, _ in columns]
    names = {f"Value #{chr(ord('A') + i)}": header for i, (_, header, _) in enumerate(columns)}
    if len(columns) == 1:
        names = {"Value": columns[0][1]}
    overrides = [
        {"matcher": {"id": "byName", "options": header}, "properties": [{"id": "unit", "value": col_unit}]}
        for _, header, col_unit in columns
        if col_unit != unit
    ]
    transformations = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {"excludeByName": dict.fromkeys(hide, True), "renameByName": names},
        },
    ]
    options = {"cellHeight": "sm", "footer": {"show": False}, "showHeader": True}
    return _panel(
        "table",
        title,
        description,
        unit,
        targets,
        defaults={"custom": {"align": "auto", "filterable": True}, "thresholds": _thresholds()},
        options=options,
        overrides=overrides,
        extra={"transformations": transformations},
    )


def row(title: str) -> Json:
    """A section header (rows hold no queries, so they carry no datasource, description or unit)."""
    return {"collapsed": False, "panels": [], "title": title, "type": "row"}


def dashed(series_regex: str) -> Json:
    """A field override drawing the series whose name matches `series_regex` as a dashed line."""
    return {
        "matcher": {"id": "byRegexp", "options": series_regex},
        "properties": [{"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}}],
    }
