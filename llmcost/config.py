"""The application's configuration: the exporter's sections plus the alerting sections, in one table.

`exporter.config` parses the sections it owns and runs the validators it is given for the others;
this module is where the application lists them (section name → validator), so every command loads
and checks a file through `load_config` here and `llmcost check-config` lists every problem at once.

The alerting modules are imported only when their section is present: `llmcost ingest` with a config
that has no alerting sections does not load the gateway.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from exporter.config import Config, ExtraSections, Problems
from exporter.config import load_config as _load_config
from exporter.config import parse_config as _parse_config


def _notifications(section: Any, problems: Problems, base: Path) -> None:
    from alerting.gateway.config import validate_notifications

    validate_notifications(section, problems, base)


def _alerting(section: Any, problems: Problems, base: Path) -> None:
    # Two owners keep keys in `alerting:`: the gateway, and the runbook links. Each checks its own;
    # only here are both known, so only here can a misspelt key (`repeat_intervall`) be named rather
    # than silently leave its setting at the default.
    from alerting.gateway.config import ALERTING_KEYS, validate_alerting
    from alerting.links import RUNBOOK_KEYS, validate_runbook_base_url

    if isinstance(section, dict):
        allowed = ALERTING_KEYS | RUNBOOK_KEYS
        problems.extend(
            f"alerting.{key}: unknown key (allowed: {', '.join(sorted(allowed))})"
            for key in section
            if key not in allowed
        )
    validate_alerting(section, problems, base)
    validate_runbook_base_url(section, problems, base)


def _alertmanager(section: Any, problems: Problems, base: Path) -> None:
    from alerting.push.settings import validate_push_section

    validate_push_section(section, problems, base)


def _detection(section: Any, problems: Problems, base: Path) -> None:
    from alerting.spikes.settings import validate_detection

    validate_detection(section, problems, base)


def _budgets(section: Any, problems: Problems, _base: Path) -> None:
    from alerting.budgets.definition import parse_budgets_section

    parse_budgets_section(section, problems)


def _budget_set(section: Any, problems: Problems, _base: Path) -> None:
    from alerting.budgets.origin import validate_budget_set

    validate_budget_set(section, problems)


def _silences(raw: dict[str, Any], problems: Problems) -> None:
    # Only a config with an `alerting:` mapping can ask for silences; others need not load the gateway.
    if isinstance(raw.get("alerting"), dict):
        from alerting.gateway.config import check_silences

        check_silences(raw, problems)


def _detection_within_retention(raw: dict[str, Any], problems: Problems) -> None:
    # Spike detection reads its baseline days from the 5-minute rollups alone, and the pruner folds
    # those older than `retention.rollups_days` into hours: a longer baseline would read folded days as
    # no spend, a baseline too low, and raise false LLMCostSpike alerts once pruning has run.
    retention, detection = raw.get("retention"), raw.get("detection")
    if not isinstance(retention, dict) or not isinstance(detection, dict):
        return
    rollups_days = retention.get("rollups_days")
    if isinstance(rollups_days, bool) or not isinstance(rollups_days, int | float):
        return  # missing (kept for ever) or already reported by the retention section
    from alerting.spikes.settings import parse_detection
    from exporter.retention import DAY_SECONDS

    own: Problems = []
    detector = parse_detection(detection, own).detector
    if own:
        return  # the detection section's own problems are listed already
    needed = math.ceil(detector.buckets_needed * detector.bucket_seconds / DAY_SECONDS)
    if rollups_days < needed:
        problems.append(
            f"retention.rollups_days ({rollups_days:g}) must cover detection.baseline_days "
            f"({detector.baseline_days}): spike detection reads its baseline from 5-minute rollups, which "
            f"pruning folds into hours after rollups_days; set it to at least {needed}"
        )


SECTIONS = ExtraSections(
    validators={
        "notifications": _notifications,
        "alerting": _alerting,
        "alertmanager": _alertmanager,
        "detection": _detection,
        "budgets": _budgets,
        "budget_set": _budget_set,
    },
    checks=(_silences, _detection_within_retention),
)
"""The sections the application adds to the exporter's, in the order their problems are listed."""


def parse_config(raw: Any, *, base: Path | None = None, source: Path | None = None) -> Config:
    """A `Config` from parsed YAML with every section validated (raises `ConfigError` listing every problem)."""
    return _parse_config(raw, base=base, source=source, sections=SECTIONS)


def load_config(path: str | Path | None) -> Config:
    """Read and validate a YAML config file (defaults for None); see `exporter.config.load_config`."""
    return _load_config(path, sections=SECTIONS)
