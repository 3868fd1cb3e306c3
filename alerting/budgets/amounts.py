"""Budget amounts and ratios as people read them, one way everywhere (check, console, `budgets list`).

Spend is kept in nano-dollars and a hard budget refuses by the cent, so a figure shown beside a limit
keeps its cents however large ("$4,999.60 of $5,000.00", never "$5,000 of $5,000"), keeps two
significant digits below a cent ("$0.0004", never "$0.00"), takes more decimals where it would read as
the limit beside it ("$4,999.996 of $5,000.000", `usd_apart`), and a ratio is rounded down, so a budget
short of its limit never reads "100%". One module for the check, the alerts, the console and the CLI.
"""

from __future__ import annotations

import math


def usd(value: float) -> str:
    """Dollars in cents, or with two significant digits below a cent ($0.0003, never "$0.00"); "-$1.50"."""
    if value < 0 and usd(-value) != "$0.00":
        return "-" + usd(-value)
    if value == 0 or abs(value) >= 0.01:
        return f"${value:,.2f}"
    decimals = min(9, 1 - math.floor(math.log10(abs(value))))  # spend is kept in nano-dollars
    shown = f"{value:.{decimals}f}".rstrip("0")
    # Below half a nano-dollar (a float sum's or a projection's remainder) nothing is left to show.
    return "$0.00" if float(shown + "0") == 0 else f"${shown}"


def usd_apart(value: float, other: float) -> tuple[str, str]:
    """Two different amounts as `usd` writes them, with more decimals while they would read alike.

    A call of $0.5049 over a $0.50 per-request cap must not read "$0.50 exceeds the cap of $0.50".
    """
    shown = usd(value), usd(other)
    decimals = 2
    while shown[0] == shown[1] and value != other and decimals < 9:
        decimals += 1
        shown = f"${value:,.{decimals}f}", f"${other:,.{decimals}f}"
    return shown


def amount(unit: str, value: float) -> str:
    """A figure in a budget's unit: "$4,999.60", "3,530 tokens", "1 request"."""
    if unit == "usd":
        return usd(value)
    shown = f"{value:,.0f}"
    name = unit[:-1] if shown == "1" else unit  # "1 request", "2 requests" (a projected 0.8 too reads "1")
    return f"{shown} {name}"


def amounts_apart(unit: str, value: float, other: float) -> tuple[str, str]:
    """Two figures in a budget's unit (`amount`), dollars with the decimals that tell them apart (`usd_apart`)."""
    return usd_apart(value, other) if unit == "usd" else (amount(unit, value), amount(unit, other))


def percent(ratio: float, decimals: int = 0) -> str:
    """A ratio as a percentage rounded down: 0.99992 is "99%" (or "99.9%"), only a reached limit "100%"."""
    scale = 10**decimals
    floored = math.floor(round(ratio * 100 * scale, 6)) / scale  # round first: 0.29 * 100 is 28.999…
    return f"{floored:,.{decimals}f}%"
