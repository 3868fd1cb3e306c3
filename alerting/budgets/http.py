"""Budget endpoints: `GET/PUT/DELETE /v1/budgets[/{name}]`, `POST /v1/budgets/{name}/reset` and the check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from alerting.budgets.errors import BudgetError
from alerting.budgets.history import HistoryError, parse_periods
from alerting.budgets.service import BudgetService
from exporter.config import AuthConfig
from exporter.http.auth import check_bearer
from exporter.http.body import BodyTimeout, BodyTooLarge, read_limited
from exporter.http.errors import ORJSONResponse, error, shown
from exporter.http.origin import refuse_foreign_origin
from exporter.http.query import unknown_params
from exporter.store import StoreUnavailable

MAX_BODY = 64 * 1024


class BudgetNameConvertor(Convertor[str]):
    """A budget name in a path: one segment or more, so a name with "/" in it (sent as %2F) is reachable.

    The server decodes %2F to "/" before routing, so `{name}` (one segment) never matched such a name.
    Greedy, so `/v1/budgets/a%2Freset/reset` resets the budget "a/reset"; unlike `path`, never empty, so
    `/v1/budgets/` still redirects to the listing.
    """

    regex = ".+"

    def convert(self, value: str) -> str:
        """The name as the path carries it (already percent-decoded by the server)."""
        return value

    def to_string(self, value: str) -> str:
        """The name in a URL built with `url_path_for`, percent-encoded whole ("/" too)."""
        return quote(value, safe="")


register_url_convertor("budget_name", BudgetNameConvertor())


async def _json_body(request: Request, timeout: float | None) -> Any:
    """The JSON body, read within `timeout` seconds (`http.body_timeout_seconds`).

    Without the limit a client trickling a body held its connection (and a slot of
    `http.max_connections`) for as long as it liked; like every other body, 408 and the connection closed.
    """
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind not in ("application/json", ""):
        raise BudgetError(415, f"unsupported content type {kind!r}; send application/json")
    try:
        body = await read_limited(request, MAX_BODY, timeout)
    except BodyTooLarge as exc:
        raise BudgetError(413, str(exc)) from None
    except BodyTimeout as exc:
        raise BudgetError(408, str(exc), headers={"Connection": "close"}) from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BudgetError(400, f"body is not valid JSON: {exc}") from None


def budget_routes(service: BudgetService, auth: AuthConfig, *, body_timeout: float | None = None) -> list[BaseRoute]:
    """Starlette routes for the budgets API.

    `body_timeout`: `http.body_timeout_seconds`, the longest a request body may take to arrive (408).
    """

    def guarded(
        tokens: list[str],
        handler: Callable[[Request], Awaitable[Response]],
        *,
        changes: bool = False,
        params: tuple[str, ...] = (),
        setting: str = "auth.admin_tokens",
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            denied = check_bearer(request, tokens, setting)
            if denied is None and changes:
                # Open without admin tokens: a page on any site could otherwise reset or delete a budget
                # (a no-cors POST with an untyped body needs no preflight), as for acks (origin.py).
                denied = refuse_foreign_origin(request, token_required=bool(tokens))
            if denied is None:
                # Only the parameters an endpoint reads: `?name=team-a` listed every budget.
                denied = unknown_params(request, params)
            if denied is not None:
                return denied
            try:
                return await handler(request)
            except BudgetError as exc:
                return error(exc.status, str(exc), exc.detail, headers=exc.headers)
            except StoreUnavailable:
                return error(503, "store unavailable, retry later", headers={"Retry-After": "5"})

        return endpoint

    async def list_budgets(_request: Request) -> Response:
        return ORJSONResponse({"budgets": await run_in_threadpool(service.listing)})

    async def get_budget(request: Request) -> Response:
        name = request.path_params["name"]
        body = await run_in_threadpool(service.status, name)
        given = request.query_params.get("periods")
        if given is not None:
            # Only when asked: the status object stays as it was, and its read stays one row per instance.
            try:
                periods = parse_periods(given, "periods")
            except HistoryError as exc:
                raise BudgetError(400, str(exc), {"field": "periods"}) from None
            body.update(await run_in_threadpool(service.history, name, periods))
        return ORJSONResponse(body)

    async def put_budget(request: Request) -> Response:
        raw = await _json_body(request, body_timeout)
        name = request.path_params["name"]
        budget = await run_in_threadpool(service.put, name, raw)
        status = await run_in_threadpool(service.status, budget.name)
        return ORJSONResponse({"definition": budget.to_json(), "status": status})

    async def delete_budget(request: Request) -> Response:
        await run_in_threadpool(service.delete, request.path_params["name"])
        return Response(status_code=204)

    async def reset_budget(request: Request) -> Response:
        raw = await _json_body(request, body_timeout)
        if not isinstance(raw, dict):
            raise BudgetError(
                422,
                'body must be an object with by (who resets), reason and, for a key "*" budget, key',
                {"field": "body"},
            )
        unknown = sorted(set(raw) - {"by", "reason", "key"})
        if unknown:
            raise BudgetError(
                422, f"{shown(unknown[0])}: unknown field (allowed: by, reason, key)", {"field": unknown[0]}
            )
        fields = {name: raw.get(name) for name in ("by", "reason", "key")}
        for field, value in fields.items():
            if value is not None and not isinstance(value, str):
                raise BudgetError(422, f"{field}: must be a string", {"field": field})
            if value is not None and "\x00" in value:
                # PostgreSQL cannot store it: the reset failed with an internal error, nothing said why.
                raise BudgetError(422, f"{field}: must not contain a NUL character", {"field": field})
        if not fields["by"]:
            raise BudgetError(422, "by: required (who resets; recorded)", {"field": "by"})
        name = request.path_params["name"]
        records = await run_in_threadpool(
            lambda: service.reset(name, by=str(fields["by"]), reason=fields["reason"] or "", key=fields["key"])
        )
        return ORJSONResponse({"resets": records, "status": await run_in_threadpool(service.status, name)})

    async def check(request: Request) -> Response:
        raw = await _json_body(request, body_timeout)
        return ORJSONResponse(await run_in_threadpool(service.check, raw))

    def admin_write(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        return guarded(auth.admin_tokens, handler, changes=True)

    return [
        Route("/v1/budgets/check", guarded(auth.ingest_tokens, check, setting="auth.ingest_tokens"), methods=["POST"]),
        Route("/v1/budgets", guarded(auth.admin_tokens, list_budgets), methods=["GET"]),
        Route(
            "/v1/budgets/{name:budget_name}",
            guarded(auth.admin_tokens, get_budget, params=("periods",)),
            methods=["GET"],
        ),
        Route("/v1/budgets/{name:budget_name}", admin_write(put_budget), methods=["PUT"]),
        Route("/v1/budgets/{name:budget_name}", admin_write(delete_budget), methods=["DELETE"]),
        Route("/v1/budgets/{name:budget_name}/reset", admin_write(reset_budget), methods=["POST"]),
    ]
