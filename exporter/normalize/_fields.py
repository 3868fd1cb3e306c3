"""Reading token counts and nested objects out of foreign records, with errors that name the field.

Every mapper reads through these helpers so that a bad value is reported the same way everywhere:
`InvalidEvent("usage.prompt_tokens_details.cached_tokens", "must be a non-negative integer, got str")`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.events import InvalidEvent

_EMPTY: Mapping[str, Any] = {}
_MODALITIES = ("audio", "image", "video")


def count(obj: Mapping[str, Any], key: str, path: str) -> int | None:
    """`obj[key]` as a token count, or None when absent or null; anything else raises `InvalidEvent`."""
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is int:
        if value < 0:
            raise InvalidEvent(f"{path}.{key}", f"must be >= 0, got {value}")
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(f"{path}.{key}", f"must be a non-negative integer, got {type(value).__name__}")
    raise InvalidEvent(f"{path}.{key}", f"must be a non-negative whole number, got {value!r}")


def count0(obj: Mapping[str, Any], key: str, path: str) -> int:
    """Like `count`, with an absent or null value read as 0."""
    value = count(obj, key, path)
    return 0 if value is None else value


def first_count(obj: Mapping[str, Any], keys: tuple[str, ...], path: str) -> int | None:
    """Return the first of `keys` present in `obj` (providers rename fields between API versions)."""
    for key in keys:
        value = count(obj, key, path)
        if value is not None:
            return value
    return None


def sub(obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    """Return the nested object `obj[key]`; absent or null gives an empty mapping."""
    value = obj.get(key)
    if value is None:
        return _EMPTY
    if not isinstance(value, Mapping):
        raise InvalidEvent(f"{path}.{key}", f"must be an object, got {type(value).__name__}")
    return value


def tokens(
    input_tokens: int,
    cache_read: int = 0,
    cache_write: int = 0,
    output: int = 0,
    reasoning: int = 0,
) -> dict[str, int]:
    """Return the canonical token partition as event fields."""
    return {
        "input_tokens": input_tokens,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "output_tokens": output,
        "reasoning_tokens": reasoning,
    }


def with_media(
    mapped: dict[str, int], modality: str, input_part: int, cache_read_part: int, output_part: int, path: str
) -> dict[str, int]:
    """`mapped` with the `modality` (audio, image, video) parts of its input, cache read and output tokens.

    Only the parts that are not 0 are set; with the other modalities' parts they cannot exceed their whole.
    """
    for whole, value in (("input", input_part), ("cache_read", cache_read_part), ("output", output_part)):
        if value:
            name, whole_name = f"{whole}_{modality}_tokens", f"{whole}_tokens"
            others = sum(mapped.get(f"{whole}_{other}_tokens", 0) for other in _MODALITIES if other != modality)
            if value + others > mapped[whole_name]:
                raise InvalidEvent(
                    path, f"{value} {name} exceed the {mapped[whole_name] - others} {whole_name} that include them"
                )
            mapped[name] = value
    return mapped


def uncached(total: int, total_name: str, parts: tuple[tuple[str, int], ...]) -> int:
    """`total` minus its cached parts; a negative remainder means the record contradicts itself."""
    remainder = total - sum(value for _, value in parts)
    if remainder < 0:
        described = " + ".join(f"{name} ({value})" for name, value in parts if value)
        raise InvalidEvent(total_name, f"({total}) is smaller than the cached tokens it includes: {described}")
    return remainder


def check_reasoning(reasoning: int, output: int, reasoning_name: str, output_name: str) -> None:
    """Reasoning tokens are part of output tokens; more reasoning than output is inconsistent data."""
    if reasoning > output:
        raise InvalidEvent(reasoning_name, f"({reasoning}) exceeds {output_name} ({output}), which includes it")
