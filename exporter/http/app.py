"""The Starlette application: landing page, ingest, metrics, health, plus routes added by other parts."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from exporter import __version__
from exporter.body_records import MalformedBody, TooManyEvents, TooManyValues
from exporter.commit_queue import WriteFailed, wait_committed
from exporter.config import AuthConfig
from exporter.events import UsageEvent
from exporter.exposition import lean_renderer, prepare_registry
from exporter.http.auth import check_bearer, followable
from exporter.http.body import (
    JSON_TYPES,
    NDJSON_TYPES,
    BodyTimeout,
    BodyTooLarge,
    media_type,
    read_limited,
    unsupported_type,
)
from exporter.http.bounded_requests import BoundedRequests
from exporter.http.encoding import BadEncoding, DecodedTooLarge, UnsupportedEncoding, decode_body
from exporter.http.errors import ORJSONResponse, error, shown
from exporter.http.origin import refuse_foreign_origin
from exporter.http.otlp import otlp_routes
from exporter.http.reserved_threads import ReservedThreads
from exporter.http.scrape import TIMEOUT_HEADER, BoundedScrapes, store_wait
from exporter.http.store_probe import StoreProbe
from exporter.http.store_refusals import StoreRefusals
from exporter.http.summary import summary_routes
from exporter.memory import LARGE_BODY_BYTES, release_free_memory
from exporter.pipeline import IngestOutcome, Prepared, Rejection
from exporter.services import Services
from exporter.store import StoreUnavailable

log = logging.getLogger(__name__)

LANDING = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>llmcost</title></head>
<body>
<h1>llmcost {version}</h1>
<p>LLM cost observability and alerting.</p>
<ul>
<li>{metrics} — Prometheus metrics</li>
<li><a href="/healthz">/healthz</a> — liveness, <a href="/readyz">/readyz</a> — store reachable</li>
<li><code>POST /v1/usage</code> — ingest recorded LLM calls (JSON object, array or NDJSON)</li>
{api}<li>Documentation: <a href="https://github.com/llmcost/llmcost#readme">README</a></li>
</ul>
</body></html>
"""


def path_link(path: str, followable: bool) -> str:
    """A link to one of the server's own paths, or the path as text when a link would only answer 401."""
    return f'<a href="{path}">{path}</a>' if followable else f"<code>{path}</code>"


def landing_page(auth: AuthConfig, served: set[str]) -> str:
    """The plain page at `/` when no console takes it: links only to what a browser may open.

    `served`: the paths the other parts added; `/v1/budgets` and `/v1/alerts` are listed only when served.
    """
    open_to = followable(auth)
    metrics = path_link("/metrics", open_to["open_metrics"])
    if not open_to["open_metrics"]:
        metrics += " (with a metrics token)"
    listed = [
        f"{path_link(path, open_to['open_api'])} — {what}"
        for path, what in (("/v1/budgets", "budget status"), ("/v1/alerts", "alerts"))
        if path in served
    ]
    api = f"<li>{', '.join(listed)}{'' if open_to['open_api'] else ' (with an admin token)'}</li>\n" if listed else ""
    return LANDING.format(version=__version__, metrics=metrics, api=api)


STORE_DOWN_HEADERS = {"Retry-After": "5"}
READY_TIMEOUT = 3.0
"""Seconds `/readyz` waits for the store's answer before it reports not ready."""


def store_unavailable(exc: Exception, refusals: StoreRefusals) -> Response:
    """503 with Retry-After: the client should retry; nothing was acknowledged. Logged once per outage."""
    refusals.refused(exc)
    return error(503, "store unavailable, retry later", headers=STORE_DOWN_HEADERS)


def looks_like_json_lines(body: bytes) -> bool:
    """An object, then a line break, then more: JSON lines sent under a JSON content type."""
    stripped = body.strip()
    return stripped.startswith(b"{") and b"\n" in stripped


