"""An event's metadata as the store keeps it, and the content hash standing in for a missing `request_id`.

Both encode with orjson and say its failures in the same words: no event that passes fails the write later.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from exporter.events.fields import CONTENT_FIELDS, MAX_METADATA_BYTES, MAX_METADATA_DEPTH
from exporter.events.usage_event import InvalidEvent

_CONTAINERS = (dict, list, tuple)
"""What metadata nests: JSON's objects and arrays (a tuple from a Python caller is an array)."""


def has_content(metadata: dict[str, Any]) -> bool:
    """Whether a `CONTENT_FIELDS` key is anywhere in `metadata`: at its top or in an object nested in it.

    Nested too: a client logging its request beside the usage (`"request": {"messages": [...]}`) or a
    tracer's `{"trace": {"input": ...}}` carries the prompt one level down. Flat metadata, the common case,
    costs one set test and one pass over its values (every event of a large batch comes through here).
    """
    if not CONTENT_FIELDS.isdisjoint(metadata):
        return True
    nested = [(value, 1) for value in metadata.values() if isinstance(value, _CONTAINERS)]
    while nested:
        item, depth = nested.pop()
        # Past the depth the store takes, `metadata_json` refuses the metadata anyway; stopping there also
        # ends the walk of a dict that holds itself.
        if depth > MAX_METADATA_DEPTH:
            continue
        children: Iterable[Any] = item
        if isinstance(item, dict):
            if not CONTENT_FIELDS.isdisjoint(item):
                return True
            children = item.values()
        nested.extend((value, depth + 1) for value in children if isinstance(value, _CONTAINERS))
    return False


def without_content(metadata: dict[str, Any]) -> dict[str, Any]:
    """`metadata` without its `CONTENT_FIELDS` (prompts, messages, completions: never stored), at every depth."""
    return {key: _without_content(value, 1) for key, value in metadata.items() if key not in CONTENT_FIELDS}


def _without_content(value: Any, depth: int) -> Any:
    if depth > MAX_METADATA_DEPTH:  # too deep to be stored at all: metadata_json refuses it, naming the depth
        return value
    if isinstance(value, dict):
        return {key: _without_content(item, depth + 1) for key, item in value.items() if key not in CONTENT_FIELDS}
    if isinstance(value, list | tuple):
        return [_without_content(item, depth + 1) for item in value]
    return value


def metadata_json(metadata: dict[str, Any], max_bytes: int = MAX_METADATA_BYTES) -> str:
    """`metadata` as the JSON text the store keeps, or `InvalidEvent` if it cannot be stored as such.

    Validation and serialisation are one step: whatever passes here is exactly what the write path
    stores, so no event can fail a shared commit later (too deep, an integer beyond 64 bits, a lone
    surrogate, NaN or Infinity, or larger than `max_bytes`).
    """
    try:
        data = orjson.dumps(metadata)
    except orjson.JSONEncodeError as exc:
        raise InvalidEvent("metadata", _unencodable(str(exc))) from None
    if len(data) > max_bytes:
        raise InvalidEvent(
            "metadata", f"is {len(data)} bytes as JSON; the limit is {max_bytes} (ingest.max_metadata_bytes)"
        )
    # The encoder writes NaN and Infinity as null; look for them only when a null is there at all.
    if b"null" in data and _has_non_finite(metadata):
        raise InvalidEvent("metadata", "holds NaN or Infinity, which JSON cannot carry")
    return data.decode()


def _unencodable(message: str) -> str:
    if "Recursion" in message:
        return f"is nested more than {MAX_METADATA_DEPTH} levels deep"
    if "Integer" in message:
        return "holds an integer outside the 64-bit range"
    if "surrogate" in message:
        return "holds a string that is not valid Unicode (a lone surrogate)"
    return f"cannot be stored as JSON ({message})"


def _has_non_finite(value: Any) -> bool:
    # Iterative: the depth is already known to be within the encoder's limit, but no recursion is cheaper.
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is float:
            if item != item or item in (math.inf, -math.inf):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def derived_request_id(obj: Mapping[str, Any]) -> str:
    """A content hash standing in for a missing `request_id`, so replaying a file stays idempotent."""
    try:
        content = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS, default=str)
    except orjson.JSONEncodeError as exc:  # the event one level deeper than its metadata: one level too many
        raise InvalidEvent(
            "request_id", f"is missing and cannot be derived: the event {_unencodable(str(exc))}"
        ) from None
    digest = hashlib.blake2b(content, digest_size=16)
    return "auto-" + digest.hexdigest()
