"""Money as integer nano-dollars, exact in sums; as dollars only where it leaves (metrics, JSON)."""

from __future__ import annotations

from decimal import Decimal

NANOS_PER_USD = 1_000_000_000


def usd_to_nanos(value: Decimal | float | int | str) -> int:
    """Convert dollars to integer nano-dollars, rounding half-even at the nano-dollar."""
    dec = value if isinstance(value, Decimal) else Decimal(str(value))
    return int((dec * NANOS_PER_USD).to_integral_value())


def nanos_to_usd(nanos: int) -> float:
    """Nano-dollars as a float, for metrics and JSON output."""
    return nanos / NANOS_PER_USD
