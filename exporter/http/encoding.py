"""`Content-Encoding` of request bodies: gzip and deflate decoded within a size limit.

OTLP exporters and many HTTP clients compress what they send. A compressed body is inflated here with
a hard cap on the output, so a small "zip bomb" is refused (413) after at most `limit` bytes instead
of filling the memory; an encoding not listed here is refused (415) rather than read as JSON.
"""

from __future__ import annotations

import zlib

# zlib's `wbits`: 16 + 15 reads a gzip member, 15 a zlib stream (HTTP's "deflate").
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
IDENTITY = ("", "identity")
SUPPORTED = ("gzip", "deflate", "identity")


class UnsupportedEncoding(ValueError):
    """A `Content-Encoding` this server does not decode (answered 415)."""


class DecodedTooLarge(ValueError):
    """The decoded body would exceed the limit (answered 413)."""


class BadEncoding(ValueError):
    """The body is not valid data of its declared encoding (answered 400)."""


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """`body` with its `Content-Encoding` undone, never more than `limit` bytes of output.

    Raises `UnsupportedEncoding`, `DecodedTooLarge` or `BadEncoding`; reusable by any endpoint that
    takes compressed bodies.
    """
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    # Codings are listed in the order they were applied: undo them from the last.
    for coding in reversed(codings):
        if coding in IDENTITY:
            continue
        wbits = _WBITS.get(coding)
        if wbits is None:
            raise UnsupportedEncoding(f"unsupported Content-Encoding {coding!r}; send {', '.join(SUPPORTED)}")
        body = _inflate(body, wbits, limit)
    return body


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        # max_length caps the output: zlib stops there and keeps the rest as unconsumed input.
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BadEncoding(f"body is not valid compressed data: {exc}") from None
    if len(out) > limit:
        raise DecodedTooLarge(f"decompressed body exceeds the limit of {limit} bytes")
    if not inflater.eof:
        raise BadEncoding("compressed body is truncated")
    if inflater.unused_data:
        raise BadEncoding("data after the end of the compressed body")
    return out
