"""How long `GET /metrics` waits for the store: until one second before the scraper's own timeout."""

from __future__ import annotations

import pytest

from exporter.http.scrape import store_wait


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("10", 9.0),  # Prometheus' default scrape_timeout, as it sends it
        ("3", 2.0),
        ("1.2", 0.5),  # never less than half a second: the store gets a chance
        (None, 9.0),  # curl, or a scraper that does not say: Prometheus' default
        ("soon", 9.0),
        ("-4", 9.0),
        ("nan", 9.0),
        ("3600", 60.0),  # a very long scrape timeout does not hold a scrape for an hour
    ],
)
def test_a_scrape_waits_for_the_store_until_just_before_the_scrapers_timeout(header: str | None, wait: float) -> None:
    assert store_wait(header) == wait
