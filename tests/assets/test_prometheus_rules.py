"""Prometheus config and rules: promtool check/test for real, plus the conventions promtool cannot see."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import metric_names
from tests.support import monitoring_assets as assets

pytestmark = pytest.mark.real_process


def _load_build_rules():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("llmcost_build_rules", assets.REPO / "prometheus" / "build_rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build_rules = _load_build_rules()
RECORD_NAME = re.compile(r"^(?P<level>[a-z_]*):(?P<metric>llm_[a-z0-9_]+):(?P<operations>[a-z0-9_]+)$")


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_promtool_check_config_resolves_rule_files_from_the_repo() -> None:
    result = assets.run(["promtool", "check", "config", str(assets.PROMETHEUS_CONFIG)])
    assert result.returncode == 0, _output(result)
    assert f"SUCCESS: {len(assets.rule_files())} rule files found" in result.stdout, _output(result)


def test_promtool_check_rules() -> None:
    result = assets.run(["promtool", "check", "rules", *map(str, assets.rule_files())])
    assert result.returncode == 0, _output(result)


def test_promtool_unit_tests_pass() -> None:
    files = assets.rule_test_files()
    assert files
    # One promtool per file, in parallel: the day-long cases dominate the wall time otherwise.
    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        results = list(pool.map(lambda path: assets.run(["promtool", "test", "rules", str(path)]), files))
    failures = [
        f"{path.name}: {_output(result)}" for path, result in zip(files, results, strict=True) if result.returncode
    ]
    assert not failures, "\n".join(failures)


def test_every_rule_file_has_a_unit_test_file_beside_it() -> None:
    tested = {
        (path.parent / rule_file).resolve()
        for path in assets.rule_test_files()
        for rule_file in assets.load_yaml(path)["rule_files"]
    }
    assert set(assets.rule_files()) <= tested


@cache
def _unit_tests() -> list[dict]:
    return [test for path in assets.rule_test_files() for test in assets.load_yaml(path)["tests"]]


def test_unit_test_cases_are_named_as_sentences() -> None:
    names = [test.get("name", "") for test in _unit_tests()]
    assert all(re.match(r"^[a-z].* .*[a-z0-9]$", name) for name in names), names
    assert len(names) == len(set(names)), "duplicate test case names"


def test_every_alert_has_a_quiet_case_and_a_firing_case() -> None:
    quiet, firing = set(), set()
    for test in _unit_tests():
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    alerts = {rule["alert"] for rule in assets.alerting_rules()}
    assert alerts - quiet == set(), "alerts without a case that stays quiet"
    assert alerts - firing == set(), "alerts without a case that fires"


def test_every_recording_rule_is_checked_by_a_promql_expr_test() -> None:
    exprs = [case["expr"] for test in _unit_tests() for case in test.get("promql_expr_test", [])]
    used = set().union(*(assets.metric_names(expr) for expr in exprs))
    assert set(assets.recording_rules()) - used == set()


def test_every_metric_a_rule_reads_exists() -> None:
    for rule in assets.rules():
        name = rule.get("record") or rule.get("alert")
        assert assets.unknown_metrics(rule["expr"]) == set(), f"{name} reads metrics nobody exposes"


def test_recording_rules_are_named_level_metric_operations() -> None:
    for name in assets.recording_rules():
        assert RECORD_NAME.match(name), f"{name} is not level:llm_metric:operations"


def test_recording_rule_levels_name_labels_the_series_keep() -> None:
    every_label = {label for spec in metric_names.ALL for label in spec.labels}
    for name in assets.recording_rules():
        level = name.split(":", 1)[0]
        leftover = level
        for label in sorted(every_label, key=len, reverse=True):
            leftover = re.sub(rf"(^|_){label}(?=_|$)", "", leftover)
        assert leftover == "", f"{name}: level mentions {leftover!r}, which is not a label"


def test_alerts_carry_severity_summary_description_and_a_runbook_section() -> None:
    anchors = assets.markdown_anchors(assets.RUNBOOK)
    for rule in assets.alerting_rules():
        name = rule["alert"]
        assert name.startswith("LLMCost") and name not in assets.SCHEDULER_ALERTS, name
        assert rule["labels"]["severity"] in assets.SEVERITIES, name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
        assert rule["annotations"]["runbook_url"] == f"{build_rules.DEFAULT_RUNBOOK_BASE_URL}#{name.lower()}", name
        assert name.lower() in anchors, f"docs/runbook.md has no section for {name}"
        assert re.fullmatch(r"\d+[mh]", rule.get("for", "")), f"{name} needs a for: duration"


def test_the_alert_that_llmcost_is_down_carries_its_first_steps_itself() -> None:
    """Its runbook link is llmcost's own /runbook, down with it: the page must say where to look."""
    [rule] = [r for r in assets.alerting_rules() if r["alert"] == "LLMCostExporterDown"]
    description = " ".join(rule["annotations"]["description"].split())
    for step in ("Status > Targets", "docker compose ps llmcost", "/readyz"):
        assert step in description, step


