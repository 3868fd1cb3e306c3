"""How long `GET /metrics` waits for the store: until just before the scraper's own timeout."""

from __future__ import annotations

import pytest

from exporter.http.scrape import store_wait


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("10", 9.5),  # Prometheus' default scrape_timeout, as it sends it
        ("3", 2.5),
        ("1", 0.75),  # a short timeout keeps most of its time for the store: a quarter for the answer
        (None, 9.5),  # curl, or a scraper that does not say: Prometheus' default
        ("soon", 9.5),
        ("-4", 9.5),
        ("nan", 9.5),
        ("3600", 60.0),  # a very long scrape timeout does not hold a scrape for an hour
    ],
)
def test_a_scrape_waits_for_the_store_until_just_before_the_scrapers_timeout(header: str | None, wait: float) -> None:
    assert store_wait(header) == pytest.approx(wait)
