"""JSON error responses in the API's one shape: `{"error": "...", "detail": ...}`."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse, Response


class ORJSONResponse(JSONResponse):
    """JSONResponse rendered with orjson (large ingest responses, non-str keys safe)."""

    def render(self, content: Any) -> bytes:
        """Serialise with orjson."""
        return orjson.dumps(content)


def error(status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None) -> Response:
    """An error response; `detail` carries structured context such as the offending field."""
    return ORJSONResponse({"error": message, "detail": detail}, status_code=status, headers=headers)


def shown(value: str, limit: int = 64) -> str:
    r"""`value` as an error message may echo it: as written when printable, else escaped, and bounded.

    A query parameter's name or a path is whatever the client sent: `?pro\u202eject=x` echoed raw showed
    the rest of the answer reversed in a terminal (a bidi control), and a 10,000-character name came back
    whole. Control, bidi and zero-width characters are not printable, so `repr` escapes them.
    """
    cut = value[:limit]
    text = cut if cut.isprintable() else repr(cut)
    return text + ("…" if len(value) > limit else "")
