"""Verify that webhook calls really come from Slack or PagerDuty.

Slack (interactivity): `X-Slack-Signature: v0=<hex>` is HMAC-SHA256 keyed with the app's signing secret
over `v0:{X-Slack-Request-Timestamp}:{raw body}`; requests older or newer than five minutes are refused so a
captured request cannot be replayed.

PagerDuty (webhooks v3): `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]` holds one HMAC-SHA256 of the raw
body per active secret (several while a secret is rotated); one match is enough.

Slack's check is slack_sdk's `SignatureVerifier`; PagerDuty has no maintained Python verifier, so its
few lines are here. Both compare in constant time and answer False, never raise, on anything malformed.

`slack_headers_plausible` and `pagerduty_header_plausible` check the headers alone, before the body is
read: a request that no body could make valid (no secret configured, no or a malformed signature, a
stale timestamp) is refused (401) without reading its body, so an unsigned client can neither hold a
connection by trickling one nor get another answer than 401 by sending a large one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import datetime

from slack_sdk.signature import Clock, SignatureVerifier

_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # epoch seconds; 12 digits reach the year 33658


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


class _FixedClock(Clock):
    """slack_sdk's clock, pinned to the time the caller injects (tests and the gateway pass `now`)."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def sign_slack(signing_secret: str, timestamp: int | str, body: bytes) -> str:
    """Compute the `X-Slack-Signature` value Slack would send for this timestamp and body."""
    return "v0=" + _hmac_hex(signing_secret, b"v0:" + str(timestamp).encode("utf-8") + b":" + body)


def slack_headers_plausible(
    signing_secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    now: datetime | float,
    tolerance: float = 300,
) -> bool:
    """False when no body can make the request valid: no secret, missing or malformed headers, a stale timestamp."""
    if not signing_secret or not signing_secret.strip() or not timestamp_header or not signature_header:
        return False
    if not _TIMESTAMP.fullmatch(timestamp_header) or not signature_header.isascii():
        return False
    if not signature_header.strip().startswith("v0="):
        return False
    now_seconds = now.timestamp() if isinstance(now, datetime) else float(now)
    return abs(now_seconds - int(timestamp_header)) <= tolerance


def verify_slack_signature(
    signing_secret: str,
    timestamp_header: str | None,
    body_bytes: bytes,
    signature_header: str | None,
    now: datetime | float,
    tolerance: float = 300,
) -> bool:
    """Return True when the request is signed with `signing_secret` and its timestamp is within tolerance.

    The check itself is slack_sdk's `SignatureVerifier` (constant-time, Slack's own five-minute window).
    This wrapper only screens what would make it raise instead of answering: a timestamp that is not an
    integer, a body that is not UTF-8, a signature with non-ASCII characters (`hmac.compare_digest`
    refuses those), so a forged request is always a 401 and never a 500. `now` is the current time
    (aware datetime or epoch seconds); `tolerance` may only narrow Slack's window.
    """
    if not slack_headers_plausible(signing_secret, timestamp_header, signature_header, now, tolerance):
        return False
    assert timestamp_header is not None and signature_header is not None  # checked just above
    now_seconds = now.timestamp() if isinstance(now, datetime) else float(now)
    try:
        body_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return False
    verifier = SignatureVerifier(signing_secret, clock=_FixedClock(now_seconds))
    return verifier.is_valid(body=body_bytes, timestamp=timestamp_header, signature=signature_header.strip())


def sign_pagerduty(secrets: str | Iterable[str], body: bytes) -> str:
    """Compute the `X-PagerDuty-Signature` value PagerDuty would send, one `v1=` entry per secret."""
    if isinstance(secrets, str):
        secrets = [secrets]
    return ",".join("v1=" + _hmac_hex(secret, body) for secret in secrets)


def pagerduty_header_plausible(secrets: Iterable[str], signature_header: str | None) -> bool:
    """False when no body can make the request valid: no secret configured, or no `v1=` signature offered."""
    if not signature_header or not any(secret for secret in secrets):
        return False
    return any(part.strip().startswith("v1=") and len(part.strip()) > 3 for part in signature_header.split(","))


def verify_pagerduty_signature(secrets: Iterable[str], body_bytes: bytes, signature_header: str | None) -> bool:
    """Return True when any `v1=` signature in the header matches the body under any of `secrets`."""
    if not signature_header:
        return False
    offered = [
        part.strip()[3:].lower().encode("utf-8", "replace")
        for part in signature_header.split(",")
        if part.strip().startswith("v1=")
    ]
    expected = [_hmac_hex(secret, body_bytes).encode("ascii") for secret in secrets if secret]
    # Compare every pair so the time taken does not depend on which one matched.
    matches = [hmac.compare_digest(want, got) for want in expected for got in offered]
    return any(matches)
