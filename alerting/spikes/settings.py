"""The `detection:` config section: how often, over which label sets, and the detector's settings.

`validate_detection` is in the application's config table, so `llmcost check-config` and `load_config`
report a bad `detection:` section with every other problem.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from alerting.spikes.detection import DetectionConfig
from exporter.config import Config, ConfigError
from exporter.store.schema import BUCKET_SECONDS

WATCHABLE_LABELS = ("provider", "model", "project", "service", "user")
"""Labels a watched series may be split by (`status` is not a spend dimension)."""


@dataclass(frozen=True)
class SpikeSettings:
    """The `detection:` section: how often, over which label sets, and the detector's settings."""

    interval_seconds: float = 60.0
    series: tuple[tuple[str, ...], ...] = ((), ("project",), ("provider", "model"))
    max_series_per_group: int = 1000
    detector: DetectionConfig = field(default_factory=DetectionConfig)


# Lower bounds of the detector keys docs/detection.md documents; the detector's other settings may be set
# too (advanced), with their type taken from their default. `bucket_seconds` is the store's, not a choice.
_MINIMUMS: dict[str, float] = {"window_minutes": 5, "baseline_days": 1, "multiplier": 1.0, "min_spend_usd": 0.0}
_DETECTOR_DEFAULTS = {f.name: f.default for f in fields(DetectionConfig) if f.name != "bucket_seconds"}
_KEYS = {"interval_seconds", "series", "max_series_per_group", *_DETECTOR_DEFAULTS}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_detection(section: Any, problems: list[str]) -> SpikeSettings:
    """Typed settings from the raw `detection:` section, appending every problem found to `problems`."""
    if section is None:
        return SpikeSettings()
    if not isinstance(section, Mapping):
        problems.append(f"detection: must be a mapping, got {type(section).__name__}")
        return SpikeSettings()
    start = len(problems)
    for key in section:
        if key not in _KEYS:
            problems.append(f"detection.{key}: unknown key (allowed: {', '.join(sorted(_KEYS))})")
    settings = SpikeSettings()
    detector: dict[str, Any] = {}

    interval: Any = section.get("interval_seconds", settings.interval_seconds)
    if not _is_number(interval) or interval < 1:
        problems.append(f"detection.interval_seconds: must be a number >= 1, got {interval!r}")
    cap = section.get("max_series_per_group", settings.max_series_per_group)
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        problems.append(f"detection.max_series_per_group: must be an integer >= 1, got {cap!r}")
    series = _parse_series(section.get("series", [list(s) for s in settings.series]), problems)

    for key, default in _DETECTOR_DEFAULTS.items():
        if key in section:
            value = _detector_value(key, section[key], default, problems)
            if value is not None:
                detector[key] = value
    if len(problems) > start:
        return settings
    try:
        config = DetectionConfig(bucket_seconds=BUCKET_SECONDS, **detector)
    except ValueError as exc:
        problems.append(f"detection: {exc}")
        return settings
    return SpikeSettings(float(interval), series, cap, config)


def _detector_value(key: str, value: Any, default: Any, problems: list[str]) -> Any:
    """The value for a `DetectionConfig` field, checked against the type of its default; None if bad."""
    least = _MINIMUMS.get(key, 0)
    if isinstance(default, tuple):
        if isinstance(value, list) and all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in value):
            return tuple(value)
        problems.append(f"detection.{key}: must be a list of positive integers, got {value!r}")
    elif isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            problems.append(f"detection.{key}: must be an integer >= {least}, got {value!r}")
        elif key.endswith("_minutes") and (value * 60) % BUCKET_SECONDS:
            problems.append(f"detection.{key}: must be a multiple of {BUCKET_SECONDS // 60} minutes")
        else:
            return value
    elif not _is_number(value) or value < least:
        problems.append(f"detection.{key}: must be a number >= {least:g}, got {value!r}")
    else:
        return float(value)
    return None


def _parse_series(value: Any, problems: list[str]) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list) or not value:
        problems.append("detection.series: must be a non-empty list of label lists, e.g. [[], [project]]")
        return ()
    out: list[tuple[str, ...]] = []
    seen: set[frozenset[str]] = set()
    for i, labels in enumerate(value):
        path = f"detection.series[{i}]"
        if not isinstance(labels, list):
            problems.append(f"{path}: must be a list of labels ([] for the global total), got {labels!r}")
            continue
        bad = [label for label in labels if label not in WATCHABLE_LABELS]
        if bad:
            problems.append(f"{path}: unknown label(s) {bad} (allowed: {', '.join(WATCHABLE_LABELS)})")
            continue
        if len(set(labels)) != len(labels):
            problems.append(f"{path}: a label is repeated in {labels}")
            continue
        if frozenset(labels) in seen:
            problems.append(f"{path}: {labels} is watched twice")
            continue
        seen.add(frozenset(labels))
        out.append(tuple(labels))
    return tuple(out)


def detection_settings(config: Config) -> SpikeSettings:
    """Typed settings from a loaded `Config` (raises `ConfigError` listing every problem)."""
    problems: list[str] = []
    settings = parse_detection(config.raw.get("detection"), problems)
    if problems:
        raise ConfigError(problems)
    return settings


def validate_detection(section: Any, problems: list[str], _base: Path) -> None:
    """Append the problems of a `detection:` section."""
    parse_detection(section, problems)


def group_name(labels: Sequence[str]) -> str:
    """The `group` label of a watched label set: `global` for [], else the labels joined by `_`."""
    return "_".join(labels) if labels else "global"
