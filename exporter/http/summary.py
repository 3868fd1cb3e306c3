"""`GET /v1/usage/summary?by=user|session|project|model|service|provider&since=…&until=…` (admin token)."""

from __future__ import annotations

import math
import re
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exporter.http.auth import check_bearer
from exporter.http.errors import ORJSONResponse, error, shown
from exporter.local_time import zone
from exporter.report.periods import parse_when
from exporter.services import Services
from exporter.store import StoreUnavailable
from exporter.usage_summary import BY, MAX_ROWS, summarize

DEFAULT_WINDOW_SECONDS = 86_400.0
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_AGE = re.compile(r"\d+(?:\.\d+)?[mhdw]")
_DECODED_PLUS = re.compile(r"^(.*[Tt ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")
LAST_INSTANT = 253_402_300_799.0
"""9999-12-31T23:59:59Z, the latest time RFC 3339 can write; larger epoch seconds are refused."""


def parse_instant(value: str, name: str, *, now: float, tz: str = "UTC") -> float:
    """Epoch seconds from epoch seconds, an RFC 3339 time (with a zone), a date or an age (`7d`) before `now`.

    Dates and ages are read as `llmcost report` reads them (`2026-12-01` is midnight in `tz`, UTC unless
    `timezone=` says otherwise, as `--timezone` does for the command), so a range given to the command
    works here too; a time without a zone stays refused (whose midnight?).
    """
    try:
        number = float(value)
    except ValueError:
        if _DATE.fullmatch(value) or _AGE.fullmatch(value):
            try:
                number = parse_when(value, now=now, tz=tz)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        else:
            # `?since=2026-12-01T09:00:00+01:00` typed into a URL arrives with a space for the `+` (a query
            # string's `+` is a space); a space where an offset's sign goes can mean nothing else.
            value = _DECODED_PLUS.sub(r"\1+\2", value)
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(
                    f"{name}: expected RFC 3339, epoch seconds, a date or an age such as 7d, got {value[:64]!r}"
                ) from None
            if parsed.tzinfo is None:
                raise ValueError(f"{name}: give a time zone (e.g. 2026-12-01T00:00:00Z)") from None
            return parsed.timestamp()
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name}: must be a time after 1970")
    if number > LAST_INSTANT:  # its 5-minute bucket would overflow the 64-bit column: a 500 before
        raise ValueError(f"{name}: must be a time before the year 10000")
    return number


PARAMETERS = ("by", "since", "until", "timezone", "session", "limit")


def summary_routes(services: Services) -> list[BaseRoute]:
    """The usage summary route."""

    async def summary(request: Request) -> Response:
        denied = check_bearer(request, services.config.auth.admin_tokens, "auth.admin_tokens")
        if denied is not None:
            return denied
        query = request.query_params
        unknown = sorted(set(query) - set(PARAMETERS))
        if unknown:
            # A label is not a filter here: `?project=search` is `by=project` (every project's row).
            grouped = [name for name in unknown if name in BY]
            hint = f"; to list by {grouped[0]}: by={grouped[0]}" if grouped else ""
            return error(
                422,
                f"unknown query parameter(s): {', '.join(map(shown, unknown))} "
                f"(allowed: {', '.join(PARAMETERS)}){hint}",
            )
        repeated = sorted(name for name in set(query) if len(query.getlist(name)) > 1)
        if repeated:
            return error(422, f"give each parameter once: {', '.join(repeated)} repeated")
        by = query.get("by", "project")
        if by not in BY:
            return error(422, f"by must be one of {', '.join(BY)}, got {by[:32]!r}")
        try:
            now = services.clock()
            tz = query.get("timezone", "UTC")
            try:
                zone(tz)
            except ValueError as exc:
                raise ValueError(f"timezone: {exc} (an IANA name, e.g. America/Los_Angeles)") from None
            until = parse_instant(query["until"], "until", now=now, tz=tz) if "until" in query else now
            since = (
                parse_instant(query["since"], "since", now=now, tz=tz)
                if "since" in query
                else until - DEFAULT_WINDOW_SECONDS
            )
        except ValueError as exc:
            return error(422, str(exc))
        limit_text = query.get("limit", "1000")
        if not (limit_text.isascii() and limit_text.isdigit()) or not 1 <= int(limit_text) <= MAX_ROWS:
            return error(422, f"limit: a whole number from 1 to {MAX_ROWS:,}, got {limit_text[:32]!r}")
        limit = int(limit_text)
        if since >= until:
            return error(422, "since must be before until")
        session = query.get("session")
        if session is not None and by != "session":
            return error(422, "session= narrows by=session only")
        try:
            found = await run_in_threadpool(
                lambda: summarize(
                    services.store,
                    by,
                    since,
                    until,
                    session=session,
                    limit=limit,
                    events_cutoff=services.config.retention.events_cutoff(now),
                )
            )
        except StoreUnavailable:
            return error(503, "store unavailable, retry later", headers={"Retry-After": "5"})
        return ORJSONResponse(found.to_json())

    return [Route("/v1/usage/summary", summary, methods=["GET"])]