def test_runbook_sections_match_the_alerts_one_to_one() -> None:
    """Every alert name llmcost or its rules can raise has its section, the cost alerts first."""
    from alerting.budgets.definition import ALERT_FOR_STATE, FORECAST_ALERT, REQUEST_CAP_ALERT
    from alerting.spikes import ALERTNAME as SPIKE_ALERT

    raised_by_llmcost = {*ALERT_FOR_STATE.values(), FORECAST_ALERT, REQUEST_CAP_ALERT, SPIKE_ALERT}
    assert raised_by_llmcost == assets.SCHEDULER_ALERTS
    headings = re.findall(r"^## (\S+)$", assets.RUNBOOK.read_text(encoding="utf-8"), re.MULTILINE)
    cost, stack = headings[: len(raised_by_llmcost)], headings[len(raised_by_llmcost) :]
    assert set(cost) == raised_by_llmcost, f"cost alerts first, each with a section: {headings}"
    assert stack == [rule["alert"] for rule in assets.alerting_rules()]


def test_every_exporter_metric_in_every_rule_carries_the_job_selector() -> None:
    """The mixin-style selector: another exporter's `llm_cost_usd_total` is never summed in."""
    for rule in assets.rules():
        for selector in assets.selectors(rule["expr"]):
            if ":" in selector.metric:  # recorded series, computed from selected ones
                continue
            assert selector.matchers.get("job") == ("=", "llmcost"), (
                f"{rule.get('alert') or rule['record']}: {selector}"
            )
    assert build_rules.main(["--check"]) == 0


def test_rules_render_with_another_selector_and_runbook_base(tmp_path: Path) -> None:
    selector = 'job="llm-cost", cluster="eu-1"'
    assert (
        build_rules.main(["--out", str(tmp_path), "--selector", selector, "--runbook-base-url", "https://c.example/rb"])
        == 0
    )
    rendered = sorted(tmp_path.glob("*.rules.yml"))
    assert [p.name for p in rendered] == [p.name for p in assets.rule_files()]
    result = assets.run(["promtool", "check", "rules", *map(str, rendered)])
    assert result.returncode == 0, _output(result)
    for path in rendered:
        for group in assets.load_yaml(path)["groups"]:
            for rule in group["rules"]:
                for found in assets.selectors(rule["expr"]):
                    if ":" not in found.metric:
                        assert found.matchers.get("job") == ("=", "llm-cost"), found
                        assert found.matchers.get("cluster") == ("=", "eu-1"), found
                if "alert" in rule:
                    assert rule["annotations"]["runbook_url"] == f"https://c.example/rb#{rule['alert'].lower()}"
        # The header says what this copy was rendered with, not that it is the shipped default.
        header = path.read_text().split("\ngroups:")[0]
        assert 'job="llmcost"' not in header and "with its defaults" not in header, path.name
        assert selector in header, path.name
    with pytest.raises(SystemExit):
        build_rules.main(["--out", str(tmp_path), "--selector", "llmcost"])


