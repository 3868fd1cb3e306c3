"""Shared helpers for the tests of the monitoring assets: Prometheus rules, Grafana dashboards, PromQL.

Used by test_prometheus_rules, test_grafana_dashboards, test_alertmanager_config and test_compose,
and by the live end-to-end test, which runs `live_queries()` against a real Prometheus.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from exporter import metric_names as exporter_metrics
from tests.support import paths

REPO = paths.REPO
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
RULES_DIR = REPO / "prometheus" / "rules"
ALERTMANAGER_CONFIG = REPO / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR = REPO / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
RUNBOOK = REPO / "docs" / "runbook.md"
COMPOSE_FILE = REPO / "docker-compose.yml"

# Alerts raised by the llmcost scheduler itself (docs/alerting.md); Prometheus rules must not reuse the names.
SCHEDULER_ALERTS = frozenset(
    {
        "LLMBudgetInfo",
        "LLMBudgetWarning",
        "LLMBudgetCritical",
        "LLMBudgetExceeded",
        "LLMBudgetForecastOverrun",
        "LLMBudgetRequestCapExceeded",
        "LLMCostSpike",
    }
)
SEVERITIES = ("critical", "warning", "info")
# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})


# --- external tools ------------------------------------------------------------------------------


def tool(name: str) -> str:
    """Absolute path of a required binary; a missing tool fails the test instead of skipping it."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is required on PATH for the monitoring tests (Debian: apt-get install {name})")
    return path


def run(args: Sequence[str], *, cwd: Path = REPO, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a tool with a fixed argv and capture its output (never raises on a non-zero exit)."""
    return subprocess.run(
        [tool(args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


# --- Prometheus rules ----------------------------------------------------------------------------


def rule_files() -> list[Path]:
    """The rule files Prometheus loads (`rule_files: [rules/*.rules.yml]`)."""
    return sorted(RULES_DIR.glob("*.rules.yml"))


def rule_test_files() -> list[Path]:
    """The promtool unit-test files beside them."""
    return sorted(RULES_DIR.glob("*.test.yml"))


def load_yaml(path: Path) -> Any:
    """Parse one YAML file."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@cache
def _rules() -> tuple[dict[str, Any], ...]:
    return tuple(rule for path in rule_files() for group in load_yaml(path)["groups"] for rule in group["rules"])


def rules() -> list[dict[str, Any]]:
    """Every rule of every group in every rule file, in file order (parsed once per test session)."""
    return list(_rules())


def recording_rules() -> dict[str, str]:
    """Recording rule name -> expression."""
    return {rule["record"]: rule["expr"] for rule in rules() if "record" in rule}


def alerting_rules() -> list[dict[str, Any]]:
    """Every alerting rule as written in its file."""
    return [rule for rule in rules() if "alert" in rule]


# --- PromQL --------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<comment>\#[^\n]*)
    | (?P<space>\s+)
    | (?P<var>\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\])
    | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<open>[({\[])
    | (?P<close>[)}\]])
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_PAIRS = {"(": ")", "{": "}", "[": "]"}
# Followed by a parenthesised list of label names, which are not metrics.
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})
# Aggregations may put `by (...)` / `without (...)` between their name and their parenthesis.
_AGGREGATIONS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    }
)
_MATCHER = re.compile(r"""([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)""")


@dataclass(frozen=True)
class Token:
    """One PromQL token with its position in the expression."""

    kind: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Selector:
    """A metric selector: the metric name and its label matchers as {label: (operator, value)}.

    A label matched twice (the `--selector`'s `job="llmcost"` and the dashboards' `job=~"$job"`) has
    its last matcher in `matchers`, and all of them in `every`.
    """

    metric: str
    matchers: Mapping[str, tuple[str, str]]
    every: tuple[tuple[str, str, str], ...] = ()

    def has(self, label: str, op: str, value: str) -> bool:
        """Whether one of the selector's matchers is `label op "value"`."""
        return (label, op, value) in self.every


