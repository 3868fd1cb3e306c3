"""docs/metrics.md lists every metric llmcost exposes, with the labels it really carries."""

from __future__ import annotations

import re

from exporter import metric_names
from tests.support.paths import REPO


def test_the_metrics_page_lists_every_metric_with_its_labels() -> None:
    page = (REPO / "docs" / "metrics.md").read_text()
    rows: dict[str, str] = {}
    for name, cell in re.findall(r"^\| `(llm_[a-z_]+)` \| \w+ \| (.*) \|$", page, re.M):
        rows[name] = rows[list(rows)[-1]] if cell.startswith("same") else cell  # "same" as the row above
    missing = [spec.sample_name for spec in metric_names.ALL if spec.sample_name not in rows]
    assert missing == [], f"docs/metrics.md does not list {missing}"
    for spec in metric_names.ALL:
        named = set(re.findall(r"`([a-z_]+)`", rows[spec.sample_name]))
        assert set(spec.labels) <= named, f"{spec.sample_name}: labels {spec.labels}, the page names {named}"
