"""Registers the alerting package's config sections with `exporter.config` (imported for its effect)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import alerting.gateway.config
import alerting.links  # registers `alerting.runbook_base_url`
import alerting.push.settings
import alerting.spikes.settings  # noqa: F401  (registers `detection`)
from alerting.budgets.definition import parse_budgets_section
from exporter.config import SECTION_VALIDATORS


def _validate_budgets(raw: Any, problems: list[str], _base: Path) -> None:
    parse_budgets_section(raw, problems)


SECTION_VALIDATORS["budgets"] = _validate_budgets