def test_runbook_queries_read_only_known_metrics() -> None:
    text = assets.RUNBOOK.read_text(encoding="utf-8")
    blocks = re.findall(r"```promql\n(.*?)```", text, re.DOTALL)
    assert blocks
    lines = [line for block in blocks for line in block.splitlines() if line.strip()]
    queries = {f"runbook line {i}": line for i, line in enumerate(lines)}
    for query in queries.values():
        assert assets.unknown_metrics(query) == set(), query
    assert assets.promql_syntax_errors(queries) == ""


def test_promql_doc_queries_read_known_metrics_and_parse() -> None:
    text = (assets.REPO / "docs" / "promql.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```promql\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 8
    for block in blocks:
        assert assets.unknown_metrics(block) == set(), block
    assert assets.promql_syntax_errors({f"promql.md block {i}": b for i, b in enumerate(blocks)}) == ""
    # Outputs come from a live run; until then every output block is an explicit placeholder.
    outputs = re.findall(r"<!-- live-output: ([a-z0-9-]+) -->\n```text\n(.*?)```", text, re.DOTALL)
    assert len(outputs) == text.count("<!-- live-output:")
    assert len({name for name, _ in outputs}) == len(outputs)


def test_every_promql_query_in_the_docs_reads_known_metrics_and_parses() -> None:
    # All of docs/, not only promql.md and the runbook: monitoring.md and pricing.md have queries too.
    queries = assets.doc_queries()
    assert {q.source.split(":")[0] for q in queries} >= {"docs/promql.md", "docs/monitoring.md", "docs/pricing.md"}
    for query in queries:
        assert assets.unknown_metrics(query.expr) == set(), query
    assert assets.promql_syntax_errors({q.source: q.expr for q in queries}) == ""


def test_prometheus_scrapes_llmcost_itself_and_alertmanager() -> None:
    config = assets.load_yaml(assets.PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"llmcost", "prometheus", "alertmanager"} <= set(jobs)
    assert jobs["llmcost"]["static_configs"][0]["targets"] == ["llmcost:9800"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert config["rule_files"] == ["rules/*.rules.yml"]


def test_remote_write_examples_are_commented_out() -> None:
    text = assets.PROMETHEUS_CONFIG.read_text(encoding="utf-8")
    assert "remote_write" not in assets.load_yaml(assets.PROMETHEUS_CONFIG)
    for backend in ("mimir", "thanos-receive", "victoriametrics"):
        assert re.search(rf"^#.*url: http://{backend}", text, re.MULTILINE), backend


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('sum by (project) (rate(llm_cost_usd_total{project=~"$project"}[$__rate_interval]))', {"llm_cost_usd_total"}),
        ("sum(rate(x_total[5m])) by (job) / on (job) group_left (version) build_info", {"x_total", "build_info"}),
        ('label_replace(up, "dst", "$1", "instance", "(.*):.*")', {"up"}),
        ("a > bool 0 and on () b offset 1d unless c @ start()", {"a", "b", "c"}),
        ("count_over_time((sum without (outcome) (x) > 0)[1h:5m] offset 15m) >= 6", {"x"}),
        (":llm_cost_usd:rate5m / (:llm_requests:rate5m > 0)", {":llm_cost_usd:rate5m", ":llm_requests:rate5m"}),
        ('topk(10, max without (instance, job) (m{a="x", b!~"y"})) # a comment naming fake_metric', {"m"}),
        ("time() - vector(1) + scalar(q) * 1e3 + 0x1f - 1h30m ", {"q"}),
        ('{__name__="by_name_only"}', set()),
    ],
)
def test_metric_name_extraction_ignores_labels_functions_keywords_and_strings(expr: str, expected: set[str]) -> None:
    assert assets.metric_names(expr) == expected


