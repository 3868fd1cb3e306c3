"""Refusing browser requests from other sites on state-changing endpoints that may run without a token.

With `auth.admin_tokens` set, an ack needs a bearer header, which a page on another site cannot make a
browser send (it is not a cookie), so cross-site request forgery has nothing to ride on. Without admin
tokens the server listens on loopback only and the ack endpoints are open; a page on any site the
person visits could then still POST to `http://127.0.0.1:9800/...`, or rebind its own DNS name to
127.0.0.1. Browsers say where a request comes from (`Sec-Fetch-Site`, `Origin`), so those requests are
refused here; clients that are not browsers (curl, scripts, the CLI) send neither header and pass.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from exporter.http.errors import error
from exporter.http.host_guard import loopback_name


def refuse_foreign_origin(
    request: Request, *, token_required: bool, setting: str = "auth.admin_tokens"
) -> Response | None:
    """Without tokens, a 403 for a browser request from another origin or from a non-loopback name.

    `setting`: the token list that would guard the endpoint, named in the refusal.

    With tokens the bearer header is the protection, and the check is skipped: a reverse proxy that
    rewrites `Host` must not break acknowledgements made by the people who hold a token.
    """
    if token_required:
        return None
    site = request.headers.get("sec-fetch-site", "").lower()
    if site in ("cross-site", "same-site"):
        return error(403, "cross-site request refused", {"sec-fetch-site": site})
    origin = request.headers.get("origin")
    if origin is None:
        return None
    parts = urlsplit(origin)
    if origin == "null" or parts.netloc.lower() != request.headers.get("host", "").lower():
        return error(403, "request from another origin refused", {"origin": origin[:200]})
    if not loopback_name(parts.hostname or ""):
        # A DNS name rebound to 127.0.0.1 looks same-origin; without a token only loopback names may act.
        return error(403, f"without {setting}, only pages served from a loopback address may act")
    return None
