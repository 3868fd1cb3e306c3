"""Fixtures shared by the gateway tests (registered as a pytest plugin in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway_harness import Receivers, gateway_db, receivers


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database per test, on SQLite and on PostgreSQL."""
    return gateway_db(request, tmp_path)


@pytest.fixture
def rx() -> Iterator[Receivers]:
    """Recording Slack, PagerDuty and SMTP servers."""
    with receivers() as servers:
        yield servers
