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
