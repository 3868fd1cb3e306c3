"""Refusing requests addressed to a foreign name on a loopback listener (DNS rebinding).

On loopback llmcost may run without tokens: the machine's own users are trusted. A web page the
person visits is not, and a browser keeps it from reading other origins. But the page's site can
rebind its own DNS name to 127.0.0.1: `http://evil.example:9800/v1/usage/summary` is then the page's
own origin to the browser, and it reads spend, projects, budgets and alerts, or the console. The
browser still sends the name it used in `Host`, so a loopback listener answers only requests addressed
to a loopback name (`localhost`, `*.localhost`, `127.x.y.z`, `[::1]`) or to `external_url`'s host,
as Jupyter and the Vite dev server do. Clients of a loopback listener (Prometheus, the SDK, curl, an
SSH tunnel, a local proxy that keeps the default `proxy_set_header Host $proxy_host`) all use one of
those; a proxy that forwards its public name sets `external_url` to it, which its links need anyway.

Only loopback listeners are guarded (`exporter.server.make_server`): off loopback every endpoint needs
its token or was opened to the network on purpose (`auth.open`), and rebinding gains nothing.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from exporter.http.errors import error


def loopback_name(host: str) -> bool:
    """True for `localhost`, a `.localhost` name (RFC 6761 keeps them on loopback) or a loopback IP."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a `Host` header, without its port (`[::1]:9800` -> `::1`)."""
    try:
        return (urlsplit(f"//{header}").hostname or "").rstrip(".")
    except ValueError:  # an unbalanced "[": no name, so refused like any foreign one
        return ""


class LoopbackHostGuard:
    """ASGI middleware: a 403 for an HTTP request whose `Host` is neither a loopback name nor allowed."""

    def __init__(self, app: ASGIApp, *, external_url: str | None = None) -> None:
        self.app = app
        self.allowed = {host_name(urlsplit(external_url).netloc)} - {""} if external_url else set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 403 when it names a host that is not this machine's loopback."""
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"host")
            if header is not None:
                name = host_name(header.decode("latin-1"))
                if not loopback_name(name) and name.lower() not in self.allowed:
                    refusal = error(
                        403,
                        "request addressed to a name that is not loopback refused: llmcost listens on loopback "
                        "and answers requests for localhost, 127.0.0.1 or [::1] (or external_url's host), so a "
                        "web page whose DNS name was rebound to 127.0.0.1 cannot read it",
                        {"host": name[:200]},
                    )
                    await refusal(scope, receive, send)
                    return
        await self.app(scope, receive, send)
