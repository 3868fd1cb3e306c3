"""Durable storage of usage events, series totals and rollups (SQLite by default, PostgreSQL in production)."""

from exporter.store.engine import StoreNotFound, store_location
from exporter.store.store import Store, StoreUnavailable

__all__ = ["Store", "StoreNotFound", "StoreUnavailable", "store_location"]