def test_selectors_keep_their_label_matchers() -> None:
    [selector] = assets.selectors('rate(m_total{a=~"$a", b!="x\\"y"}[5m])')
    assert selector.metric == "m_total"
    assert selector.matchers == {"a": ("=~", "$a"), "b": ("!=", 'x"y')}


def test_rule_files_are_the_ones_prometheus_loads() -> None:
    names = sorted(path.name for path in assets.rule_files())
    assert names == ["llmcost-alerts.rules.yml", "llmcost-recording.rules.yml"]
    assert all(Path(path).suffixes[-2:] == [".test", ".yml"] for path in assets.rule_test_files())


_EXTRA_SELECTOR = 'job="llm-cost", cluster="eu-1"'


def _on_extra_selector(node: Any) -> Any:
    """A promtool test case moved onto llmcost scraped as `job="llm-cost"` with a `cluster="eu-1"` target label."""
    if isinstance(node, dict):
        out = {key: _on_extra_selector(value) for key, value in node.items()}
        if (labels := out.get("exp_labels")) and labels.get("job") == "llmcost":
            labels.update(job="llm-cost", cluster="eu-1")
        return out
    if isinstance(node, list):
        return [_on_extra_selector(item) for item in node]
    if isinstance(node, str):
        # Input series (`{job="llmcost",instance=…}`) and annotations quoting the selector.
        series = node.replace('job="llmcost",', 'job="llm-cost",cluster="eu-1",')
        # Dashboard links open the alert's installation: its job.
        return series.replace('job="llmcost"', _EXTRA_SELECTOR).replace("var-job=llmcost", "var-job=llm-cost")
    return node


def test_every_alert_keeps_every_label_of_the_selector(tmp_path: Path) -> None:
    """The shipped promtool cases, on rules rendered with an extra selector label: each alert keeps it.

    Dashboards find the rules' alerts with `ALERTS{…, <selector>}` (their annotations, rendered with
    grafana/build_dashboards.py's same --selector), and Alertmanager routes can match `cluster`: an alert whose
    aggregation drops a selector label (`sum by (job, …)`) is invisible there.
    """
    assert build_rules.main(["--out", str(tmp_path), "--selector", _EXTRA_SELECTOR]) == 0
    files = [path for path in assets.rule_test_files() if path.name.startswith("llmcost-alerts.")]
    assert files
    for path in files:
        test = _on_extra_selector(assets.load_yaml(path))
        (tmp_path / path.name).write_text(yaml.safe_dump(test, sort_keys=False), encoding="utf-8")
    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        results = list(pool.map(lambda p: assets.run(["promtool", "test", "rules", str(tmp_path / p.name)]), files))
    failures = [
        f"{path.name}: {_output(result)}" for path, result in zip(files, results, strict=True) if result.returncode
    ]
    assert not failures, "\n".join(failures)


def _dashboard_link(url: str) -> tuple[str, str, set[str]]:
    """(Grafana root, dashboard uid, `var-` names) of a `dashboard_url` annotation, its templates left out."""
    root, _, rest = url.partition("/d/")
    uid, _, query = rest.partition("?")
    return root, uid, set(re.findall(r"[?&]var-(\w+)=", query))


def test_every_alert_links_to_the_dashboard_that_shows_it() -> None:
    """The stack alerts had no `dashboard_url`: no Dashboard button in Slack, no link in mail or PagerDuty."""
    boards = {board["uid"]: board for board in assets.dashboards().values()}
    for rule in assets.alerting_rules():
        root, uid, variables = _dashboard_link(rule["annotations"].get("dashboard_url", ""))
        assert root == build_rules.DEFAULT_GRAFANA_URL, rule["alert"]
        assert uid in boards, rule["alert"]
        assert variables <= {v["name"] for v in boards[uid]["templating"]["list"]}, rule["alert"]
        # Without it, with two installations in one Prometheus, the link opens whichever Grafana selects first.
        assert "job" in variables, f"{rule['alert']}: its dashboard_url does not choose the alert's installation"
        assert uid == ("llmcost-overview" if rule["alert"] == "LLMCostUnpricedModel" else "llmcost-stack-health")


