"""Checks of one field's value (a label, a count, a number, a timestamp), each naming the field it rejects."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from exporter.events.fields import LABEL_MAX_LEN, MAX_TOKENS, MIN_TIMESTAMP
from exporter.events.usage_event import InvalidEvent


def check_label(name: str, value: Any, *, required: bool) -> str:
    """A label value (`provider`, `project`, …): a printable string of at most `LABEL_MAX_LEN`; "" if absent."""
    if value is None:
        if required:
            raise InvalidEvent(name, "is required")
        return ""
    if not isinstance(value, str):
        raise InvalidEvent(name, f"must be a string, got {type(value).__name__}")
    if required and not value:
        raise InvalidEvent(name, "must not be empty")
    if len(value) > LABEL_MAX_LEN:
        raise InvalidEvent(name, f"is {len(value)} characters long; the limit is {LABEL_MAX_LEN}")
    if not value.isprintable():
        raise InvalidEvent(name, "contains control characters")
    return value


def check_count(name: str, value: Any) -> int:
    """A count: a whole number from 0 to `MAX_TOKENS` (None is 0), else `InvalidEvent` naming `name`."""
    if value is None:
        return 0
    if type(value) is int:
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(name, f"must be a non-negative integer, got {type(value).__name__}")
    else:
        raise InvalidEvent(name, f"must be a whole number, got {value!r}")
    if number < 0:
        raise InvalidEvent(name, f"must be >= 0, got {number}")
    if number > MAX_TOKENS:
        raise InvalidEvent(name, f"is implausibly large ({number})")
    return number


def check_number(name: str, value: Any, upper: float) -> float:
    """A finite number in [0, upper] as a float, else `InvalidEvent` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(name, f"must be a number, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise InvalidEvent(name, "must be a finite number")
    if number < 0:
        raise InvalidEvent(name, f"must be >= 0, got {value}")
    if number > upper:
        raise InvalidEvent(name, f"is implausibly large ({value})")
    return number


_EPOCH_TEXT = re.compile(r"[0-9]+(\.[0-9]*)?")


def parse_timestamp(value: Any, *, now: float, max_future_skew: float) -> float:
    """An RFC 3339 string or epoch seconds, as epoch seconds; naive strings are taken as UTC."""
    if (type(value) is float or type(value) is int) and MIN_TIMESTAMP <= value <= now + max_future_skew:
        return float(value)
    if value is None:
        return now
    if isinstance(value, bool):
        raise InvalidEvent("timestamp", "must be an RFC 3339 string or epoch seconds, got bool")
    if isinstance(value, int | float):
        ts = float(value)
        if math.isnan(ts) or math.isinf(ts):
            raise InvalidEvent("timestamp", "must be a finite number")
        if ts > 1e11:
            raise InvalidEvent("timestamp", f"{value} looks like milliseconds; send epoch seconds")
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            # Loggers often write epoch seconds as a string: say how to send them rather than only "no".
            hint = " (epoch seconds go as a number, not a string)" if _EPOCH_TEXT.fullmatch(text) else ""
            raise InvalidEvent("timestamp", f"is not RFC 3339: {value[:64]!r}{hint}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts = parsed.timestamp()
    else:
        raise InvalidEvent("timestamp", f"must be an RFC 3339 string or epoch seconds, got {type(value).__name__}")
    if ts < MIN_TIMESTAMP:
        raise InvalidEvent("timestamp", "is before the year 2000")
    if ts > now + max_future_skew:
        raise InvalidEvent("timestamp", f"is {ts - now:.0f} s in the future (allowed skew {max_future_skew:.0f} s)")
    return ts
