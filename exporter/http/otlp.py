"""`POST /v1/traces`: the OTLP/HTTP trace receiver (protobuf or JSON; gzip, deflate or not compressed).

Answers follow the OTLP/HTTP specification: 200 with an `ExportTraceServiceResponse` in the request's
encoding, whose `partial_success` gives the number of GenAI spans rejected and why; 4xx and 5xx with a
`google.rpc.Status` body (in JSON also carrying the API's `error` and `detail`); 503 with `Retry-After`
when the store is down, which exporters retry (a retried span is a duplicate: its request id is its
trace and span id). Same bearer token as `POST /v1/usage`, which OTel exporters send through their
`headers` setting.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exporter.commit_queue import wait_committed
from exporter.http.auth import BEARER_CHALLENGE, bearer_allowed, unauthorised
from exporter.http.body import BodyTimeout, BodyTooLarge, media_type, read_limited
from exporter.http.encoding import BadEncoding, DecodedTooLarge, decode_body
from exporter.http.origin import refuse_foreign_origin
from exporter.http.reserved_threads import ReservedThreads
from exporter.http.store_probe import StoreProbe
from exporter.http.store_refusals import StoreRefusals
from exporter.pipeline import Rejection
from exporter.services import Services
from exporter.store import StoreUnavailable

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
SKIPPED_COUNTER = "otlp_spans_skipped"
_MESSAGE_REJECTIONS = 5  # rejections spelled out in `error_message`; the count covers them all
# google.rpc.Code values for the Status bodies.
_CODES = {400: 3, 401: 16, 408: 4, 413: 8, 415: 3, 503: 14}


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers


def otlp_routes(
    services: Services, probe: StoreProbe, threads: ReservedThreads, refusals: StoreRefusals
) -> list[BaseRoute]:
    """The `/v1/traces` route for one `Services` instance; `probe` tells a slow store from a silent one.

    Decoding runs on `threads`, which requests stuck on a silent store cannot take (reserved_threads.py).
    An export refused for want of the store is logged through `refusals`, once per outage.
    """
    config = services.config
    limit = config.ingest.max_body_bytes

    def decode_and_prepare(body: bytes, proto: bool, encoding: str) -> tuple[Any, list[Rejection], int, int]:
        from exporter import otlp  # protobuf modules load on the first export, not at every start

        try:
            if encoding == "gzip":
                body = otlp.gunzip_limited(body, limit)
            elif encoding == "deflate":  # the SDK exporters' other choice (Compression.Deflate): a zlib stream
                body = decode_body(body, encoding, limit)
            request = otlp.parse_protobuf(body) if proto else otlp.parse_json(body)
        except (otlp.DecompressedTooLarge, DecodedTooLarge) as exc:
            raise _Refused(413, str(exc)) from None
        except (otlp.MalformedExport, BadEncoding) as exc:
            raise _Refused(400, str(exc)) from None
        found = otlp.span_records(request, config.otlp)
        if len(found.records) > config.ingest.max_batch_events:
            raise _Refused(
                413, f"export has {len(found.records)} usage spans; the limit is {config.ingest.max_batch_events}"
            )
        # A span is never a LiteLLM record: the pipeline skips none (the spans skipped are counted apart, below).
        events, rejected, _ = services.pipeline.prepare(found.records)
        return events, rejected, found.skipped, found.spans

    async def traces(request: Request) -> Response:
        kind = media_type(request)
        proto = kind == PROTOBUF
        try:
            if not proto and kind != JSON:
                raise _Refused(415, f"unsupported content type {kind!r}; send {PROTOBUF} or {JSON}")
            if not bearer_allowed(request, config.auth.ingest_tokens):
                raise _Refused(401, unauthorised("auth.ingest_tokens"), BEARER_CHALLENGE)
            foreign = refuse_foreign_origin(
                request, token_required=bool(config.auth.ingest_tokens), setting="auth.ingest_tokens"
            )
            if foreign is not None:
                raise _Refused(403, "request from another site refused (exporter/http/origin.py)")
            encoding = request.headers.get("content-encoding", "").strip().lower()
            if encoding not in ("", "identity", "gzip", "deflate"):
                raise _Refused(415, f"unsupported content encoding {encoding!r}; send gzip, deflate or none")
            try:
                # Within `http.body_timeout_seconds`, as `POST /v1/usage`: a client trickling a body
                # must not hold its connection (and a slot of `http.max_connections`) for as long as it likes.
                body = await read_limited(request, limit, config.http.body_timeout_seconds)
            except BodyTooLarge as exc:
                raise _Refused(413, str(exc)) from None
            except BodyTimeout as exc:
                raise _Refused(408, str(exc), {"Connection": "close"}) from None
            events, rejected, skipped, spans = await threads.run(decode_and_prepare, body, proto, encoding)
            assert services.commit_queue is not None
            try:
                if events or rejected:  # an export of HTTP and database spans only has nothing to write
                    await wait_committed(
                        services.commit_queue.submit(events, len(rejected)),
                        config.ingest.commit_timeout_seconds,
                        probe.answers_soon,
                    )
                    refusals.answered()
            except StoreUnavailable as exc:
                refusals.refused(exc)
                raise _Refused(503, "store unavailable, retry later", {"Retry-After": "5"}) from None
        except _Refused as refused:
            return _status(refused, proto)
        if skipped:
            await run_in_threadpool(_count_skipped, services, skipped)
        return _answer(proto, rejected, spans)

    return [Route("/v1/traces", traces, methods=["POST"])]


def _count_skipped(services: Services, skipped: int) -> None:
    # A counter, not part of the answer: a warning on every export holding HTTP spans would flood logs.
    try:
        services.store.add_counters({SKIPPED_COUNTER: skipped})
    except Exception as exc:  # the events are committed; a lost count must not fail the export
        log.warning("could not count %d skipped spans: %s", skipped, exc)


def _answer(proto: bool, rejected: list[Rejection], spans: int) -> Response:
    from exporter import otlp

    message = ""
    if rejected:
        shown = "; ".join(f"span {r.index}: {r.error}" for r in rejected[:_MESSAGE_REJECTIONS])
        more = f"; and {len(rejected) - _MESSAGE_REJECTIONS} more" if len(rejected) > _MESSAGE_REJECTIONS else ""
        message = f"{len(rejected)} of {spans} spans rejected: {shown}{more}"
    answer = otlp.export_response(len(rejected), message)
    if proto:
        return Response(answer.SerializeToString(), media_type=PROTOBUF)
    return Response(orjson.dumps(otlp.response_json(answer)), media_type=JSON)


def _status(refused: _Refused, proto: bool) -> Response:
    from exporter import otlp

    code = _CODES.get(refused.status, 2)
    message = str(refused)
    if proto:
        body = otlp.status_protobuf(code, message)
        return Response(body, status_code=refused.status, media_type=PROTOBUF, headers=refused.headers)
    # A google.rpc.Status (what OTLP clients read) that is also the API's error shape: `error` and `detail`
    # beside `code` and `message`, which OTLP/JSON readers ignore as unknown fields.
    payload = orjson.dumps({"code": code, "message": message, "error": message, "detail": None})
    return Response(payload, status_code=refused.status, media_type=JSON, headers=refused.headers)