@pytest.mark.parametrize(
    ("grafana_url", "root"),
    [
        ("https://grafana.example.com/d/llmcost-overview?orgId=1", "https://grafana.example.com"),  # as grafana_url
        ("https://example.com/grafana/", "https://example.com/grafana"),
        ("", None),
    ],
)
def test_rules_render_with_another_grafana(tmp_path: Path, grafana_url: str, root: str | None) -> None:
    assert build_rules.main(["--out", str(tmp_path), "--grafana-url", grafana_url]) == 0
    rendered = sorted(tmp_path.glob("*.rules.yml"))
    result = assets.run(["promtool", "check", "rules", *map(str, rendered)])
    assert result.returncode == 0, _output(result)
    shipped = {rule["alert"]: rule for rule in assets.alerting_rules()}
    for path in rendered:
        for group in assets.load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                link = rule["annotations"].get("dashboard_url")
                if root is None:
                    assert link is None, rule["alert"]  # no Grafana with the dashboards: no link
                    continue
                assert link == shipped[rule["alert"]]["annotations"]["dashboard_url"].replace(
                    build_rules.DEFAULT_GRAFANA_URL, root
                )
    with pytest.raises(SystemExit):
        build_rules.main(["--out", str(tmp_path), "--grafana-url", "grafana:3000"])


LOOKBACK_SECONDS = 300.0
"""Prometheus' `--query.lookback-delta` (5m): how old the last sample of a series may be for an instant query."""


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration))


def test_every_recorded_series_outlives_a_missed_evaluation_within_the_lookback() -> None:
    """The daily group evaluated every 5 minutes, the lookback itself: an instant query of `*:increase1d` (the
    "Top services in the last 24 hours" panel) found nothing just before an evaluation was written, after a
    missed one or around a restart. Every group's last two evaluations must fall within the lookback."""
    default = _seconds(assets.load_yaml(assets.PROMETHEUS_CONFIG)["global"]["evaluation_interval"])
    for path in assets.rule_files():
        for group in assets.load_yaml(path)["groups"]:
            interval = _seconds(group["interval"]) if "interval" in group else default
            assert 0 < 2 * interval < LOOKBACK_SECONDS, f"{path.name}: {group['name']} every {interval:g} s"


