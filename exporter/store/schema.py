"""Table definitions (SQLAlchemy Core). Alembic migrations create them; the code reads them from here.

Layout, chosen so that no scrape, budget check or detection pass reads raw events:
- `usage_events`: one row per recorded call, unique on `request_id` (the idempotency key). No other
  index: nothing reads raw events on a hot path, and each index costs every insert.
- `usage_series`: one row per label set (provider, model, project, service, user, status) with
  cumulative totals, so `/metrics` reads one row per series.
- `usage_rollup`: per series, per 5-minute bucket totals (5 minutes divides every real UTC offset,
  so calendar periods in any timezone are exact sums of buckets).
- `usage_rollup_hourly`: the same totals per whole UTC hour, for time older than the 5-minute
  rollups' retention (`retention.rollups_days`): the pruner folds 5-minute buckets into hours before
  deleting them, and readers add the two tables (see exporter/store/rollups.py). Kept for ever.
- `ingest_counters`: persisted self counters (accepted, duplicate, rejected, …).

Repricing corrects `usage_events`, `usage_rollup` and budget spend, but `usage_series.cost_nanousd`
stays the cost as first recorded (it backs the `llm_cost_usd_total` counter, which must never go
down); the corrections add up in `cost_adjust_up_nanousd` / `cost_adjust_down_nanousd`. Likewise
`usage_series.unpriced_requests` stays the calls that arrived without a price (`llm_unpriced_requests_total`)
and `unpriced_adjust_requests` adds up, signed, what repricing changed in it.
- `rollup_backfill`: one row per ingest batch that wrote to a bucket older than `LATE_SECONDS`, numbered
  in commit order, so a reader that keeps buckets in memory (the spike detector) re-reads from there.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

BUCKET_SECONDS = 300
HOUR_SECONDS = 3600
LATE_SECONDS = 900
"""A batch touching a bucket older than this (by its ingest time) is logged in `rollup_backfill`;
readers that cache buckets re-read at least this much recent history on every pass."""
BACKFILL_GENERATION = "rollup_backfill.generation"
"""The `ingest_counters` row numbering `rollup_backfill` (its row lock orders the numbers as commits)."""
LABEL_COLUMNS = ("provider", "model", "project", "service", "user", "status")
COUNTER_COLUMNS = (
    "requests",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_nanousd",
    "unpriced_requests",
)
ADJUSTMENT_COLUMNS = ("cost_adjust_up_nanousd", "cost_adjust_down_nanousd", "unpriced_adjust_requests")
"""Repricing corrections per series (`llmcost reprice`), apart from the counters a scrape always reads.

`unpriced_adjust_requests` is signed: `unpriced_requests + unpriced_adjust_requests` is the series' calls
stored without a price now (migration exporter_0005_unpriced_now)."""

metadata = MetaData()

# SQLite wants INTEGER PRIMARY KEY (rowid alias) for fast autoincrement; BigInteger elsewhere.
_ID = BigInteger().with_variant(Integer(), "sqlite")


def _counter_columns() -> list[Column[int]]:
    return [Column(name, BigInteger, nullable=False, server_default="0") for name in COUNTER_COLUMNS]


usage_series = Table(
    "usage_series",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    *(Column(name, String(256), nullable=False) for name in LABEL_COLUMNS),
    *_counter_columns(),
    Column("cost_adjust_up_nanousd", BigInteger, nullable=False, server_default="0"),
    Column("cost_adjust_down_nanousd", BigInteger, nullable=False, server_default="0"),
    Column("unpriced_adjust_requests", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint(*LABEL_COLUMNS, name="uq_usage_series_labels"),
)

usage_events = Table(
    "usage_events",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("request_id", String(256), nullable=False),
    Column("ts", Float, nullable=False),
    Column("series_id", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("cost_nanousd", BigInteger, nullable=False),
    Column("cost_source", String(16), nullable=False),  # supplied | priced | unpriced
    Column("latency_ms", Float, nullable=True),
    Column("meta_json", Text, nullable=True),
    Column("ingested_at", Float, nullable=False),
    Column("cache_write_1h_tokens", BigInteger, nullable=False, server_default="0"),
    Column("price_source", String(256), nullable=True),  # e.g. "genai-prices 0.2.3 bundled data"
    Column("price_from", String(32), nullable=True),  # when that price took effect ("" = always)
    # The `session` field (or `metadata.session_id`); never a metric label (migration exporter_0003_sessions).
    Column("session", String(256), nullable=True),
    UniqueConstraint("request_id", name="uq_usage_events_request_id"),
)
Index(
    "ix_usage_events_session",
    usage_events.c.session,
    usage_events.c.ts,
    sqlite_where=usage_events.c.session.isnot(None),
    postgresql_where=usage_events.c.session.isnot(None),
)
Index(
    "ix_usage_events_session_ts",
    usage_events.c.ts,
    usage_events.c.session,
    sqlite_where=usage_events.c.session.isnot(None),
    postgresql_where=usage_events.c.session.isnot(None),
)

usage_rollup = Table(
    "usage_rollup",
    metadata,
    Column("series_id", BigInteger, nullable=False),
    Column("bucket", BigInteger, nullable=False),  # epoch seconds, multiple of BUCKET_SECONDS
    *_counter_columns(),
    PrimaryKeyConstraint("series_id", "bucket", name="pk_usage_rollup"),
)
Index("ix_usage_rollup_bucket", usage_rollup.c.bucket)

usage_rollup_hourly = Table(
    "usage_rollup_hourly",
    metadata,
    Column("series_id", BigInteger, nullable=False),
    Column("bucket", BigInteger, nullable=False),  # epoch seconds, multiple of HOUR_SECONDS
    *_counter_columns(),
    PrimaryKeyConstraint("series_id", "bucket", name="pk_usage_rollup_hourly"),
)
Index("ix_usage_rollup_hourly_bucket", usage_rollup_hourly.c.bucket)

ingest_counters = Table(
    "ingest_counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Float, nullable=False, server_default="0"),
)

rollup_backfill = Table(
    "rollup_backfill",
    metadata,
    Column("generation", BigInteger, primary_key=True, autoincrement=False),
    Column("oldest_bucket", BigInteger, nullable=False),
    Column("written_at", Float, nullable=False),
)
