"""How many JSON values a body would become, counted before any of them is built.

A parser turns every JSON value into a Python object of 50 to 200 bytes: 60 MiB of `[{},{},…]` is
21 million dicts, several gigabytes. The ingest API therefore bounds the values of a body
(`ingest.max_json_values`) and counts them first, at C speed and without building anything.

Every JSON value is the root or follows a `[`, a `,` or a `:` outside strings (and, in NDJSON, each
line is a root), so their count is at most `1 + [ + , + :` counted outside strings. `values_bound`
first counts those bytes over the whole body, which is exact for bodies without such bytes in strings;
only when that count is over the limit does it strip strings (an RFC 3339 timestamp holds two colons)
and count again, still with bytes methods only.
"""

from __future__ import annotations

_STRUCTURE = b'[,:\\"u'
# Everything but the bytes that matter, deleted in one `bytes.translate`: what is left is short for
# ordinary bodies. `u` is kept so that a `\uXXXX` escape stays one escape once its digits are gone.
_DELETE = bytes(b for b in range(256) if b not in _STRUCTURE)
_CHUNK = 1 << 20


def _count(data: bytes) -> int:
    return data.count(b"[") + data.count(b",") + data.count(b":")


def values_bound(body: bytes, *, ndjson: bool, limit: int) -> int:
    """An upper bound on the JSON values `body` holds; exact enough to compare with `limit`.

    The bound is cheap when it is within `limit`; above it the count is taken again outside strings.
    """
    roots = body.count(b"\n") + 1 if ndjson else 1
    bound = roots + _count(body)
    if bound <= limit:
        return bound
    return roots + _count_outside_strings(body)


def _count_outside_strings(body: bytes) -> int:
    text = body.translate(None, _DELETE)
    # Escapes, left to right: `\\` first (so `\\"` ends its string), then `\"`, then `\u`; any other
    # escape's letter is gone already, so a lone backslash is left, and dropped.
    text = text.replace(b"\\\\", b"").replace(b'\\"', b"").replace(b"\\u", b"").replace(b"\\", b"")
    count = 0
    inside = False  # within a string at the start of the chunk
    for start in range(0, len(text), _CHUNK):
        parts = text[start : start + _CHUNK].split(b'"')
        outside = parts[1::2] if inside else parts[::2]
        count += _count(b"".join(outside))
        if len(parts) % 2 == 0:  # an odd number of quotes: the string state flips
            inside = not inside
    return count
