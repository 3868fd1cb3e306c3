"""The one redaction of secrets in text llmcost shows: errors, log lines, `check-config`, API answers.

A configured URL or DSN carries its secret in more than its user info: a Slack incoming webhook's path
(`https://hooks.slack.com/services/T0/B0/XXXX`), a query's `?token=` or `?api_key=`, a PostgreSQL URL's
`?password=` or `?sslpassword=`. SQLAlchemy's `URL.render_as_string(hide_password=True)` hides the user
info's password only, httpx's `URL` likewise, and psycopg's `conninfo` hides nothing; none of them works on
free text (a server's error quoting a URL) or on a URL too broken to parse, which is exactly when a
config error echoes it. Hence these few patterns, kept here once: everything shown goes through `redact`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

REDACTED = "[REDACTED]"

# A query or conninfo parameter whose name says it holds a secret (`password`, `sslpassword`, `token`,
# `access_token`, `api_key`, `apikey`, `client_secret`, `auth`, `sig`, `signature`, `routing_key`, ...).
# Over-matching (`sslkey`, a file path) costs an error message a detail; under-matching leaks.
_SENSITIVE_NAME = r"[A-Za-z0-9_.-]*(?:pass|pwd|token|secret|key|auth|sig|credential)[A-Za-z0-9_.-]*"

# A URL in free text: up to whitespace or a quote (an error message quotes it with either).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")

_PATTERNS = (
    # A secret-named parameter in a query (`?token=...&`) or a libpq conninfo (`password='...' host=...`).
    (re.compile(rf"(?i)(?<![A-Za-z0-9_.-])({_SENSITIVE_NAME})=(?:'[^']*'|[^\s&;#'\"]+)"), rf"\1={REDACTED}"),
    # Slack incoming webhooks: the path is the secret.
    (re.compile(r"(?i)(hooks\.slack\.com(?::[^/\s'\"]*)?/services/)[^\s'\",]+"), rf"\1{REDACTED}"),
    # Slack bot, user and app tokens.
    (re.compile(r"xox[a-z]-[A-Za-z0-9-]+"), REDACTED),
    # Authorization header values.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{16,}"), REDACTED),
)


def _without_user_info(match: re.Match[str]) -> str:
    """A URL's user info (`user:password@`, a token before `@`) replaced, whether or not the URL parses."""
    scheme, _, rest = match.group(0).partition("://")
    # Up to the last `@` before any query: a password with an unencoded `/` must not end the user info
    # early (an `@` in a path is masked too, which a message can afford).
    end = min((i for i in (rest.find(c) for c in "?#") if i >= 0), default=len(rest))
    _user_info, at, after = rest[:end].rpartition("@")
    if not at:
        return match.group(0)
    return f"{scheme}://{REDACTED}@{after}{rest[end:]}"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every given secret, and anything shaped like a credential, replaced by `[REDACTED]`.

    Credential-shaped: a URL's user info, a secret-named query or conninfo parameter's value, a Slack
    incoming webhook's path, a Slack token, an `Authorization` value. Works on free text and on URLs that
    do not parse.
    """
    # Longest first, so a secret containing another is replaced whole.
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _URL.sub(_without_user_info, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets a URL or DSN holds (its password, secret-named query values), to pass to `redact`.

    For text that may quote them without the URL around them: a driver's error naming a bad `sslpassword`.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a URL too broken to split: nothing to pick out
        return ()
    named = re.compile(rf"(?i){_SENSITIVE_NAME}")
    found = [value for name, value in parse_qsl(parts.query) if named.fullmatch(name)]
    return tuple(s for s in (password and unquote(password), *found) if s)


class RedactingFormatter(logging.Formatter):
    """A log formatter that writes every line through `redact`, its traceback included.

    llmcost's own messages redact what they quote, but libraries log what they were given: httpx writes the
    URL of every request at INFO, user info and all (`POST http://user:password@alertmanager:9093/…`), and a
    traceback quotes whatever its exception says. Redacting the finished line covers them all, at any level.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The line as `logging.Formatter` writes it, then redacted."""
        return redact(super().format(record))