def tokenize(expr: str) -> list[Token]:
    """Split PromQL (or a Grafana query with $variables) into tokens, dropping spaces and comments."""
    tokens = []
    for match in _TOKEN.finditer(expr):
        kind = match.lastgroup or "other"
        if kind not in ("space", "comment"):
            tokens.append(Token(kind, match.group(), match.start(), match.end()))
    return tokens


def _closing(tokens: Sequence[Token], index: int) -> int:
    """Index of the bracket that closes tokens[index]."""
    depth = 0
    opener = tokens[index].text
    for i in range(index, len(tokens)):
        if tokens[i].kind == "open" and tokens[i].text == opener:
            depth += 1
        elif tokens[i].kind == "close" and tokens[i].text == _PAIRS[opener]:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced {opener!r} at offset {tokens[index].start}")


def _unquote(literal: str) -> str:
    if literal.startswith("`"):
        return literal[1:-1]
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def selectors(expr: str) -> list[Selector]:
    """Every metric selector in an expression, in order.

    Label names (inside `{}` and after by/without/on/ignoring/group_left/group_right), functions and
    aggregations, keywords, numbers, durations, strings and Grafana variables are not metrics.
    """
    tokens = tokenize(expr)
    found: list[Selector] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        opens = following is not None and following.kind == "open" and following.text == "("
        if token.kind == "open" and token.text in "{[":
            i = _closing(tokens, i) + 1  # matchers, ranges and subquery steps hold no metric names
            continue
        if token.kind == "ident":
            word = token.text.lower()
            if word in _LABEL_LIST_KEYWORDS:
                i = _closing(tokens, i + 1) + 1 if opens else i + 1
                continue
            is_aggregation = word in _AGGREGATIONS and following is not None and following.text in ("by", "without")
            if not (word in _KEYWORDS or opens or is_aggregation):
                every: list[tuple[str, str, str]] = []
                if following is not None and following.text == "{":
                    block = expr[following.start : tokens[_closing(tokens, i + 1)].end]
                    every = [(name, op, _unquote(literal)) for name, op, literal in _MATCHER.findall(block)]
                found.append(Selector(token.text, {name: (op, value) for name, op, value in every}, tuple(every)))
        i += 1
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads."""
    return {selector.metric for selector in selectors(expr)}


def is_prometheus_internal(name: str) -> bool:
    """Series Prometheus makes itself (up, scrape_*, ALERTS) or scrapes from itself and Alertmanager."""
    return name in ("up", "ALERTS", "ALERTS_FOR_STATE") or name.startswith(("scrape_", "prometheus_", "alertmanager_"))


@cache
def known_metric_names() -> frozenset[str]:
    """Metric names a rule or a dashboard may use: `exporter.metric_names` plus recording rules."""
    return frozenset(exporter_metrics.sample_names() | set(recording_rules()))


def unknown_metrics(expr: str) -> set[str]:
    """Metric names in an expression that no catalogue entry, recording rule or Prometheus provides."""
    known = known_metric_names()
    return {name for name in metric_names(expr) if name not in known and not is_prometheus_internal(name)}


@cache
def _exporter_metric_labels() -> dict[str, frozenset[str]]:
    return {spec.sample_name: frozenset(spec.labels) for spec in exporter_metrics.ALL}


def metric_labels(name: str) -> frozenset[str] | None:
    """Labels a series of this metric carries, or None when unknown (ALERTS, Prometheus internals).

    A recording rule keeps the labels its level names (`provider_model:` keeps provider and model),
    which is what the level:metric:operations convention promises, and `job`, the installation's.
    """
    exporter_labels = _exporter_metric_labels()
    if name in exporter_labels:
        return exporter_labels[name] | TARGET_LABELS
    if name == "up" or name.startswith("scrape_"):
        return TARGET_LABELS
    if name in recording_rules():
        level = name.split(":", 1)[0]
        every_label = set().union(*exporter_labels.values())
        return frozenset({"job", *(label for label in every_label if re.search(rf"(^|_){label}(_|$)", level))})
    return None


def promql_syntax_errors(expressions: Mapping[str, str]) -> str:
    """Parse expressions with promtool (as recording rules of a scratch file); '' when all parse."""
    rule_list = [{"record": f"check:expression:n{i}", "expr": expr} for i, expr in enumerate(expressions.values())]
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "expressions.rules.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rule_list}]}), encoding="utf-8")
        result = run(["promtool", "check", "rules", str(path)])
    if result.returncode == 0:
        return ""
    names = "\n".join(f"  n{i}: {name}" for i, name in enumerate(expressions))
    return f"{result.stdout}{result.stderr}\nexpressions:\n{names}"


# --- Grafana dashboards --------------------------------------------------------------------------


def dashboards() -> dict[str, dict[str, Any]]:
    """Committed dashboards: file name -> parsed JSON."""
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


@dataclass(frozen=True)
class Query:
    """One PromQL query of a dashboard (or a recording rule), named for error messages."""

    source: str  # dashboard uid, or "recording rule"
    name: str  # panel title and refId, variable name, or rule name
    expr: str


def dashboard_queries(dashboard: Mapping[str, Any]) -> list[Query]:
    """Every panel target's expression, as written (with Grafana variables)."""
    return [
        Query(dashboard["uid"], f"{panel['title']} [{target['refId']}]", target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+),\s*)?(?P<label>\w+)\s*\)\s*$", re.DOTALL)


