"""The contract every notifier fulfils, and the helpers they share for errors they report."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable

from alerting.model import DeliveryResult, Notification
from alerting.notify.text_limits import truncate

REDACTED = "[REDACTED]"

# Credentials that must not leak even when nobody passed them to `redact` (a token pasted into a label,
# a webhook URL echoed in a server's error).
_CREDENTIAL_PATTERNS = (
    re.compile(r"xox[a-z]-[A-Za-z0-9-]+"),  # Slack bot, user and app tokens
    re.compile(r"https://hooks\.slack\.com/\S+"),  # Slack incoming webhooks
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{16,}"),  # Authorization header values
    re.compile(r"(?<=://)[^/@\s:]+:[^/@\s]+(?=@)"),  # user:password@ in URLs
)


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


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Replace every given secret, and anything shaped like a credential, with `[REDACTED]`."""
    # Longest first, so a secret containing another is replaced whole.
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern in _CREDENTIAL_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


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


def one_line(text: str, limit: int = 300) -> str:
    """Squash `text` onto one line of at most `limit` characters, for errors quoting a server's reply."""
    return truncate(" ".join(text.split()), limit)
