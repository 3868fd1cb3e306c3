"""Running the HTTP server: listen-address checks and uvicorn lifecycle."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence

import uvicorn
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from exporter.config import ENDPOINT_GROUPS, Config, ListenError, split_listen
from exporter.http.app import build_app
from exporter.http.host_guard import LoopbackHostGuard
from exporter.http.slow_clients import protocol_options
from exporter.services import Services

log = logging.getLogger(__name__)


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:9800`) into its parts; `ListenError` when malformed or the port is not 1-65535."""
    return split_listen(listen)


def is_loopback(host: str) -> bool:
    """True when every address `host` resolves to is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError:
            return False
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def check_listen_allowed(listen: str, config: Config) -> tuple[str, int]:
    """`listen`'s host and port; refuses a malformed address, or a non-loopback one while the API has no tokens."""
    host, port = parse_listen(listen)
    check_exposure(host, config)
    return host, port


def check_exposure(host: str, config: Config) -> None:
    """Off loopback every endpoint group needs its tokens, or an explicit `auth.open` entry (logged loudly).

    Configuring only some token lists used to leave the others open to the network: only
    `webhook_tokens` set, and anyone could ingest or rewrite budgets.
    """
    if is_loopback(host):
        return
    auth = config.auth
    missing = [group for group in auth.unguarded() if group not in auth.open]
    if missing:
        listed = ", ".join(f"auth.{ENDPOINT_GROUPS[group]}" for group in missing)
        raise ListenError(
            f"refusing to listen on {host}: the {', '.join(missing)} endpoints have no tokens, so they would be "
            f"open to the network. Configure {listed}, list them in auth.open to leave them open on purpose, "
            "or listen on 127.0.0.1."
        )
    for group in auth.open:
        guarded = auth.metrics_tokens if group == "metrics" else group not in auth.unguarded()
        if guarded:
            continue  # tokens configured: they apply, the opt-in is moot
        log.warning(
            "AUTH DISABLED: the %s endpoints are OPEN to the network on %s without tokens (auth.open)", group, host
        )


def make_server(services: Services, listen: str, extra_routes: Sequence[BaseRoute] = ()) -> uvicorn.Server:
    """A uvicorn server for the app (not started)."""
    host, port = check_listen_allowed(listen, services.config)
    app: ASGIApp = build_app(services, extra_routes)
    if is_loopback(host):
        app = LoopbackHostGuard(app, external_url=services.config.external_url)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # No handlers of uvicorn's own: its lines (a request's traceback) reach the root logger, whose
        # handler `llmcost serve` writes through the one redaction (exporter.redaction.RedactingFormatter).
        log_config=None,
        # httptools parses HTTP in C; uvicorn's fallback, h11, is pure Python and took a third of the CPU
        # of a small request (an Alertmanager webhook storm ran at ~900 instead of ~1,500 requests/s).
        loop="asyncio",
        # httptools, with a header read timeout and a connection cap (exporter.http.slow_clients).
        **protocol_options(services.config.http),
        timeout_graceful_shutdown=10,
        # The app's start-up (label ranks for the first scrape) runs before the server accepts connections.
        lifespan="on",
    )
    return uvicorn.Server(config)
