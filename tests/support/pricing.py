"""What the pricing and ingest tests share: times to price at, as UTC timestamps, and the app to post to."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from starlette.testclient import TestClient

from exporter.http.app import build_app
from exporter.services import Services
from tests.support.helpers import make_config


def at(text: str) -> float:
    """A time without zone, e.g. `2025-07-01T12:00:00`, read as UTC: its Unix timestamp."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


JULY_2025 = at("2025-07-01T12:00:00")


def ingest_client(db_url: str, **raw: Any) -> Iterator[TestClient]:
    """The HTTP app on a store at `db_url` (config keys in `raw`), its `Services` as `client.services`."""
    services = Services.build(make_config(db_url, **raw))
    with TestClient(build_app(services)) as test_client:
        test_client.services = services  # type: ignore[attr-defined]
        yield test_client
    services.close()
