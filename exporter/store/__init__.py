"""Durable storage of usage events, series totals and rollups (SQLite by default, PostgreSQL in production)."""

from exporter.store.driver_sql import DriverRow, DriverStatement, driver_cursor, placeholder
from exporter.store.migration import (
    EXPORTER_SCHEMA,
    SchemaInUse,
    SchemaPart,
    StoreNotFound,
    UnknownSchema,
    store_location,
)
from exporter.store.store import Store, StoreUnavailable
from exporter.store.writer import skipped_counter

__all__ = [
    "EXPORTER_SCHEMA",
    "DriverRow",
    "DriverStatement",
    "SchemaInUse",
    "SchemaPart",
    "Store",
    "StoreNotFound",
    "StoreUnavailable",
    "UnknownSchema",
    "driver_cursor",
    "placeholder",
    "skipped_counter",
    "store_location",
]