def build_app(services: Services, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The ASGI app for one `Services` instance."""
    config = services.config

    async def landing(_request: Request) -> Response:
        return HTMLResponse(page)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok\n")

    # One ping in flight, shared by readiness probes and by requests whose commit is slow (store_probe.py).
    # Threads for work that never touches the store, which requests stuck on a silent one cannot take.
    threads = ReservedThreads()
    probe = StoreProbe(services.store.ping, threads)
    refusals = StoreRefusals(log)  # a store outage logged once, not once per refused request
    scrapes = BoundedScrapes(services.registry, on_store_answered=refusals.answered)

    async def store_unavailable_handler(_request: Request, exc: Exception) -> Response:
        return store_unavailable(exc, refusals)

    async def readyz(_request: Request) -> Response:
        ready = await probe.answers(READY_TIMEOUT)
        if ready is None:
            return PlainTextResponse("store not answering\n", status_code=503)
        if ready:
            refusals.answered()
            return PlainTextResponse("ready\n")
        return PlainTextResponse("store unreachable\n", status_code=503)

    async def metrics(request: Request) -> Response:
        denied = check_bearer(request, config.auth.metrics_tokens, "auth.metrics_tokens")
        if denied is not None:
            return denied
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        # The same bytes as prometheus_client writes for these formats (tests pin it), several times faster.
        encoder = lean_renderer(content_type) or encoder
        # Answered before the scraper gives up, without the store's families if it does not answer (scrape.py).
        payload = await scrapes.render(encoder, content_type, store_wait(request.headers.get(TIMEOUT_HEADER)))
        return Response(payload, media_type=content_type)

    async def ingest(request: Request) -> Response:
        """Auth, read, one pipeline call (parse, validate, count, price), commit."""
        # Without ingest tokens: no spend forged by a page whose DNS name was rebound to 127.0.0.1 (origin.py).
        denied = check_bearer(request, config.auth.ingest_tokens, "auth.ingest_tokens") or refuse_foreign_origin(
            request, token_required=bool(config.auth.ingest_tokens), setting="auth.ingest_tokens"
        )
        if denied is not None:
            return denied
        kind = media_type(request)
        if kind not in NDJSON_TYPES and kind not in JSON_TYPES:
            message = unsupported_type(kind, also=" (application/x-ndjson for NDJSON lines)")
            return error(415, message, {"content_type": kind})
        body = await read_body(request)
        if isinstance(body, Response):
            return body
        large = len(body) >= LARGE_BODY_BYTES
        prepared: Prepared | Response
        try:
            # Parsing and validation in one worker-thread hop: the event loop stays free for others.
            prepared = await threads.run(prepare_body, body, kind in NDJSON_TYPES)
        except (MalformedBody, TooManyEvents, TooManyValues) as exc:
            # Its traceback's frames hold the body, in a cycle through the worker thread's future: drop
            # them now rather than at the next cyclic collection, which an idle server may not have.
            exc.__traceback__ = None
            prepared = refused(exc)
        del body  # the events are made: the body is not kept while they wait for their commit
        response = prepared if isinstance(prepared, Response) else await commit(*prepared)
        del prepared
        if large:
            await threads.run(release_free_memory)
        return response

    def prepare_body(body: bytes, ndjson: bool) -> Prepared:
        try:
            return services.pipeline.prepare_body(body, ndjson=ndjson)
        except MalformedBody as as_json:
            # LiteLLM's generic_api logger (log_format: ndjson) labels its NDJSON application/json: a body
            # that is not one JSON value but reads as JSON lines is taken as such. Anything else keeps the
            # JSON parser's error, which is the one that names what is wrong with the body as sent.
            if ndjson or not looks_like_json_lines(body):
                raise
            try:
                return services.pipeline.prepare_body(body, ndjson=True)
            except MalformedBody:
                raise as_json from None

    def refused(exc: MalformedBody | TooManyEvents | TooManyValues) -> Response:
        if isinstance(exc, TooManyEvents):
            return error(413, str(exc), {"limit_events": config.ingest.max_batch_events})
        if isinstance(exc, TooManyValues):
            return error(413, str(exc), {"limit_values": config.ingest.max_json_values})
        return error(400, str(exc))

    async def read_body(request: Request) -> bytes | Response:
        limit = config.ingest.max_body_bytes
        try:
            body = await read_limited(request, limit, config.http.body_timeout_seconds)
            return await threads.run(decode_body, body, request.headers.get("content-encoding"), limit)
        except (BodyTooLarge, DecodedTooLarge) as exc:
            return error(413, str(exc), {"limit_bytes": limit})
        except UnsupportedEncoding as exc:
            return error(415, str(exc))
        except BodyTimeout as exc:
            return error(408, str(exc), headers={"Connection": "close"})
        except BadEncoding as exc:
            return error(400, str(exc))

    async def commit(events: list[UsageEvent], rejected: list[Rejection], skipped: Counter[str]) -> Response:
        assert services.commit_queue is not None
        try:
            accepted, duplicates = await wait_committed(
                services.commit_queue.submit(events, len(rejected), skipped),
                config.ingest.commit_timeout_seconds,
                probe.answers_soon,
            )
        except StoreUnavailable as exc:
            return store_unavailable(exc, refusals)
        except WriteFailed as exc:
            return error(500, str(exc), "the server logged the cause; the other requests were not affected")
        refusals.answered()
        outcome = IngestOutcome(accepted, duplicates, rejected, skipped)
        body_json = outcome.to_json()
        if rejected and not events:
            body_json.update(error="no valid events in the request", detail=None)
            return ORJSONResponse(body_json, status_code=422)
        return ORJSONResponse(body_json)

    # The console (alerting side) takes `/` when it is attached; this plain page is the fallback.
    claimed = {path for route in extra_routes if isinstance(path := getattr(route, "path", None), str)}
    page = landing_page(config.auth, claimed)  # decided once: the tokens and routes do not change
    routes: list[BaseRoute] = [
        *([] if "/" in claimed else [Route("/", landing)]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/v1/usage", ingest, methods=["POST"]),
        *otlp_routes(services, probe, threads, refusals),
        *summary_routes(services),
        *extra_routes,
    ]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Before the first request: the label ranks a first scrape would otherwise compute (~0.5 s at
        # 100,000 values of each label, exporter/label_ranks.py).
        await run_in_threadpool(prepare_registry, services.registry)
        yield

    # Requests on a store that hangs answer 503, not never (bounded_requests.py); these bound themselves.
    bounded = Middleware(
        BoundedRequests,
        probe=probe,
        retry_headers=STORE_DOWN_HEADERS,
        refusals=refusals,
        skip_paths=("/healthz", "/readyz", "/metrics", "/v1/usage", "/v1/traces"),
    )
    return Starlette(
        routes=routes,
        middleware=[bounded],
        lifespan=lifespan,
        # No bare 500 anywhere: a store outage is a 503 to retry, any other failure the API's JSON error.
        exception_handlers={
            StoreUnavailable: store_unavailable_handler,
            HTTPException: _http_error_handler,
            Exception: _internal_error_handler,
        },
    )


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    # Routing answers (404 no such path, 405 wrong method with its `Allow` header) in the API's one error
    # shape, like every other error, instead of Starlette's plain-text "Not Found".
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    detail = {"method": shown(request.method), "path": shown(request.url.path, 200)}
    headers = dict(exc.headers) if exc.headers else None
    return error(exc.status_code, exc.detail.lower(), detail=detail, headers=headers)


async def _internal_error_handler(_request: Request, _exc: Exception) -> Response:
    # Starlette logs the traceback itself once this response is sent.
    return error(500, "internal error; the server logged the cause")
