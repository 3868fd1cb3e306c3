"""The store the first release wrote (tests/data/first-release-store/), loaded on SQLite or PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, text

from exporter.store.engine import create_store_engine
from tests.support.legacy_schema import build_legacy_store
from tests.support.paths import DATA

FIRST_RELEASE = DATA / "first-release-store"
"""Its rows, its /metrics, its config (see the README there)."""


def first_release_rows() -> dict[str, list[dict[str, Any]]]:
    """Every table's rows as the first release left them."""
    return dict(json.loads((FIRST_RELEASE / "store.json").read_text(encoding="utf-8"))["tables"])


def load_first_release_store(url: str) -> None:
    """Build the store at `url` with the release's schema (`0004_scheduler`) and put its rows in."""
    build_legacy_store(url, "0004_scheduler")
    engine = create_store_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.begin() as connection:
            for name, rows in first_release_rows().items():
                if rows:
                    connection.execute(metadata.tables[name].insert(), rows)
            if engine.dialect.name == "postgresql":
                # Rows came with their ids: move each serial column's sequence past them, as the release's
                # own inserts had.
                for table in metadata.sorted_tables:
                    for column in table.columns:
                        if "nextval" in str(column.server_default.arg if column.server_default else ""):
                            connection.execute(
                                text(
                                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                                    f"(SELECT coalesce(max({column.name}), 0) + 1 FROM {table.name}), false)"
                                )
                            )
    finally:
        engine.dispose()


def first_release_config(folder: Path, slack_api_url: str, pd_events_url: str) -> Path:
    """Its `llmcost.yml` (and the `prices.yml` it names) in `folder`, pointed at the recording servers."""
    config = (FIRST_RELEASE / "llmcost.yml").read_text(encoding="utf-8")
    config = config.replace("SLACK_API_URL", json.dumps(slack_api_url)).replace(
        "PD_EVENTS_URL", json.dumps(pd_events_url)
    )
    (folder / "prices.yml").write_text((FIRST_RELEASE / "prices.yml").read_text(encoding="utf-8"), encoding="utf-8")
    path = folder / "llmcost.yml"
    path.write_text(config, encoding="utf-8")
    return path
