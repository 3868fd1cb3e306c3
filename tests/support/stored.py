"""Reading back what a running llmcost stored (tests only): events by request id, with their labels."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import create_engine, select

from exporter.events import MEDIA_FIELDS, WEB_SEARCHES
from exporter.store.schema import usage_events, usage_series


def stored_events(db_url: str) -> dict[str, dict[str, Any]]:
    """Every stored event by request id: token fields (with media parts, web searches), cost, labels and metadata."""
    engine = create_engine(db_url)
    try:
        query = select(usage_events, usage_series).join(usage_series, usage_series.c.id == usage_events.c.series_id)
        with engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
    finally:
        engine.dispose()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        row["metadata"] = orjson.loads(row["meta_json"]) if row.get("meta_json") else None
        row["cost_usd"] = row["cost_nanousd"] / 1e9
        for part, _whole in MEDIA_FIELDS:  # kept in the metadata, not in columns of their own
            row[part] = (row["metadata"] or {}).get(part, 0)
        row[WEB_SEARCHES] = (row["metadata"] or {}).get(WEB_SEARCHES, 0)  # likewise
        out[row["request_id"]] = row
    return out