def label_values_arguments(variable: Mapping[str, Any]) -> tuple[str, str]:
    """The series selector and the label of a `label_values(selector, label)` query variable."""
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    match = _LABEL_VALUES.match(text)
    if match is None or match.group("selector") is None:
        raise ValueError(f"variable {variable['name']} is not label_values(metric, label)")
    return match.group("selector"), match.group("label")


def variable_queries(dashboard: Mapping[str, Any]) -> list[Query]:
    """Template variable queries rewritten as PromQL: label_values(m{...}, l) -> count by (l) (m{...})."""
    found = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text)
        if match is None or match.group("selector") is None:
            raise ValueError(f"{dashboard['uid']}: variable {variable['name']} is not label_values(metric, label)")
        expr = f"count by ({match.group('label')}) ({match.group('selector')})"
        found.append(Query(dashboard["uid"], f"variable {variable['name']}", expr))
    return found


# Values that make a dashboard query run against a live Prometheus: every variable matches all values.
LIVE_BUILTINS = {
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__rate_interval": "5m",
    "__interval": "1m",
    "__interval_ms": "60000",
}
_VARIABLE = re.compile(r"\$\{(?P<braced>\w+)(?::[^}]*)?\}|\$(?P<plain>\w+)|\[\[(?P<old>\w+)(?::[^\]]*)?\]\]")


def substitute(expr: str, values: Mapping[str, str] | None = None, default: str = ".*") -> str:
    """Replace Grafana's $__range, $__rate_interval, $__interval and template variables.

    Built-ins take LIVE_BUILTINS (overridable through `values`), template variables `values[name]`
    or `default` (`.*`: they only ever appear inside `=~"..."` matchers).
    """
    merged = {**LIVE_BUILTINS, **(values or {})}

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("plain") or match.group("old")
        return merged.get(name, default)

    return _VARIABLE.sub(replace, expr)


def live_dashboard_queries(values: Mapping[str, str] | None = None) -> list[Query]:
    """Every dashboard panel and variable query, ready to run against a live Prometheus."""
    found = []
    for dashboard in dashboards().values():
        for query in [*dashboard_queries(dashboard), *variable_queries(dashboard)]:
            found.append(Query(query.source, query.name, substitute(query.expr, values)))
    return found


def live_queries(values: Mapping[str, str] | None = None) -> list[Query]:
    """Every recording rule expression and every dashboard query, for the live end-to-end test."""
    recorded = [Query("recording rule", name, expr) for name, expr in recording_rules().items()]
    return recorded + live_dashboard_queries(values)


