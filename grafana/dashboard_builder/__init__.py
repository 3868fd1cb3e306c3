"""The llmcost Grafana dashboards as code: one module per dashboard, shared helpers beside them.

    selector.py       llmcost's job selector (`--selector`), added to every query of a built dashboard
    panels.py         targets, the stat/timeseries/bargauge/table panels, units, thresholds
    board.py          what every dashboard shares: variables, alert annotations, links, the grid
    overview.py, budgets.py, spikes_alerts.py, stack_health.py   one dashboard each, `build()`

grafana/build_dashboards.py is the command that writes (or `--check`s) grafana/dashboards/*.json.
Dashboards are plain dicts; the JSON is written with sorted keys and a fixed indent so diffs show
only what changed.

Why not grafana-foundation-sdk (PyPI, 1769699998!10.1.0, tried 2026-12-04): its builders emit
fields these dashboards do not carry and cannot drop them. A minimal dashboard with one stat panel
built with it came out with `"style": "dark"` and `"schemaVersion": 36` (the model's fixed default:
the dashboard builder has no schema-version method; ours is 39), no `"id": null` (the builder drops
None, and tests check provisioned dashboards carry a null id), and on the panel
`"repeatDirection": "h"`, `"transparent": false`, `"transformations": []` and `"options": null`.
Keeping the committed JSON byte-identical would need a pass deleting and re-adding those keys after
every build, on top of a 2.2 MB, 53,000-line dependency: longer and less safe than these helpers,
whose every emitted key is visible here and pinned by tests/test_grafana_dashboards.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from . import budgets, overview, spikes_alerts, stack_health
from .panels import Json
from .selector import DEFAULT_SELECTOR, with_selector

OUT_DIR = Path(__file__).resolve().parent.parent / "dashboards"
"""Where the committed dashboards live (grafana/dashboards/, provisioned into Grafana)."""

DASHBOARDS: dict[str, Callable[[], Json]] = {
    "llmcost-overview.json": overview.build,
    "llmcost-budgets.json": budgets.build,
    "llmcost-spikes-alerts.json": spikes_alerts.build,
    "llmcost-stack-health.json": stack_health.build,
}
"""Each dashboard's builder, keyed by its file name under grafana/dashboards/."""

INSTALLATION_INDEPENDENT: dict[str, dict[str, str]] = {
    "llmcost-stack-health.json": stack_health.INSTALLATION_INDEPENDENT,
}
"""Per dashboard file, its panels that show the same whichever installation is chosen, and why (their
description says it too): every other panel's queries select `job=~"$job"` (tests/assets/test_grafana_dashboards.py)."""


def build_dashboards(selector: str = DEFAULT_SELECTOR) -> dict[str, Json]:
    """Every dashboard, keyed by its file name, selecting llmcost's series with `selector`."""
    return {name: with_selector(build(), selector) for name, build in DASHBOARDS.items()}


def render(board: Json) -> str:
    """Stable JSON: sorted keys, two-space indent, non-ASCII kept, trailing newline."""
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
