"""Durable storage of usage events, series totals and rollups (SQLite by default, PostgreSQL in production)."""

from exporter.store.driver_sql import DriverRow, DriverStatement, driver_cursor, placeholder
from exporter.store.engine import StoreNotFound, store_location
from exporter.store.store import Store, StoreUnavailable

__all__ = [
    "DriverRow",
    "DriverStatement",
    "Store",
    "StoreNotFound",
    "StoreUnavailable",
    "driver_cursor",
    "placeholder",
    "store_location",
]
