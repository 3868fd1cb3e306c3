"""The mixin-style selector of llmcost's own series, put into every query of a built dashboard.

The dashboards are written with the default selector (`job="llmcost"`, the same as
prometheus/build_rules.py, whose functions this module reuses so that rules and dashboards select
series alike). `with_selector` then rewrites every PromQL expression of a finished dashboard (panel
targets, query variables, annotations): the selector goes into every selector of an exporter metric,
so another exporter publishing `llm_cost_usd_total` is never summed in, and replaces the default
wherever a query names it.

Every selector of a series (exporter metrics, recorded series, `up`, `scrape_*`, `ALERTS`) also gets
`job=~"$job"`: the dashboards' `job` variable chooses one llmcost installation (staging or prod, one
region) when a Prometheus scrapes several, each as its own job, and the recording rules keep `job` for
that (prometheus/rules/llmcost-recording.rules.yml). With one installation the variable has one value
and the figures are what they were without it.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "prometheus"))
from build_rules import DEFAULT_SELECTOR, add_selector, check_selector

Json = dict[str, Any]

__all__ = ["DEFAULT_SELECTOR", "INSTALLATION", "check_selector", "for_installation", "select", "with_selector"]

INSTALLATION = "job"
"""The label, and the dashboard variable, that tells one llmcost installation from another."""
_CHOSEN = f'{INSTALLATION}=~"${INSTALLATION}"'
# A series name outside a string and not a function's (a recorded `level:metric:operations` name too),
# with its label matchers if it has any.
_SERIES = re.compile(
    r"""(?<![:\w$"])(?P<name>ALERTS|up|scrape_[a-z_]+|llm_[a-z0-9_]+|[a-z_]*:llm_[a-z0-9_]+:[a-z0-9_]+)"""
    r"""(?![:\w(])(?P<braces>\{[^{}]*\})?"""
)


def select(expr: str, selector: str = DEFAULT_SELECTOR) -> str:
    """`expr` with `selector` in every exporter-metric selector (and in place of the default one)."""
    return add_selector(expr, selector).replace(DEFAULT_SELECTOR, selector)


def for_installation(expr: str) -> str:
    """`expr` with `job=~"$job"` in every series selector: only the installation the dashboard shows."""

    def one(match: re.Match[str]) -> str:
        name, braces = match["name"], match["braces"]
        inner = braces[1:-1].strip() if braces else ""
        if _CHOSEN in inner:
            return match.group(0)
        return f"{name}{{{inner}, {_CHOSEN}}}" if inner else f"{name}{{{_CHOSEN}}}"

    return _SERIES.sub(one, expr)


def with_selector(board: Json, selector: str = DEFAULT_SELECTOR) -> Json:
    """A copy of `board` whose every PromQL expression selects the chosen installation's series with `selector`.

    The `job` variable's own query lists every installation the selector picks.
    """
    board = copy.deepcopy(board)
    for annotation in board["annotations"]["list"]:
        annotation["expr"] = for_installation(select(annotation["expr"], selector))
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        for key in ("definition", "query"):
            expr = select(variable[key], selector)
            # The `job` variable lists every installation; every other one only the chosen one's values.
            variable[key] = expr if variable["name"] == INSTALLATION else for_installation(expr)
    for panel in _all_panels(board["panels"]):
        for target in panel.get("targets", []):
            target["expr"] = for_installation(select(target["expr"], selector))
    return board


def _all_panels(panels: list[Json]) -> list[Json]:
    """Panels, with those a collapsed row holds (none today) after their row."""
    return [inner for panel in panels for inner in (panel, *_all_panels(panel.get("panels", [])))]
