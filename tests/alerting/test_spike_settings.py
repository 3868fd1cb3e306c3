"""The `detection` config section: defaults, a full section, every problem listed with its path."""

from __future__ import annotations

from typing import Any

import pytest

from alerting.spikes import SpikeSettings, detection_settings, parse_detection
from alerting.spikes.detection import DetectionConfig
from exporter.config import ConfigError
from llmcost.config import parse_config


def test_defaults_follow_the_spec() -> None:
    problems: list[str] = []
    settings = parse_detection({}, problems)
    assert problems == []
    assert settings.interval_seconds == 60
    assert settings.series == ((), ("project",), ("provider", "model"))
    cfg = settings.detector
    assert (cfg.window_minutes, cfg.baseline_days, cfg.multiplier, cfg.min_spend_usd) == (30, 7, 3.0, 1.0)
    assert parse_detection(None, problems) == SpikeSettings()


def test_a_full_section_is_parsed() -> None:
    raw: dict[str, Any] = {
        "detection": {
            "interval_seconds": 30,
            "series": [[], ["user"], ["provider", "model"], ["project", "service"]],
            "window_minutes": 60,
            "baseline_days": 14,
            "multiplier": 4,
            "min_spend_usd": 5,
            "min_history_windows": 10,
            "short_windows_minutes": [10],
            "resolve_multiplier": 2,
            "max_series_per_group": 50,
        }
    }
    settings = detection_settings(parse_config(raw))
    assert settings.interval_seconds == 30
    assert settings.series == ((), ("user",), ("provider", "model"), ("project", "service"))
    assert settings.max_series_per_group == 50
    assert settings.detector == DetectionConfig(
        window_minutes=60,
        baseline_days=14,
        multiplier=4.0,
        min_spend_usd=5.0,
        min_history_windows=10,
        short_windows_minutes=(10,),
        resolve_multiplier=2.0,
    )


def test_every_problem_in_the_section_is_listed_with_its_path() -> None:
    raw = {
        "detection": {
            "interval_seconds": 0,
            "series": [[], ["project", "project"], ["status"], "project", ["provider", "model"], ["model", "provider"]],
            "window_minutes": 7,
            "baseline_days": 0,
            "multiplier": "3",
            "min_spend_usd": -1,
            "frequency": 5,
        }
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    problems = caught.value.problems
    for expected in (
        "detection.interval_seconds:",
        "detection.series[1]: a label is repeated",
        "detection.series[2]: unknown label(s) ['status']",
        "detection.series[3]: must be a list",
        "detection.series[5]: ['model', 'provider'] is watched twice",
        "detection.window_minutes: must be a multiple of 5 minutes",
        "detection.baseline_days: must be an integer >= 1",
        "detection.multiplier: must be a number",
        "detection.min_spend_usd: must be a number >= 0,",
        "detection.frequency: unknown key",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    assert len(problems) == 10, problems


def test_inconsistent_detector_settings_are_reported() -> None:
    problems: list[str] = []
    parse_detection({"multiplier": 2, "resolve_multiplier": 2.5}, problems)
    assert len(problems) == 1 and problems[0].startswith("detection: resolve_multiplier"), problems
    problems = []
    parse_detection({"series": []}, problems)
    assert problems == ["detection.series: must be a non-empty list of label lists, e.g. [[], [project]]"]
