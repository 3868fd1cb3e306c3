"""The exporter's config knows its own sections; the application adds the others through `ExtraSections`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporter.config import ConfigError, ExtraSections, parse_config
from llmcost.config import parse_config as parse_app_config


def test_the_exporter_alone_calls_the_application_sections_unknown() -> None:
    with pytest.raises(ConfigError) as bad:
        parse_config({"budgets": [], "listen": "127.0.0.1:9800"})
    assert [p.split(" (")[0] for p in bad.value.problems] == ["budgets: unknown section"]
    assert parse_app_config({"budgets": []}).raw == {"budgets": []}


def test_extra_sections_run_when_present_and_checks_always_in_order() -> None:
    calls: list[str] = []

    def validator(name: str) -> Any:
        def validate(section: Any, problems: list[str], _base: Path) -> None:
            calls.append(name)
            problems.append(f"{name}: {section}")

        return validate

    def check(raw: dict[str, Any], problems: list[str]) -> None:
        calls.append("check")
        problems.append(f"check: {sorted(raw)}")

    sections = ExtraSections(validators={"b": validator("b"), "a": validator("a"), "c": validator("c")}, checks=[check])
    with pytest.raises(ConfigError) as bad:
        parse_config({"a": 1, "b": 2, "listen": 3}, sections=sections)
    assert calls == ["b", "a", "check"]
    assert bad.value.problems == ["listen: must be str, got int", "b: 2", "a: 1", "check: ['a', 'b', 'listen']"]


def test_the_application_lists_every_sections_problems_at_once() -> None:
    raw = {
        "bogus": 1,
        "budgets": [{"name": "x", "scope": "global", "period": "daily", "limit": -1}],
        "detection": {"interval_seconds": -5},
        "notifications": {"routes": {"critical": ["fax"]}},
        "alerting": {"runbook_base_url": "ftp://x", "alertmanager": {"silence_on_ack": True}},
        "alertmanager": {"retries": 99},
    }
    with pytest.raises(ConfigError) as bad:
        parse_app_config(raw)
    paths = [p.split(":")[0] for p in bad.value.problems]
    assert paths == [
        "bogus",
        "notifications.routes.critical",
        "alerting.runbook_base_url",
        "alertmanager.urls",
        "alertmanager.retries",
        "detection.interval_seconds",
        "budgets[0].limit",
        "alerting.alertmanager.silence_on_ack",
    ]


def test_metrics_rank_refresh_seconds_is_a_positive_number() -> None:
    assert parse_config({}).metrics.rank_refresh_seconds == 60.0
    assert parse_config({"metrics": {"rank_refresh_seconds": 5}}).metrics.rank_refresh_seconds == 5.0
    for bad_value, problem in (
        (0, "must be a finite number > 0"),
        (float("nan"), "must be a finite number > 0"),  # YAML .nan: every scrape failed on floor(nan)
        (float("inf"), "must be a finite number > 0"),
        (True, "must be a number, got a boolean"),
        ("1", "must be int or float, got str"),
    ):
        with pytest.raises(ConfigError) as bad:
            parse_config({"metrics": {"rank_refresh_seconds": bad_value}})
        assert f"metrics.rank_refresh_seconds: {problem}" in bad.value.problems


def test_metrics_store_series_is_every_process_or_leader() -> None:
    assert parse_config({}).metrics.store_series == "every_process"
    assert parse_config({"metrics": {"store_series": "leader"}}).metrics.store_series == "leader"
    with pytest.raises(ConfigError) as bad:
        parse_config({"metrics": {"store_series": "one"}})
    assert bad.value.problems == ["metrics.store_series: must be one of every_process, leader, got 'one'"]


def test_a_grafana_url_with_a_password_is_refused_without_repeating_it() -> None:
    """The URL is shown on the console, which needs no token, and in every alert's Dashboard link."""
    with pytest.raises(ConfigError) as bad:
        parse_config({"grafana_url": "https://viewer:s3cret@grafana.example.com/d/llmcost-overview"})
    assert "grafana_url: must not carry a user or password" in str(bad.value)
    assert "s3cret" not in str(bad.value)
    assert parse_config({"grafana_url": "https://grafana.example.com/d/llmcost-overview"}).grafana_url
