"""The mixin-style selector of llmcost's own series, put into every query of a built dashboard.

The dashboards are written with the default selector (`job="llmcost"`, the same as
prometheus/build_rules.py, whose functions this module reuses so that rules and dashboards select
series alike). `with_selector` then rewrites every PromQL expression of a finished dashboard (panel
targets, query variables, annotations): the selector goes into every selector of an exporter metric,
so another exporter publishing `llm_cost_usd_total` is never summed in, and replaces the default
wherever a query names it.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "prometheus"))
from build_rules import DEFAULT_SELECTOR, add_selector, check_selector

Json = dict[str, Any]

__all__ = ["DEFAULT_SELECTOR", "check_selector", "select", "with_selector"]


def select(expr: str, selector: str = DEFAULT_SELECTOR) -> str:
    """`expr` with `selector` in every exporter-metric selector (and in place of the default one)."""
    return add_selector(expr, selector).replace(DEFAULT_SELECTOR, selector)


def with_selector(board: Json, selector: str = DEFAULT_SELECTOR) -> Json:
    """A copy of `board` whose every PromQL expression selects llmcost's series with `selector`."""
    board = copy.deepcopy(board)
    for annotation in board["annotations"]["list"]:
        annotation["expr"] = select(annotation["expr"], selector)
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            variable["definition"] = select(variable["definition"], selector)
            variable["query"] = select(variable["query"], selector)
    for panel in _all_panels(board["panels"]):
        for target in panel.get("targets", []):
            target["expr"] = select(target["expr"], selector)
    return board


def _all_panels(panels: list[Json]) -> list[Json]:
    """Panels, with those a collapsed row holds (none today) after their row."""
    return [inner for panel in panels for inner in (panel, *_all_panels(panel.get("panels", [])))]
