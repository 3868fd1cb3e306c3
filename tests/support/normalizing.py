"""What the normalize tests share: a fixed "now", the token counts of an event, raw record → parsed event."""

from __future__ import annotations

from typing import Any

from exporter.events import TOKEN_FIELDS, UsageEvent, parse_event
from exporter.normalize import to_canonical

NOW = 2_000_000_000.0


def tokens_of(event: UsageEvent | dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(input, cache_read, cache_write, output, reasoning) of an event or canonical dict."""
    if isinstance(event, UsageEvent):
        return tuple(getattr(event, name) for name in TOKEN_FIELDS)  # type: ignore[return-value]
    return tuple(event.get(name, 0) for name in TOKEN_FIELDS)  # type: ignore[return-value]


def canonical(raw: dict[str, Any]) -> UsageEvent:
    """The event a raw record becomes: mapped to the canonical form, then parsed at `NOW`."""
    return parse_event(to_canonical(raw), now=NOW)


def usage_event(usage: Any, provider: str = "openai", **fields: Any) -> UsageEvent:
    """The event of a record carrying this provider `usage` object (model "m"), plus any other `fields`."""
    return canonical({"provider": provider, "model": "m", "usage": usage, **fields})
