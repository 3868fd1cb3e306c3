"""Bearer-token checks with constant-time comparison."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from exporter.config import AuthConfig
from exporter.http.errors import error


def token_matches(presented: str, tokens: Sequence[str]) -> bool:
    """True when `presented` equals one of `tokens`; every token is compared, in constant time each."""
    given = presented.encode()
    found = False
    for token in tokens:
        found |= hmac.compare_digest(given, token.encode())
    return found


BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="llmcost"'}
"""The header of every 401 refusing a bearer token (RFC 6750)."""


def unauthorised(setting: str) -> str:
    """The 401's message, naming the token list (`auth.admin_tokens`) the endpoint reads, never a token.

    A holder of an ingest token asking `GET /v1/budgets` got "missing or invalid bearer token" alone, and
    could not tell a wrong token from the wrong kind of token. The setting's name is in the public docs.
    """
    return f"missing or invalid bearer token: this endpoint takes one of {setting} (Authorization: Bearer <token>)"


def bearer_allowed(request: Request, tokens: Sequence[str]) -> bool:
    """Whether the request may pass: no tokens configured, or it carries one of them as a bearer token."""
    if not tokens:
        return True
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(presented) and token_matches(presented.strip(), tokens)


def check_bearer(request: Request, tokens: Sequence[str], setting: str) -> Response | None:
    """None when the request may pass (`bearer_allowed`); else a 401 naming `setting`, the config key of `tokens`.

    `setting` is required so that no endpoint answers the bare "missing or invalid bearer token" again.
    """
    if bearer_allowed(request, tokens):
        return None
    return error(401, unauthorised(setting), headers=BEARER_CHALLENGE)


def followable(auth: AuthConfig) -> dict[str, bool]:
    """Which of the server's own JSON and text endpoints a page may link to: those without a token.

    A link is followed by the browser itself, with no `Authorization` header: once tokens guard an
    endpoint, a link to it only ever answers 401, even to a token holder. A page names such an endpoint as
    text instead, with what reads it (a token, the CLI). `open_metrics`: `/metrics`
    (`auth.metrics_tokens`); `open_api`: `/v1/budgets`, `/v1/alerts` (`auth.admin_tokens`).
    """
    return {"open_metrics": not auth.metrics_tokens, "open_api": not auth.admin_tokens}