@pytest.mark.parametrize("since_midnight", [0, 1, 86399])
def test_the_spend_today_curl_asks_a_range_prometheus_takes_at_every_second(
    tmp_path: Path, since_midnight: int
) -> None:
    """docs/promql.md's "Spend today" one-liner, run by bash with `date` saying `since_midnight` s past 00:00 UTC.

    It asked `[$(( $(date +%s) % 86400 ))s]`, which is `[0s]` at 00:00:00 exactly: Prometheus refuses
    it ("duration must be greater than 0"). `curl` is a stand-in printing the query it would send.
    """
    text = (assets.REPO / "docs" / "promql.md").read_text(encoding="utf-8")
    [snippet] = [b for b in re.findall(r"```sh\n(.*?)```", text, re.DOTALL) if "% 86400" in b]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    midnight = 20_430 * 86_400  # 2025-12-08 00:00:00 UTC
    stand_ins = {
        "date": f"#!/bin/sh\necho {midnight + since_midnight}\n",
        "curl": '#!/bin/sh\nfor a in "$@"; do case "$a" in query=*) echo "${a#query=}";; esac; done\n',
    }
    for name, script in stand_ins.items():
        (bin_dir / name).write_text(script, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    ran = subprocess.run(["bash", "-c", snippet], capture_output=True, text=True, env=env, timeout=30, check=True)
    [query] = ran.stdout.splitlines()
    assert assets.promql_syntax_errors({"promql.md spend today": query}) == ""
    [seconds] = re.findall(r"llm_cost_usd_total\[(\d+)s\]", query)
    assert since_midnight <= int(seconds) <= since_midnight + 1, query  # since midnight, a second more at most


_INSTALLATIONS = 'job=~"llmcost-.*"'  # two installations in one Prometheus, as docs/alerting-paths.md renders them


def _absent(job: str | None) -> dict[str, Any]:
    """LLMCostExporterAbsent firing for `job` (None: for the whole selector), rendered with `_INSTALLATIONS`."""
    link = "http://localhost:3000/d/llmcost-stack-health?orgId=1" + (f"&var-job={job}" if job else "")
    return {
        "exp_labels": {"severity": "critical", **({"job": job} if job else {})},
        "exp_annotations": {
            "summary": "Prometheus has no llmcost scrape target.",
            "description": f"The job this alert names, picked by {_INSTALLATIONS} (no job: the selector has matched"
            " nothing all day), has had no target for 10 minutes: the scrape configuration or service discovery lost"
            " llmcost, so none of its metrics or alerts are evaluated.",
            "runbook_url": "http://localhost:9800/runbook#llmcostexporterabsent",
            "dashboard_url": link,
        },
    }


def test_exporter_absent_names_the_installation_a_regex_selector_lost(tmp_path: Path) -> None:
    """Rendered with `--selector 'job=~"llmcost-.*"'`, the alert was `absent(up{job=~"llmcost-.*"})`: absent()
    yields no label of a regex, so the alert had no `job` (Alertmanager's routes and inhibitions, the runbook and
    its Dashboard link could not tell which installation was down), and it fired only once both were gone."""
    assert build_rules.main(["--out", str(tmp_path), "--selector", _INSTALLATIONS]) == 0
    a, b = 'up{job="llmcost-a",instance="a:9800"}', 'up{job="llmcost-b",instance="b:9800"}'
    tests = [
        {
            "name": "fires for the one installation service discovery lost, naming its job, after 10 minutes",
            "interval": "1m",
            "input_series": [{"series": a, "values": "1x5 stale"}, {"series": b, "values": "1x30"}],
            "alert_rule_test": [
                {"alertname": "LLMCostExporterAbsent", "eval_time": "15m", "exp_alerts": []},
                {
                    "alertname": "LLMCostExporterAbsent",
                    "eval_time": "16m",
                    "exp_alerts": [_absent("llmcost-a")],
                },
            ],
        },
        {
            "name": "fires once per installation when both are lost, and for no third one without a job",
            "interval": "1m",
            "input_series": [{"series": a, "values": "1x5 stale"}, {"series": b, "values": "1x5 stale"}],
            "alert_rule_test": [
                {
                    "alertname": "LLMCostExporterAbsent",
                    "eval_time": "20m",
                    "exp_alerts": [_absent(job) for job in ("llmcost-a", "llmcost-b")],
                },
            ],
        },
        {
            "name": "fires for the selector when Prometheus has never scraped an installation",
            "interval": "1m",
            "input_series": [{"series": 'up{job="prometheus",instance="localhost:9090"}', "values": "1x20"}],
            "alert_rule_test": [
                {
                    "alertname": "LLMCostExporterAbsent",
                    "eval_time": "10m",
                    "exp_alerts": [_absent(None)],
                }
            ],
        },
    ]
    cases = tmp_path / "absent.test.yml"
    cases.write_text(
        yaml.safe_dump({"rule_files": ["llmcost-alerts.rules.yml"], "evaluation_interval": "1m", "tests": tests})
    )
    result = assets.run(["promtool", "test", "rules", str(cases)])
    assert result.returncode == 0, _output(result)
