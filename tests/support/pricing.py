"""What the pricing tests share: times to price at, as UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime


def at(text: str) -> float:
    """A time without zone, e.g. `2025-07-01T12:00:00`, read as UTC: its Unix timestamp."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


JULY_2025 = at("2025-07-01T12:00:00")
