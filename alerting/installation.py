"""Which installation an alert pushed to Alertmanager belongs to: `alertmanager.external_labels`.

Several llmcost installations (each its own store and `llmcost serve`) may push their own alerts to one
Alertmanager. Their alerts have the same names and labels (`LLMBudgetExceeded{budget="monthly", …}`), so
without a label of its own per installation Alertmanager merges them into one alert, and whichever gateway
a receiver names acts on both. As Prometheus' `global.external_labels` do for its alerts, the labels
configured here are added to every alert this installation pushes; coming back through the webhook (or
listed by Alertmanager), an alert of llmcost's is this installation's only when it carries them all, and
they are dropped again so it keeps the fingerprint the scheduler gave it. None configured (the default):
the pushed label sets are what they were, and every alert of llmcost's is taken as this installation's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from alerting.model import ORIGIN_LABEL, PUSHED_ONLY_LABELS, SERIES_ALERTS

PATH = "alertmanager.external_labels"
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
"""Prometheus' label name syntax (names starting `__` are reserved for its internal use)."""
ALERT_LABELS = frozenset({"alertname", "budget", "scope", "key", "provider", "model", "project", "service", "user"})
"""Labels llmcost's own alerts carry (budgets: `budget`/`scope`/`key`; spikes: the watched usage labels).
An external label of one of these names would overwrite the alert's own, and be stripped from it on return."""


def parse_external_labels(value: Any, problems: list[str]) -> dict[str, str]:
    """The `alertmanager.external_labels` mapping (label name → value), appending each problem."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{PATH}: must be a mapping of label names to values, got {type(value).__name__}")
        return {}
    found: dict[str, str] = {}
    for name, label in value.items():
        where = f"{PATH}.{name}"
        if not isinstance(name, str) or not LABEL_NAME.match(name) or name.startswith("__"):
            problems.append(f"{where}: not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)")
        elif name in ALERT_LABELS or name in PUSHED_ONLY_LABELS:
            problems.append(f"{where}: llmcost's alerts carry this label already; choose another name (cluster, …)")
        elif not isinstance(label, str) or not label or "\x00" in label:
            problems.append(f"{where}: must be a non-empty string without NUL characters")
        else:
            found[name] = label
    return found


def returning_labels(labels: Mapping[str, str], external: Mapping[str, str]) -> dict[str, str] | None:
    """An alert's labels as this installation's gateway holds them, or None for another installation's alert.

    A Prometheus rule's alert (no `llmcost_origin`) is returned as it is. One of llmcost's own alerts is this
    installation's when it carries every external label with this installation's value: returned without
    the labels added on the way out (`severity`, `llmcost_origin`, the external labels). Another
    installation's alert is None: acting on it would notify, ack or resolve that installation's problem here.
    """
    if not labels.get(ORIGIN_LABEL):
        return dict(labels)
    if any(labels.get(name) != value for name, value in external.items()):
        return None
    return {k: v for k, v in labels.items() if k not in PUSHED_ONLY_LABELS and k not in external}


def raised_by_llmcost(alertname: str) -> bool:
    """Whether llmcost's scheduler raises alerts of this name (budgets, spikes), rather than a Prometheus rule."""
    return alertname.startswith("LLMBudget") or alertname in SERIES_ALERTS