# --- docs ----------------------------------------------------------------------------------------

DOCS_DIR = REPO / "docs"
_PROMQL_BLOCK = re.compile(r"^```promql\n(.*?)^```", re.MULTILINE | re.DOTALL)
_PLACEHOLDER = re.compile(r"<(\w+)>")


def doc_queries(values: Mapping[str, str] | None = None) -> list[Query]:
    """Every PromQL query in README.md and docs/*.md, as a reader would paste it.

    A fenced ```promql block is one query, except in the runbook, whose blocks list one query per line
    (each with its `# comment`). Placeholders such as `<budget>` take `values[name]` when given.
    """
    found = []
    for path in [REPO / "README.md", *sorted(DOCS_DIR.glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for block in _PROMQL_BLOCK.finditer(text):
            line = text.count("\n", 0, block.start()) + 2
            if path == RUNBOOK:
                parts = [(line + i, q) for i, q in enumerate(block.group(1).splitlines()) if q.strip()]
            else:
                parts = [(line, block.group(1))]
            for number, query in parts:
                if values is not None:
                    query = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), query)
                found.append(Query(f"{path.relative_to(REPO)}:{number}", "", query))
    return found


def markdown_anchors(path: Path) -> set[str]:
    """GitHub-style anchors of a Markdown file's headings (lowercase, punctuation dropped, - for spaces)."""
    anchors = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        heading = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


# --- what Grafana makes of query results ---------------------------------------------------------
# Ports of the few pieces of Grafana 11's frontend that decide what a panel shows, so that the live
# test can check panels against a real Prometheus without a Grafana: the legend (renderLegendFormat),
# a Prometheus instant query in table format (transformDFToTable) and the `merge` transformation.

_LEGEND = re.compile(r"\{\{\s*(.+?)\s*\}\}")


def render_legend(legend: str, labels: Mapping[str, str]) -> str:
    """A legendFormat as Grafana renders it: each `{{label}}` is the series' value, '' where it has none."""
    return _LEGEND.sub(lambda match: labels.get(match.group(1), ""), legend)


@dataclass(frozen=True)
class Frame:
    """One data frame: its field (column) names in order and its rows."""

    fields: tuple[str, ...]
    rows: tuple[Mapping[str, Any], ...]


def table_frame(series: Sequence[Mapping[str, Any]], value_field: str) -> Frame:
    """An instant query's result (`[{"metric": {...}, "value": [t, v]}]`) in table format.

    As Grafana builds it: a Time column, one column per label of any series (sorted, `__name__`
    included, '' where a series lacks the label), then the value column (`Value #<refId>` when the
    panel has several queries). A query without results gives a frame without fields.
    """
    if not series:
        return Frame((), ())
    labels = sorted({name for s in series for name in s["metric"]})
    rows = tuple(
        {"Time": s["value"][0], **{name: s["metric"].get(name, "") for name in labels}, value_field: s["value"][1]}
        for s in series
    )
    return Frame(("Time", *labels, value_field), rows)


def merge_frames(frames: Sequence[Frame]) -> list[dict[str, Any]]:
    """Grafana's `merge` transformation: rows whose fields common to all frames agree become one row.

    Within such a key, a row joins every earlier row it does not contradict (a field both have with
    different values); one that contradicts them all stays a row of its own.
    """
    data = [frame for frame in frames if frame.fields]
    if not data:
        return []
    key_fields = [name for name in data[-1].fields if all(name in frame.fields for frame in data)]
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    order: list[tuple[tuple[Any, ...], int]] = []
    for frame in data:
        for row in frame.rows:
            key = tuple(row[name] for name in key_fields)
            existing = by_key.setdefault(key, [])
            merged = False
            for index, earlier in enumerate(existing):
                if all(earlier.get(name) in (None, value) for name, value in row.items()):
                    existing[index] = {**earlier, **row}
                    merged = True
            if not merged:
                existing.append(dict(row))
                order.append((key, len(existing) - 1))
    return [by_key[key][index] for key, index in order]
