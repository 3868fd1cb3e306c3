"""Query parameters an endpoint does not take: refused naming them, never ignored."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from exporter.http.errors import error, shown


def unknown_params(request: Request, allowed: tuple[str, ...]) -> Response | None:
    """400 naming a query parameter the endpoint does not take (and those it takes), or one given twice.

    A misspelt filter (`/v1/alerts?status=firing`: alerts take `state`, notifications `status`) was ignored,
    and the answer listed everything as if it were the filtered list. None when every parameter is taken.
    """
    for name in request.query_params:
        if name not in allowed:
            takes = f"allowed: {', '.join(allowed)}" if allowed else "this endpoint takes none"
            return error(400, f"{shown(name)}: unknown query parameter ({takes})", {"field": name})
        if len(request.query_params.getlist(name)) > 1:
            return error(400, f"{shown(name)}: given more than once", {"field": name})
    return None
