"""Requests refused for want of the store are logged once per outage, with reminders and an end.

The end-to-end case (a PostgreSQL restart under clients retrying) is tests/e2e/test_ingest_postgresql_restart.py;
this one follows a long outage, whose five-minute reminders an e2e test cannot wait for.
"""

from __future__ import annotations

import logging

import pytest

from exporter.http.store_refusals import StoreRefusals
from exporter.store import StoreUnavailable
from tests.support.clock import FakeClock

DOWN = StoreUnavailable(
    'connection failed: connection to server at "127.0.0.1", port 5432 failed: Connection refused\n'
    "\tIs the server running on that host and accepting TCP/IP connections?"
)


def test_a_ten_minute_outage_logs_a_warning_two_reminders_and_its_end(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1000.0)
    refusals = StoreRefusals(logging.getLogger("test.refusals"), clock=clock)
    caplog.set_level(logging.INFO, logger="test.refusals")
    refusals.answered()  # the store answering, as usual: nothing to say
    for _ in range(601):  # a refused request a second for ten minutes
        refusals.refused(DOWN)
        clock.advance(1)
    refusals.answered()
    refusals.answered()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            'store unavailable: connection failed: connection to server at "127.0.0.1", port 5432 failed: '
            "Connection refused; answering 503 with Retry-After until it answers",
        ),
        (
            "WARNING",
            "store still unavailable after 300 s: 301 requests answered 503 so far (connection failed: connection "
            'to server at "127.0.0.1", port 5432 failed: Connection refused)',
        ),
        (
            "WARNING",
            "store still unavailable after 600 s: 601 requests answered 503 so far (connection failed: connection "
            'to server at "127.0.0.1", port 5432 failed: Connection refused)',
        ),
        ("INFO", "store answers again after 601 s; 601 requests were answered 503 meanwhile"),
    ]


def test_a_second_outage_is_told_apart_from_the_first(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1000.0)
    refusals = StoreRefusals(logging.getLogger("test.refusals"), clock=clock)
    caplog.set_level(logging.INFO, logger="test.refusals")
    for outage in (3, 5):
        for _ in range(outage):
            refusals.refused(DOWN)
            clock.advance(1)
        refusals.answered()
        clock.advance(60)
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split(":")[0] for m in messages] == [
        "store unavailable",
        "store answers again after 3 s; 3 requests were answered 503 meanwhile",
        "store unavailable",
        "store answers again after 5 s; 5 requests were answered 503 meanwhile",
    ]
