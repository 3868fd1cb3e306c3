"""The gateway's HTTP routes (Starlette): alerts API, Alertmanager, Slack and PagerDuty webhooks.

Checks run cheapest first and never touch the store before the caller is known: token or signature
(401), content type (415), size (413), JSON (400), payload (422, naming the field). Store work runs in
the thread pool; a store outage's `StoreUnavailable` is left to the application's handler, which answers
503 with `Retry-After`, so senders retry, and logs the outage once for the whole process, not once per
refused request (exporter/http/app.py, exporter/http/store_refusals.py).

The Slack and PagerDuty webhooks carry no token: their signature covers the body. Their headers are
checked before the body is read (`alerting.signatures.*_plausible`), so a request without a usable
signature is a 401 whatever its body. One with a usable-looking signature over a body past the limit is
a 413, right signature or wrong: checking it means reading the whole body, which the limit is there to
bound, and the answer says nothing of the secret (docs/http-api.md). Every body is read within
`http.body_timeout_seconds` (408, connection closed), so a client trickling one cannot hold a connection
for as long as it likes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from alerting.gateway.alertmanager import PayloadError
from alerting.gateway.changes import AlertConflict, AlertNotFound, Change
from alerting.gateway.enqueue import STATUSES
from alerting.gateway.records import api_alert
from alerting.gateway.settings import CHANNELS
from alerting.gateway.webhooks import parse_pagerduty_webhook, parse_slack_interaction
from alerting.model import ALERT_STATES
from alerting.signatures import (
    pagerduty_header_plausible,
    slack_headers_plausible,
    verify_pagerduty_signature,
    verify_slack_signature,
)
from exporter.config import AuthConfig
from exporter.http.auth import check_bearer
from exporter.http.body import BodyTimeout, BodyTooLarge, media_type, read_limited, unsupported_type
from exporter.http.errors import ORJSONResponse, error, shown
from exporter.http.origin import refuse_foreign_origin
from exporter.http.query import unknown_params

if TYPE_CHECKING:
    from alerting.gateway.service import GatewayService

Handler = Callable[[Request], Awaitable[Response]]
JSON_TYPES = {"application/json"}
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_LIST = 10_000
SLACK_REFUSED = "missing, invalid or stale Slack signature"
PAGERDUTY_REFUSED = "missing or invalid PagerDuty signature"


async def _body(request: Request, limit: int, timeout: float | None) -> bytes | Response:
    try:
        return await read_limited(request, limit, timeout)
    except BodyTooLarge as exc:
        return error(413, str(exc), {"limit_bytes": limit})
    except BodyTimeout as exc:
        return error(408, str(exc), headers={"Connection": "close"})


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None


def _invalid(exc: PayloadError) -> Response:
    return error(422, f"invalid payload: {exc.message}", {"field": exc.field})


def _alert_body(change: Change) -> Response:
    assert change.alert is not None
    return ORJSONResponse({**api_alert(change.alert), "changed": change.changed})


MAX_ALERT_ID = 10**18 - 1
"""The largest alert id a path or `alert_id` parameter may name (18 digits, as `_alert_id` reads them)."""


def _int_param(request: Request, name: str, default: int, maximum: int) -> int | Response:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses (a 500 instead of this 400).
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        return error(400, f"{name} must be an integer between 1 and {maximum}", {"field": name})
    return int(raw)


def gateway_routes(gateway: GatewayService, auth: AuthConfig, *, body_timeout: float | None = None) -> list[BaseRoute]:
    """Routes bound to one `GatewayService`, guarded by the tokens of `auth`.

    `body_timeout`: `http.body_timeout_seconds`, the longest a request body may take to arrive (408).
    """
    settings = gateway.settings
    limit = settings.max_body_bytes

    async def body_of(request: Request) -> bytes | Response:
        return await _body(request, limit, body_timeout)

    async def list_alerts(request: Request) -> Response:
        denied = check_bearer(request, auth.admin_tokens, "auth.admin_tokens")
        if denied is not None:
            return denied
        unknown = unknown_params(request, ("state", "limit"))
        if unknown is not None:
            return unknown
        state = request.query_params.get("state")
        if state is not None and state not in ALERT_STATES:
            return error(400, f"state must be one of {', '.join(ALERT_STATES)}", {"field": "state"})
        count = _int_param(request, "limit", 1000, MAX_LIST)
        if isinstance(count, Response):
            return count
        found = await run_in_threadpool(gateway.alerts, state, limit=count)
        return ORJSONResponse([api_alert(a) for a in found])

    def _alert_id(request: Request) -> int | None:
        raw = str(request.path_params["alert_id"])
        return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None

    async def show_alert(request: Request) -> Response:
        denied = check_bearer(request, auth.admin_tokens, "auth.admin_tokens")
        if denied is not None:
            return denied
        alert_id = _alert_id(request)
        alert = None if alert_id is None else await run_in_threadpool(gateway.alert, alert_id)
        if alert is None or alert_id is None:
            return error(404, "no such alert", {"id": request.path_params["alert_id"]})
        history = await run_in_threadpool(gateway.history, alert_id)
        notifications = await run_in_threadpool(lambda: gateway.notifications(alert_id=alert_id))
        return ORJSONResponse({**api_alert(alert), "history": history, "notifications": notifications})

    def _state_change(action: str) -> Handler:
        async def handler(request: Request) -> Response:
            denied = check_bearer(request, auth.admin_tokens, "auth.admin_tokens") or refuse_foreign_origin(
                request, token_required=bool(auth.admin_tokens)
            )
            if denied is not None:
                return denied
            alert_id = _alert_id(request)
            if alert_id is None:
                return error(404, "no such alert", {"id": request.path_params["alert_id"]})
            body = await body_of(request)
            if isinstance(body, Response):
                return body
            data: Any = {}
            if body.strip():
                if media_type(request) not in JSON_TYPES | {""}:
                    return error(415, unsupported_type(media_type(request)), {"content_type": media_type(request)})
                try:
                    data = _json(body)
                except ValueError as exc:
                    return error(400, str(exc))
            if not isinstance(data, dict):
                return error(422, "body must be a JSON object", {"field": "body"})
            # A misspelt `by` would otherwise record the change as made by "api": the audit loses who.
            unknown = sorted(set(data) - {"by", "comment"})
            if unknown:
                return error(422, f"{shown(unknown[0])}: unknown field (allowed: by, comment)", {"field": unknown[0]})
            fields = {}
            for name in ("by", "comment"):
                value = data.get(name, "")
                if value is None:
                    value = ""
                if not isinstance(value, str) or len(value) > (256 if name == "by" else 4000):
                    return error(422, f"{name} must be a string (at most 256 characters for by)", {"field": name})
                if "\x00" in value:
                    # PostgreSQL cannot store it: the ack failed with an internal error, nothing said why.
                    return error(422, f"{name} must not contain a NUL character", {"field": name})
                fields[name] = value
            apply = gateway.ack if action == "ack" else gateway.unack
            try:
                change = await run_in_threadpool(
                    lambda: apply(alert_id, by=fields["by"] or "api", via="api", comment=fields["comment"])
                )
            except AlertNotFound:
                return error(404, "no such alert", {"id": alert_id})
            except AlertConflict as exc:
                return error(409, str(exc), {"id": alert_id})
            return _alert_body(change)

        return handler

    async def alertmanager(request: Request) -> Response:
        # Without webhook tokens: no alert forged by a page whose DNS name was rebound to 127.0.0.1.
        denied = check_bearer(request, auth.webhook_tokens, "auth.webhook_tokens") or refuse_foreign_origin(
            request, token_required=bool(auth.webhook_tokens), setting="auth.webhook_tokens"
        )
        if denied is not None:
            return denied
        if media_type(request) not in JSON_TYPES:
            kind = media_type(request)
            return error(415, unsupported_type(kind), {"content_type": kind})
        body = await body_of(request)
        if isinstance(body, Response):
            return body
        try:
            data = _json(body)
        except ValueError as exc:
            return error(400, str(exc))
        try:
            result = await run_in_threadpool(gateway.receive_alertmanager, data)
        except PayloadError as exc:
            return _invalid(exc)
        return ORJSONResponse(result.to_json())

    async def slack_interactions(request: Request) -> Response:
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        # Before the body: without a usable signature, no body is read (nor answered 413 or 408).
        if not slack_headers_plausible(settings.slack_signing_secret, timestamp, signature, gateway.clock()):
            return error(401, SLACK_REFUSED)
        body = await body_of(request)
        if isinstance(body, Response):
            return body
        if not verify_slack_signature(settings.slack_signing_secret, timestamp, body, signature, gateway.clock()):
            return error(401, SLACK_REFUSED)
        if media_type(request) != FORM_TYPE:
            return error(415, f"send {FORM_TYPE}")
        try:
            actions = parse_slack_interaction(body)
        except PayloadError as exc:
            return error(400, f"malformed interaction: {exc.message}", {"field": exc.field})
        if actions:
            # The state change is committed before answering; the Slack update is left to the outbox.
            await run_in_threadpool(gateway.receive_slack_actions, actions)
        return Response(status_code=200)

    async def pagerduty(request: Request) -> Response:
        signature = request.headers.get("x-pagerduty-signature")
        # Before the body: without a usable signature, no body is read (nor answered 413 or 408).
        if not pagerduty_header_plausible(settings.pagerduty_webhook_secrets, signature):
            return error(401, PAGERDUTY_REFUSED)
        body = await body_of(request)
        if isinstance(body, Response):
            return body
        if not verify_pagerduty_signature(settings.pagerduty_webhook_secrets, body, signature):
            return error(401, PAGERDUTY_REFUSED)
        if media_type(request) not in JSON_TYPES:
            return error(415, "send application/json")
        try:
            event = parse_pagerduty_webhook(_json(body))
        except ValueError as exc:
            if isinstance(exc, PayloadError):
                return _invalid(exc)
            return error(400, str(exc))
        result = await run_in_threadpool(gateway.receive_pagerduty, event)
        return ORJSONResponse(result.to_json())

    async def notifications(request: Request) -> Response:
        denied = check_bearer(request, auth.admin_tokens, "auth.admin_tokens")
        if denied is not None:
            return denied
        unknown = unknown_params(request, ("status", "channel", "alert_id", "limit"))
        if unknown is not None:
            return unknown
        # One alert's rows (what `GET /v1/alerts/{id}` shows beside the alert), for scripts that watch one page.
        alert_id = _int_param(request, "alert_id", 0, MAX_ALERT_ID)  # 0: every alert's
        if isinstance(alert_id, Response):
            return alert_id
        status = request.query_params.get("status")
        if status is not None and status not in STATUSES:
            return error(400, f"status must be one of {', '.join(STATUSES)}", {"field": "status"})
        channel = request.query_params.get("channel")
        # As `status`: an unknown channel matches no row, and `[]` would read as "nothing dead there".
        if channel is not None and channel not in CHANNELS:
            return error(400, f"channel must be one of {', '.join(CHANNELS)}", {"field": "channel"})
        count = _int_param(request, "limit", 500, MAX_LIST)
        if isinstance(count, Response):
            return count
        rows = await run_in_threadpool(
            lambda: gateway.notifications(status=status, channel=channel, alert_id=alert_id or None, limit=count)
        )
        return ORJSONResponse(rows)

    async def retry_notification(request: Request) -> Response:
        # A requeued dead letter is sent again (a page, maybe): refused to other sites' pages like an ack.
        denied = check_bearer(request, auth.admin_tokens, "auth.admin_tokens") or refuse_foreign_origin(
            request, token_required=bool(auth.admin_tokens)
        )
        if denied is not None:
            return denied
        raw = str(request.path_params["outbox_id"])
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            return error(404, "no such notification", {"id": raw})
        requeued = await run_in_threadpool(gateway.requeue, int(raw))
        if requeued is None:
            return error(404, "no such notification", {"id": int(raw)})
        if not requeued:
            return error(409, "only a dead letter can be retried", {"id": int(raw)})
        return ORJSONResponse({"id": int(raw), "status": "pending"})

    routes: list[tuple[str, Handler, list[str]]] = [
        ("/v1/alerts", list_alerts, ["GET"]),
        ("/v1/alerts/{alert_id}", show_alert, ["GET"]),
        ("/v1/alerts/{alert_id}/ack", _state_change("ack"), ["POST"]),
        ("/v1/alerts/{alert_id}/unack", _state_change("unack"), ["POST"]),
        ("/v1/alertmanager", alertmanager, ["POST"]),
        ("/v1/slack/interactions", slack_interactions, ["POST"]),
        ("/v1/pagerduty/webhook", pagerduty, ["POST"]),
        ("/v1/notifications", notifications, ["GET"]),
        ("/v1/notifications/{outbox_id}/retry", retry_notification, ["POST"]),
    ]
    return [Route(path, handler, methods=methods) for path, handler, methods in routes]
