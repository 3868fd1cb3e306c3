"""Request bodies: read within a size and time limit (`exporter.body_records` splits them into records)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

NDJSON_TYPES = {"application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/ndjson"}
JSON_TYPES = {"application/json"}


class BodyTooLarge(Exception):
    """The body exceeds the configured limit (answered 413 before reading the rest)."""


class BodyTimeout(Exception):
    """The body did not arrive within the time allowed (answered 408)."""


async def read_limited(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The whole body, or `BodyTooLarge` as soon as it is known to exceed `limit` bytes.

    `BodyTimeout` when it takes longer than `timeout` seconds: a client trickling bytes holds a
    connection and a task for as long as it likes otherwise.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(f"body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"the body was not received within {timeout:g} s") from None
    return b"".join(chunks)


def media_type(request: Request) -> str:
    """The content type without parameters, lower-cased."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def unsupported_type(kind: str, *, also: str = "") -> str:
    """The 415 message for a body sent without a JSON content type: what came, and the header to add.

    `curl -d '{…}' URL` without `-H` sends `application/x-www-form-urlencoded`: the type an HTML form
    posts, which is refused so that a web page cannot post here (docs/limits.md). A bare "send
    application/json" left the user guessing which header, and how.
    """
    named = f"content type {kind!r}" if kind else "a request without a Content-Type"
    return (
        f"unsupported: {named}; add the header -H 'Content-Type: application/json'{also}; "
        "curl -d alone sends a form's type, refused so that a web page cannot post here"
    )
