"""The contract every notifier fulfils, and the helpers they share for errors they report."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable

from alerting.model import DeliveryResult, Notification
from alerting.notify.text_limits import truncate
from exporter.redaction import REDACTED, redact

__all__ = ["REDACTED", "Notifier", "one_line", "parse_retry_after", "redact"]


@runtime_checkable
class Notifier(Protocol):
    """Delivers notifications on one channel.

    `send` is synchronous, bounded by the notifier's own timeouts, and reports failures in the returned
    `DeliveryResult` (retryable or final, redacted) instead of raising; retries and backoff belong to the
    caller's outbox, so notifiers never retry or sleep themselves.
    """

    channel: str

    def send(self, notification: Notification) -> DeliveryResult:
        """Deliver one notification once."""
        ...


def parse_retry_after(headers: Mapping[str, Any], now: datetime | None = None) -> float | None:
    """Read a `Retry-After` header (seconds or an HTTP date) as seconds to wait, or None."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if isinstance(value, list):  # some clients keep every value of a header
        value = value[0] if value else None
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def content_kind(headers: Mapping[str, Any]) -> str:
    """The media type of a reply's `Content-Type` header, lower-case without parameters ("" when absent)."""
    value = next((str(v) for k, v in headers.items() if k.lower() == "content-type"), "")
    return value.split(";")[0].strip().lower()


def one_line(text: str, limit: int = 300) -> str:
    """Squash `text` onto one line of at most `limit` characters, for errors quoting a server's reply."""
    return truncate(" ".join(text.split()), limit)
