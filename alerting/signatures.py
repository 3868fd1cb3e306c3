"""Verify that webhook calls really come from Slack or PagerDuty.

Slack (interactivity): `X-Slack-Signature: v0=<hex>` is HMAC-SHA256 keyed with the app's signing secret
over `v0:{X-Slack-Request-Timestamp}:{raw body}`; requests older or newer than five minutes are refused so a
captured request cannot be replayed.

PagerDuty (webhooks v3): `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]` holds one HMAC-SHA256 of the raw
body per active secret (several while a secret is rotated); one match is enough.

Both verifiers compare in constant time and answer False, never raise, on anything malformed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import datetime

_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # epoch seconds; 12 digits reach the year 33658


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign_slack(signing_secret: str, timestamp: int | str, body: bytes) -> str:
    """Compute the `X-Slack-Signature` value Slack would send for this timestamp and body."""
    return "v0=" + _hmac_hex(signing_secret, b"v0:" + str(timestamp).encode("utf-8") + b":" + body)


def verify_slack_signature(
    signing_secret: str,
    timestamp_header: str | None,
    body_bytes: bytes,
    signature_header: str | None,
    now: datetime | float,
    tolerance: float = 300,
) -> bool:
    """Return True when the request is signed with `signing_secret` and its timestamp is within tolerance.

    `now` is the current time (aware datetime or epoch seconds); `tolerance` bounds the clock difference
    in both directions, in seconds.
    """
    if not signing_secret or not timestamp_header or not signature_header:
        return False
    if not _TIMESTAMP.fullmatch(timestamp_header):
        return False
    now_seconds = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(now_seconds - int(timestamp_header)) > tolerance:
        return False
    expected = sign_slack(signing_secret, timestamp_header, body_bytes)
    return hmac.compare_digest(expected.encode("ascii"), signature_header.strip().encode("utf-8", "replace"))


def sign_pagerduty(secrets: str | Iterable[str], body: bytes) -> str:
    """Compute the `X-PagerDuty-Signature` value PagerDuty would send, one `v1=` entry per secret."""
    if isinstance(secrets, str):
        secrets = [secrets]
    return ",".join("v1=" + _hmac_hex(secret, body) for secret in secrets)


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
