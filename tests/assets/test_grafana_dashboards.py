"""Lint the generated Grafana dashboards and their provisioning."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.support import monitoring_assets as assets

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana unit ids the dashboards may use; custom units are `suffix:…`.
UNITS = {"currencyUSD", "percentunit", "short", "none", "s", "reqps", "cps", "ops", "opm"}
DASHBOARDS = assets.dashboards()
IDS = sorted(DASHBOARDS)


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboards", assets.GRAFANA_DIR / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _data_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Panels that query data (rows only group them)."""
    return (panel for panel in assets.panels(dashboard) if panel["type"] != "row")


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def test_there_are_four_dashboards() -> None:
    assert IDS == [
        "llmcost-budgets.json",
        "llmcost-overview.json",
        "llmcost-spikes-alerts.json",
        "llmcost-stack-health.json",
    ]


def test_committed_json_is_the_generator_output(tmp_path: Any) -> None:
    generator = _generator()
    built = generator.build_dashboards()
    assert sorted(built) == IDS
    for name, board in built.items():
        committed = (assets.DASHBOARDS_DIR / name).read_text(encoding="utf-8")
        assert committed == generator.render(board), f"{name} is stale: run python grafana/build_dashboards.py"
    assert generator.main(["--check"]) == 0
    assert generator.main(["--out", str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == IDS


def test_uids_are_fixed_unique_and_match_the_file_names() -> None:
    uids = [board["uid"] for board in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids)
    for name, board in DASHBOARDS.items():
        assert board["uid"] == name.removesuffix(".json")
        assert re.fullmatch(r"llmcost-[a-z-]+", board["uid"]) and len(board["uid"]) <= 40
        assert board["id"] is None, "provisioned dashboards must not carry a database id"


@pytest.mark.parametrize("name", IDS)
def test_dashboard_has_description_tag_and_links_to_the_others(name: str) -> None:
    board = DASHBOARDS[name]
    assert board["title"].startswith("LLM cost / ")
    assert board["description"]
    assert "llmcost" in board["tags"]
    [link] = board["links"]
    assert link["type"] == "dashboards" and link["tags"] == ["llmcost"]
    assert link["includeVars"] and link["keepTime"]


@pytest.mark.parametrize("name", IDS)
def test_datasource_variable_is_used_by_every_panel_and_target(name: str) -> None:
    board = DASHBOARDS[name]
    variables = _variables(board)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == "llmcost-prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
    for panel in _data_panels(board):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


@pytest.mark.parametrize("name", IDS)
def test_every_panel_has_a_description_and_a_unit(name: str) -> None:
    for panel in _data_panels(DASHBOARDS[name]):
        assert len(panel.get("description", "")) > 20, panel["title"]
        unit = panel["fieldConfig"]["defaults"].get("unit", "")
        assert unit in UNITS or unit.startswith("suffix:"), f"{panel['title']}: unit {unit!r}"
        for override in panel["fieldConfig"]["overrides"]:
            for prop in override["properties"]:
                if prop["id"] == "unit":
                    assert prop["value"] in UNITS or prop["value"].startswith("suffix:")


@pytest.mark.parametrize("name", IDS)
def test_panels_sit_on_the_grid_without_overlapping(name: str) -> None:
    taken: set[tuple[int, int]] = set()
    ids = []
    for panel in assets.panels(DASHBOARDS[name]):
        ids.append(panel["id"])
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", IDS)
def test_every_metric_a_query_reads_exists(name: str) -> None:
    board = DASHBOARDS[name]
    for query in [*assets.dashboard_queries(board), *assets.variable_queries(board)]:
        assert assets.unknown_metrics(query.expr) == set(), f"{query.name}: {query.expr}"


@pytest.mark.parametrize("name", IDS)
def test_filter_variables_are_multi_select_with_all_matching_everything(name: str) -> None:
    for variable in _variables(DASHBOARDS[name]).values():
        if variable["type"] != "query" or variable["name"] == "job":
            continue
        assert variable["multi"] and variable["includeAll"], variable["name"]
        assert variable["allValue"] == ".*", "All must also match empty label values (no attribution)"
        assert variable["query"].startswith("label_values("), variable["name"]
        assert variable["refresh"] == 2, "refresh label values when the time range changes"


@pytest.mark.parametrize("name", IDS)
def test_the_job_variable_shows_one_installation_at_a_time(name: str) -> None:
    variable = _variables(DASHBOARDS[name])["job"]
    assert not variable["multi"] and not variable["includeAll"], "two installations' figures are never mixed"
    assert variable["current"] == {}, "Grafana picks the first job: one installation has nothing to choose"
    assert assets.label_values_arguments(variable) == ('up{job="llmcost"}', "job")
    assert variable["refresh"] == 2


@pytest.mark.parametrize("name", IDS)
def test_every_series_and_alert_query_is_of_the_chosen_job(name: str) -> None:
    board = DASHBOARDS[name]
    annotations = [assets.Query(name, a["name"], a["expr"]) for a in board["annotations"]["list"]]
    variables = [q for q in assets.variable_queries(board) if q.name != "variable job"]
    for query in [*variables, *annotations]:
        for selector in assets.selectors(query.expr):
            assert selector.has("job", "=~", "$job"), f'{query.name}: {selector.metric} needs job=~"$job"'


@pytest.mark.parametrize("name", IDS)
def test_every_panel_honours_the_installation_or_says_why_it_cannot(name: str) -> None:
    """Stack health's Alertmanager panel showed the same figures whichever installation was chosen, and
    said nothing of it: a panel either selects `job=~"$job"` in every query, or is listed installation-independent
    (`dashboard_builder.INSTALLATION_INDEPENDENT`) with the reason, which its description gives."""
    independent = dict(_generator().INSTALLATION_INDEPENDENT.get(name, {}))
    for panel in _data_panels(DASHBOARDS[name]):
        unfiltered = sorted(
            {
                selector.metric
                for target in panel.get("targets", [])
                for selector in assets.selectors(target.get("expr", ""))
                if not selector.has("job", "=~", "$job")
            }
        )
        reason = independent.pop(panel["title"], None)
        if reason is None:
            assert not unfiltered, f'{panel["title"]}: {unfiltered} need job=~"$job", or the panel listed with why'
        else:
            assert unfiltered, f"{panel['title']} is listed installation-independent but every query selects $job"
            assert reason in panel["description"], f"{panel['title']}: its description does not say why"
    assert not independent, f"listed installation-independent, but no such panel: {sorted(independent)}"


@pytest.mark.parametrize("name", IDS)
def test_every_query_filters_on_each_dashboard_variable_its_metric_carries(name: str) -> None:
    board = DASHBOARDS[name]
    filters = {n for n, v in _variables(board).items() if v["type"] == "query"}
    assert filters, "every dashboard has filter variables"
    for query in assets.dashboard_queries(board):
        for selector in assets.selectors(query.expr):
            labels = assets.metric_labels(selector.metric) or frozenset()
            for label in sorted(filters & labels):
                assert selector.matchers.get(label) == ("=~", f"${label}"), (
                    f'{query.name}: {selector.metric} needs {label}=~"${label}"'
                )


def test_usage_dashboards_filter_by_provider_model_project_and_service() -> None:
    for name in ("llmcost-overview.json", "llmcost-spikes-alerts.json"):
        assert {"provider", "model", "project", "service"} <= set(_variables(DASHBOARDS[name]))


@pytest.mark.real_process  # promtool parses them: an outside binary, which `make test-fast` does not need
def test_every_query_parses_once_variables_are_substituted() -> None:
    queries = assets.live_dashboard_queries()
    assert queries
    for query in queries:
        assert "$" not in query.expr and "[[" not in query.expr, query
    assert assets.promql_syntax_errors({f"{q.source}: {q.name}": q.expr for q in queries}) == ""


def test_substitution_covers_grafana_builtins_and_variable_syntaxes() -> None:
    expr = 'sum(increase(m{a=~"$a", b=~"${b}", c=~"${c:regex}", d=~"[[d]]"}[$__range])) offset $__interval'
    assert assets.substitute(expr) == 'sum(increase(m{a=~".*", b=~".*", c=~".*", d=~".*"}[1h])) offset 1m'
    assert assets.substitute("rate(m[$__rate_interval])", {"__rate_interval": "2m"}) == "rate(m[2m])"
    assert assets.substitute('m{a=~"$a"}', {"a": "x|y"}) == 'm{a=~"x|y"}'


def test_live_queries_cover_recording_rules_and_every_dashboard_target() -> None:
    queries = assets.live_queries()
    targets = sum(len(assets.dashboard_queries(board)) for board in DASHBOARDS.values())
    variables = sum(len(assets.variable_queries(board)) for board in DASHBOARDS.values())
    assert len(queries) == len(assets.recording_rules()) + targets + variables


def test_time_overrides_are_today_and_this_month() -> None:
    overrides = {p["title"]: p["timeFrom"] for b in DASHBOARDS.values() for p in assets.panels(b) if "timeFrom" in p}
    assert overrides == {"Spend today": "now/d", "Spend this month": "now/M"}


def test_datasource_provisioning_has_the_fixed_uid() -> None:
    config = assets.load_yaml(assets.GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    [source] = config["datasources"]
    assert source["uid"] == "llmcost-prometheus"
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


def test_dashboard_provisioning_loads_one_folder() -> None:
    config = assets.load_yaml(assets.GRAFANA_DIR / "provisioning" / "dashboards" / "llmcost.yml")
    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] and provider["folderUid"] == "llmcost"
    assert provider["allowUiUpdates"] is False
    compose = assets.load_yaml(assets.COMPOSE_FILE)
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard: panel and variable queries, and annotations."""
    exprs = [q.expr for q in assets.dashboard_queries(dashboard)]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v.get("type") == "query"]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"]]
    return exprs


@pytest.mark.parametrize("name", IDS)
def test_every_exporter_metric_carries_the_job_selector(name: str) -> None:
    """The mixin-style selector: another exporter's `llm_cost_usd_total` never shows up in a panel."""
    for expr in _exprs(DASHBOARDS[name]):
        for selector in assets.selectors(assets.substitute(expr)):
            if not (selector.metric.startswith("llm_") or selector.metric == "up"):
                continue  # recorded series (computed from selected ones), Prometheus' own, label names
            assert selector.has("job", "=", "llmcost"), f"{name}: {expr}"


@pytest.mark.parametrize("name", IDS)
def test_llmcost_alerts_are_annotations(name: str) -> None:
    annotations = {a["name"]: a["expr"] for a in DASHBOARDS[name]["annotations"]["list"]}
    assert annotations == {
        "Prometheus alerts": 'ALERTS{alertname=~"LLM.*", alertstate="firing", job="llmcost", job=~"$job"}',
        "llmcost alerts": (
            'sum by (alertname, severity) (llm_alerts_active{job="llmcost", state="firing", job=~"$job"}) > 0'
        ),
    }


def test_dashboards_render_with_another_selector(tmp_path: Any) -> None:
    generator = _generator()
    assert generator.main(["--out", str(tmp_path), "--selector", 'job="llm-cost", cluster="eu-1"']) == 0
    text = "".join(path.read_text(encoding="utf-8") for path in tmp_path.iterdir())
    assert 'job=\\"llmcost\\"' not in text
    assert text.count('job=\\"llm-cost\\", cluster=\\"eu-1\\"') > 50
    generator.main(["--out", str(tmp_path / "default")])  # the module-level selector back to its default


def test_budget_lines_in_the_budgets_own_units_say_which_unit() -> None:
    """The "Spent against limit" and "Burn rate per hour" panels draw usd, tokens and requests budgets
    on one plain axis: a $18 budget and a 3,116-request one were told apart by name only."""
    panels = [p for p in _data_panels(DASHBOARDS["llmcost-budgets.json"]) if p["type"] == "timeseries"]
    in_own_unit = [p for p in panels if p["fieldConfig"]["defaults"]["unit"] in ("short", "none")]
    assert in_own_unit
    for panel in in_own_unit:
        for target in panel["targets"]:
            assert "{{unit}}" in target["legendFormat"], (panel["title"], target["legendFormat"])
