"""The canonical usage event and its validation.

Every input form (canonical JSON, provider `usage` objects, LiteLLM rows, OpenTelemetry GenAI
attributes) is first mapped to a canonical dict by `exporter.normalize`; `parse_event` then checks
that dict field by field and returns a `UsageEvent`, or raises `InvalidEvent` naming the field and
the reason. This function is on the ingest hot path: it is written for speed (no per-event
allocation beyond the result, no regexes).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
import orjson

NANOS_PER_USD = 1_000_000_000
LABEL_MAX_LEN = 256
REQUEST_ID_MAX_LEN = 256
MAX_TOKENS = 10**12
MAX_COST_USD = 1_000_000
MAX_LATENCY_MS = 86_400_000  # a day
# 2000-01-01T00:00:00Z: nothing older is a plausible recorded LLM call.
MIN_TIMESTAMP = 946_684_800.0
MAX_METADATA_BYTES = 16 * 1024  # `ingest.max_metadata_bytes`: metadata as stored JSON
MAX_METADATA_DEPTH = 254  # the deepest nesting the JSON encoder of the write path takes

TOKEN_FIELDS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)
CACHE_WRITE_1H = "cache_write_1h_tokens"
"""The part of `cache_write_tokens` written with a one-hour lifetime (Anthropic); priced at its own rate."""
MEDIA_FIELDS = tuple(
    (f"{whole}_{modality}_tokens", f"{whole}_tokens")
    for modality in ("audio", "image", "video")
    for whole in ("input", "cache_read", "output")
)
"""The audio, image and video parts of three token fields (`(part, whole)`), three per modality:
`input_audio_tokens` is part of `input_tokens`, and so on. Audio usually costs 10-20x text, generated
images 10x; they are priced apart where the price has a rate for them.

Not in `KNOWN_FIELDS`: like any other field outside the canonical table they are also kept in `metadata`,
which is where `llmcost reprice` reads them back (the store has no columns for them).
"""
AUDIO_FIELDS, IMAGE_FIELDS, VIDEO_FIELDS = MEDIA_FIELDS[:3], MEDIA_FIELDS[3:6], MEDIA_FIELDS[6:]
WEB_SEARCHES = "web_search_requests"
"""Server-side web searches the call ran (Anthropic's `server_tool_use.web_search_requests`), billed per
search on top of the tokens. Like the media parts, not in `KNOWN_FIELDS`: kept in `metadata`, where
`llmcost reprice` reads it back."""
FILE_SEARCHES = "file_search_requests"
"""File searches the call ran (OpenAI Responses' `file_search_call` output items: searches of a vector
store), billed per call on top of the tokens. Kept in `metadata` like `WEB_SEARCHES`."""
SERVICE_TIER = "service_tier"
"""The provider's service tier or processing mode that served the call (`batch`, `flex`, `priority`, …, as
OpenAI's response `service_tier` and Anthropic's `usage.service_tier` name it): tiers have their own
prices. Kept in `metadata` like `WEB_SEARCHES`, where `llmcost reprice` reads it back."""
CITATION_TOKENS = "citation_tokens"
"""The part of `output_tokens` that are citation tokens (Perplexity Deep Research's `citation_tokens`),
which some models price apart. Kept in `metadata` like `WEB_SEARCHES`, where `llmcost reprice` reads it back."""
INFERENCE_GEO = "inference_geo"
"""Where the call's inference ran, as Anthropic's `usage.inference_geo` says (`global`, `us`,
`not_available`): US-only inference costs more. Kept in `metadata` like `SERVICE_TIER`."""
SERVICE_TIER_MAX_LEN = 64
MAX_WEB_SEARCHES = 10**6
"""The most web searches one call may report: far above any real call (Anthropic's `max_uses` is per
request and small), low enough that no search price can overflow a call's stored cost."""
LABEL_FIELDS = ("project", "user", "service")
KNOWN_FIELDS = frozenset(
    (
        "request_id",
        "timestamp",
        "provider",
        "model",
        *TOKEN_FIELDS,
        CACHE_WRITE_1H,
        "cost_usd",
        "latency_ms",
        "status",
        *LABEL_FIELDS,
        "session",
        "metadata",
    )
)
STATUSES = frozenset(("success", "error"))
CONTENT_FIELDS = frozenset(
    (
        "messages",
        "prompt",
        "prompts",
        "completion",
        "completions",
        "choices",
        "content",
        "input",
        "inputs",
        "output",
        "outputs",
        "output_text",
        "instructions",
        "system",
        "response",
        "tools",
        "tool_calls",
        "functions",
        "function_call",
        "arguments",
        "suffix",
    )
)
"""Fields that carry what was said to or by the model (the names the provider APIs, LiteLLM and SDKs
use). llmcost stores no content (docs/sending-data.md): these are dropped, whether they come as
unknown fields of an event (which are otherwise kept in `metadata`) or as keys of its `metadata`."""

FOREIGN_COUNTS: dict[str, str] = {
    # OpenAI Chat Completions (and the many APIs that copy it), DeepSeek
    "prompt_tokens": "input_tokens",
    "completion_tokens": "output_tokens",
    "cached_tokens": "cache_read_tokens",
    "prompt_cache_hit_tokens": "cache_read_tokens",
    "prompt_cache_miss_tokens": "input_tokens",
    # Anthropic Messages
    "cache_read_input_tokens": "cache_read_tokens",
    "cache_creation_input_tokens": "cache_write_tokens",
    # Bedrock Converse
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "cacheReadInputTokens": "cache_read_tokens",
    "cacheWriteInputTokens": "cache_write_tokens",
    # Gemini
    "promptTokenCount": "input_tokens",
    "candidatesTokenCount": "output_tokens",
    "cachedContentTokenCount": "cache_read_tokens",
    "thoughtsTokenCount": "output_tokens",
    # OpenTelemetry GenAI attributes (and early OpenLLMetry's), beside a `provider`
    "gen_ai.usage.input_tokens": "input_tokens",
    "gen_ai.usage.prompt_tokens": "input_tokens",
    "llm.usage.prompt_tokens": "input_tokens",
    "gen_ai.usage.output_tokens": "output_tokens",
    "gen_ai.usage.completion_tokens": "output_tokens",
    "llm.usage.completion_tokens": "output_tokens",
    "gen_ai.usage.cache_read.input_tokens": "cache_read_tokens",
    "gen_ai.usage.cache_read_input_tokens": "cache_read_tokens",
    "gen_ai.usage.cache_creation.input_tokens": "cache_write_tokens",
    "gen_ai.usage.cache_creation_input_tokens": "cache_write_tokens",
    # Totals stand for no one field: "" = any of the token counts
    "total_tokens": "",
    "totalTokens": "",
    "totalTokenCount": "",
    "llm.usage.total_tokens": "",
    # A whole Gemini usage object under the response's own key rather than as `usage`
    "usageMetadata": "usage object",
    "usage_metadata": "usage object",
}
"""Token counts under a provider's or OpenTelemetry's own name, each with the canonical field that counts
them. Sent at the top level of a canonical event (a flattened `usage`, `gen_ai.*` attributes beside a
`provider`, Gemini's `usage_metadata` object) they are unknown fields: kept in `metadata`, they would
leave the call stored with no tokens and no cost, as if it were free. `parse_event` rejects such an
event unless the canonical field is given too (then the foreign count is only a note, kept in
`metadata` as before)."""


class InvalidEvent(ValueError):
    """An event that cannot be stored; `field` names the offending field.

    `where` says where the record is in its file (`line 8`), when a reader knows it: it comes first in
    the message (`line 8: cost_usd: is not a number: '$0.10'`).
    """

    def __init__(self, field: str, reason: str, where: str = "") -> None:
        message = f"{field}: {reason}" if field else reason
        super().__init__(f"{where}: {message}" if where else message)
        self.field = field
        self.reason = reason
        self.where = where


class UsageEvent(msgspec.Struct):
    """One recorded LLM call in canonical form. Money is integer nano-dollars (exact sums).

    A msgspec `Struct` rather than a dataclass: one is made per event ingested, and a Struct is built in
    C (~0.3 µs against ~1.5 µs for the slotted dataclass's generated `__init__`). Mutable (pricing fills
    the cost), compared field by field.
    """

    request_id: str
    timestamp: float
    provider: str
    model: str
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanousd: int | None = None  # as supplied; None means "price it"
    latency_ms: float | None = None
    status: str = "success"
    project: str = ""
    user: str = ""
    service: str = ""
    metadata: dict[str, Any] | None = None
    # Set by pricing: "supplied" (cost_usd given), "priced" (price table), "unpriced" (cost 0, unknown model).
    cost_source: str = ""
    # The part of cache_write_tokens written for one hour (Anthropic's 1-hour cache), priced apart.
    cache_write_1h_tokens: int = 0
    # Provenance of a "priced" cost: which price table (or override entry) and since when its price held.
    price_source: str = ""
    price_from: str = ""
    session: str = ""
    """The conversation or agent run the call belongs to (`session`, else `metadata.session_id`); never a label."""
    # The audio, image and video parts of input_tokens, cache_read_tokens and output_tokens (`MEDIA_FIELDS`).
    input_audio_tokens: int = 0
    cache_read_audio_tokens: int = 0
    output_audio_tokens: int = 0
    input_image_tokens: int = 0
    cache_read_image_tokens: int = 0
    output_image_tokens: int = 0
    input_video_tokens: int = 0
    cache_read_video_tokens: int = 0
    output_video_tokens: int = 0
    # Server-side web searches the call ran (`WEB_SEARCHES`), priced per search.
    web_search_requests: int = 0
    # File searches the call ran (`FILE_SEARCHES`), priced per search.
    file_search_requests: int = 0
    # The service tier or processing mode that served the call (`SERVICE_TIER`), lower-cased; "" = standard.
    service_tier: str = ""
    # Where the inference ran (`INFERENCE_GEO`), lower-cased; "" = not said.
    inference_geo: str = ""
    # The part of output_tokens that are citation tokens (`CITATION_TOKENS`), priced apart by some models.
    citation_tokens: int = 0

    # `metadata` as the JSON text stored, made once by `metadata_json` when the event is validated.
    metadata_text: str | None = None


def session_of(event: UsageEvent) -> str | None:
    """The session an event is stored under: its `session`, else a printable `metadata.session_id`."""
    if event.session:
        return event.session
    metadata = event.metadata
    if metadata:
        value = metadata.get("session_id")
        if type(value) is str and value and len(value) <= LABEL_MAX_LEN and value.isprintable():
            return value
    return None


def shed_metadata(event: UsageEvent) -> None:
    """Drop a validated event's metadata dict, keeping what the store writes of it: text and session.

    A parsed metadata object costs several times its JSON text in memory; an event that only waits for
    its commit needs `metadata_text` and the session `session_of` finds (docs/limits.md, "Memory per
    request"). The event is stored exactly as before.
    """
    if event.metadata_text is not None:
        if not event.session:
            event.session = session_of(event) or ""
        event.metadata = None


def usd_to_nanos(value: Decimal | float | int | str) -> int:
    """Convert dollars to integer nano-dollars, rounding half-even at the nano-dollar."""
    dec = value if isinstance(value, Decimal) else Decimal(str(value))
    return int((dec * NANOS_PER_USD).to_integral_value())


def nanos_to_usd(nanos: int) -> float:
    """Nano-dollars as a float, for metrics and JSON output."""
    return nanos / NANOS_PER_USD


def _check_label(name: str, value: Any, *, required: bool) -> str:
    if value is None:
        if required:
            raise InvalidEvent(name, "is required")
        return ""
    if not isinstance(value, str):
        raise InvalidEvent(name, f"must be a string, got {type(value).__name__}")
    if required and not value:
        raise InvalidEvent(name, "must not be empty")
    if len(value) > LABEL_MAX_LEN:
        raise InvalidEvent(name, f"is {len(value)} characters long; the limit is {LABEL_MAX_LEN}")
    if not value.isprintable():
        raise InvalidEvent(name, "contains control characters")
    return value


def priced_extras(metadata: Mapping[str, Any], output_room: int = 0) -> tuple[int, str, int, str, int]:
    """The web searches, service tier, file searches, inference geo and citation tokens a call is priced with.

    Read from its (stored) metadata. Citation tokens are a part of the output: a count above
    `output_room` (output tokens less reasoning tokens) is not a well-formed one, and is 0.

    Ingest and `llmcost reprice` both read them here, so a reprice prices a call as ingest did. The
    event fields were validated and written into the metadata; a key only the caller's own metadata
    holds is taken when it is well formed, else ignored (metadata is free-form). Without either key,
    the provider usage kept in `metadata["usage"]` says (Anthropic's `server_tool_use.web_search_requests`,
    `service_tier`, `speed` and `inference_geo`, Perplexity's `num_search_queries`), as ingest read it: so
    calls stored before these fields existed are repriced with them.
    """
    usage = metadata.get("usage")
    if isinstance(usage, Mapping) and not (
        WEB_SEARCHES in metadata and SERVICE_TIER in metadata and INFERENCE_GEO in metadata
    ):
        metadata = {**_usage_extras(usage), **metadata}
    count = metadata.get(WEB_SEARCHES)
    searches = 0
    if isinstance(count, int | float) and not isinstance(count, bool) and 0 <= count <= MAX_WEB_SEARCHES:
        searches = int(count) if count == int(count) else 0
    tier = metadata.get(SERVICE_TIER)
    if type(tier) is not str or len(tier) > SERVICE_TIER_MAX_LEN or not tier.isprintable():
        tier = ""
    return (
        searches,
        tier.strip().lower(),
        _search_count(metadata.get(FILE_SEARCHES)),
        _text(metadata.get(INFERENCE_GEO)),
        _part_count(metadata.get(CITATION_TOKENS), output_room),
    )


def _text(value: Any) -> str:
    """A well-formed short text value from metadata (a tier, a geo), lower-cased; else ""."""
    if type(value) is not str or len(value) > SERVICE_TIER_MAX_LEN or not value.isprintable():
        return ""
    return value.strip().lower()


def _part_count(count: Any, room: int) -> int:
    """A well-formed token count from metadata that fits in `room`, else 0."""
    if type(count) is int and 0 <= count <= room:
        return count
    return 0


def _search_count(count: Any) -> int:
    """A well-formed search count from metadata, else 0 (metadata is free-form)."""
    if isinstance(count, int | float) and not isinstance(count, bool) and 0 <= count <= MAX_WEB_SEARCHES:
        return int(count) if count == int(count) else 0
    return 0


def _usage_extras(usage: Mapping[str, Any]) -> dict[str, Any]:
    """The web searches and tier a provider usage object reports (the normalizers' reading of it)."""
    out: dict[str, Any] = {}
    tools = usage.get("server_tool_use")
    searches = tools.get("web_search_requests") if isinstance(tools, Mapping) else usage.get("num_search_queries")
    if searches:
        out[WEB_SEARCHES] = searches
    tier = "fast" if usage.get("speed") == "fast" else usage.get("service_tier")
    if tier is not None:
        out[SERVICE_TIER] = tier
    if usage.get(INFERENCE_GEO) is not None:
        out[INFERENCE_GEO] = usage[INFERENCE_GEO]
    return out


def _check_count(name: str, value: Any) -> int:
    if value is None:
        return 0
    if type(value) is int:
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(name, f"must be a non-negative integer, got {type(value).__name__}")
    else:
        raise InvalidEvent(name, f"must be a whole number, got {value!r}")
    if number < 0:
        raise InvalidEvent(name, f"must be >= 0, got {number}")
    if number > MAX_TOKENS:
        raise InvalidEvent(name, f"is implausibly large ({number})")
    return number


def check_number(name: str, value: Any, upper: float) -> float:
    """A finite number in [0, upper] as a float, else `InvalidEvent` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(name, f"must be a number, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise InvalidEvent(name, "must be a finite number")
    if number < 0:
        raise InvalidEvent(name, f"must be >= 0, got {value}")
    if number > upper:
        raise InvalidEvent(name, f"is implausibly large ({value})")
    return number


_EPOCH_TEXT = re.compile(r"[0-9]+(\.[0-9]*)?")


def parse_timestamp(value: Any, *, now: float, max_future_skew: float) -> float:
    """An RFC 3339 string or epoch seconds, as epoch seconds; naive strings are taken as UTC."""
    if (type(value) is float or type(value) is int) and MIN_TIMESTAMP <= value <= now + max_future_skew:
        return float(value)
    if value is None:
        return now
    if isinstance(value, bool):
        raise InvalidEvent("timestamp", "must be an RFC 3339 string or epoch seconds, got bool")
    if isinstance(value, int | float):
        ts = float(value)
        if math.isnan(ts) or math.isinf(ts):
            raise InvalidEvent("timestamp", "must be a finite number")
        if ts > 1e11:
            raise InvalidEvent("timestamp", f"{value} looks like milliseconds; send epoch seconds")
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            # Loggers often write epoch seconds as a string: say how to send them rather than only "no".
            hint = " (epoch seconds go as a number, not a string)" if _EPOCH_TEXT.fullmatch(text) else ""
            raise InvalidEvent("timestamp", f"is not RFC 3339: {value[:64]!r}{hint}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts = parsed.timestamp()
    else:
        raise InvalidEvent("timestamp", f"must be an RFC 3339 string or epoch seconds, got {type(value).__name__}")
    if ts < MIN_TIMESTAMP:
        raise InvalidEvent("timestamp", "is before the year 2000")
    if ts > now + max_future_skew:
        raise InvalidEvent("timestamp", f"is {ts - now:.0f} s in the future (allowed skew {max_future_skew:.0f} s)")
    return ts


def without_content(metadata: dict[str, Any]) -> dict[str, Any]:
    """`metadata` without its `CONTENT_FIELDS` (prompts, messages, completions: never stored)."""
    return {key: value for key, value in metadata.items() if key not in CONTENT_FIELDS}


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


def parse_event(
    obj: Any, *, now: float, max_future_skew: float = 300.0, max_metadata_bytes: int = MAX_METADATA_BYTES
) -> UsageEvent:
    """Validate one canonical event dict; unknown fields are kept in `metadata`."""
    if type(obj) is not dict and not isinstance(obj, Mapping):  # the exact check first: ABC checks are slow
        raise InvalidEvent("", f"an event must be a JSON object, got {type(obj).__name__}")
    get = obj.get
    request_id = get("request_id")
    if request_id is None:
        pass  # derived from the content once every field is known to be storable (see the end)
    elif not isinstance(request_id, str) or not request_id:
        raise InvalidEvent("request_id", "must be a non-empty string")
    elif len(request_id) > REQUEST_ID_MAX_LEN or not request_id.isprintable():
        raise InvalidEvent("request_id", f"must be printable and at most {REQUEST_ID_MAX_LEN} characters")

    provider = get("provider")
    if type(provider) is not str or not provider or len(provider) > LABEL_MAX_LEN or not provider.isprintable():
        provider = _check_label("provider", provider, required=True)
    model = get("model")
    if type(model) is not str or not model or len(model) > LABEL_MAX_LEN or not model.isprintable():
        model = _check_label("model", model, required=True)
    timestamp = parse_timestamp(get("timestamp"), now=now, max_future_skew=max_future_skew)

    # Plain non-negative ints are the norm; anything else takes the checking path with its message.
    input_tokens = get("input_tokens", 0)
    if type(input_tokens) is not int or not 0 <= input_tokens <= MAX_TOKENS:
        input_tokens = _check_count("input_tokens", input_tokens)
    cache_read = get("cache_read_tokens", 0)
    if type(cache_read) is not int or not 0 <= cache_read <= MAX_TOKENS:
        cache_read = _check_count("cache_read_tokens", cache_read)
    cache_write = get("cache_write_tokens", 0)
    if type(cache_write) is not int or not 0 <= cache_write <= MAX_TOKENS:
        cache_write = _check_count("cache_write_tokens", cache_write)
    output_tokens = get("output_tokens", 0)
    if type(output_tokens) is not int or not 0 <= output_tokens <= MAX_TOKENS:
        output_tokens = _check_count("output_tokens", output_tokens)
    reasoning = get("reasoning_tokens", 0)
    if type(reasoning) is not int or not 0 <= reasoning <= MAX_TOKENS:
        reasoning = _check_count("reasoning_tokens", reasoning)
    if reasoning > output_tokens:
        raise InvalidEvent("reasoning_tokens", f"({reasoning}) cannot exceed output_tokens ({output_tokens})")
    write_1h = get(CACHE_WRITE_1H, 0)
    if write_1h:
        write_1h = _check_count(CACHE_WRITE_1H, write_1h)
        if write_1h > cache_write:
            raise InvalidEvent(
                CACHE_WRITE_1H, f"({write_1h}) cannot exceed cache_write_tokens ({cache_write}), which includes it"
            )

    media = _media_counts(get, input_tokens, cache_read, output_tokens)
    searches = get(WEB_SEARCHES)
    if searches is not None:
        searches = _check_count(WEB_SEARCHES, searches)
        if searches > MAX_WEB_SEARCHES:
            raise InvalidEvent(WEB_SEARCHES, f"is implausibly large ({searches})")
    file_searches = get(FILE_SEARCHES)
    if file_searches is not None:
        file_searches = _check_count(FILE_SEARCHES, file_searches)
        if file_searches > MAX_WEB_SEARCHES:
            raise InvalidEvent(FILE_SEARCHES, f"is implausibly large ({file_searches})")
    tier = get(SERVICE_TIER)
    if tier is not None and (type(tier) is not str or len(tier) > SERVICE_TIER_MAX_LEN or not tier.isprintable()):
        raise InvalidEvent(SERVICE_TIER, f"must be a printable string of at most {SERVICE_TIER_MAX_LEN} characters")
    citations = get(CITATION_TOKENS)
    if citations is not None:
        citations = _check_count(CITATION_TOKENS, citations)
        if citations > output_tokens - reasoning:
            raise InvalidEvent(
                CITATION_TOKENS,
                f"({citations}) plus reasoning_tokens ({reasoning}) cannot exceed output_tokens ({output_tokens}), "
                "which includes them",
            )
    geo = get(INFERENCE_GEO)
    if geo is not None and (type(geo) is not str or len(geo) > SERVICE_TIER_MAX_LEN or not geo.isprintable()):
        raise InvalidEvent(INFERENCE_GEO, f"must be a printable string of at most {SERVICE_TIER_MAX_LEN} characters")

    cost = get("cost_usd")
    cost_nanos: int | None = None
    if cost is not None:
        if isinstance(cost, str):
            try:
                decimal_cost = Decimal(cost)
            except InvalidOperation:
                raise InvalidEvent("cost_usd", f"is not a number: {cost[:32]!r}") from None
            if not decimal_cost.is_finite():
                raise InvalidEvent("cost_usd", "must be a finite number")
            cost_value: Decimal | float = decimal_cost
            if decimal_cost < 0 or decimal_cost > MAX_COST_USD:
                raise InvalidEvent("cost_usd", f"must be between 0 and {MAX_COST_USD}")
        else:
            cost_value = check_number("cost_usd", cost, MAX_COST_USD)
        cost_nanos = usd_to_nanos(cost_value)

    latency = get("latency_ms")
    latency_ms = None if latency is None else check_number("latency_ms", latency, MAX_LATENCY_MS)

    status = get("status")
    if status is None:
        status = "success"
    elif status not in STATUSES:
        raise InvalidEvent("status", f"must be 'success' or 'error', got {str(status)[:32]!r}")

    metadata = get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidEvent("metadata", f"must be an object, got {type(metadata).__name__}")
    if not KNOWN_FIELDS.issuperset(obj):
        extra = {k: v for k, v in obj.items() if k not in KNOWN_FIELDS}
        if not FOREIGN_COUNTS.keys().isdisjoint(extra):
            _check_foreign_counts(extra, get)
        if extra:
            metadata = {**extra, **(metadata or {})}
            # What the call is priced with wins over a metadata key of the same name: `llmcost reprice`
            # reads it back from the stored metadata and must price the call as ingest did.
            if searches is not None and metadata.get(WEB_SEARCHES) != searches:
                metadata[WEB_SEARCHES] = searches
            if tier is not None and metadata.get(SERVICE_TIER) != tier:
                metadata[SERVICE_TIER] = tier
            if file_searches is not None and metadata.get(FILE_SEARCHES) != file_searches:
                metadata[FILE_SEARCHES] = file_searches
            if geo is not None and metadata.get(INFERENCE_GEO) != geo:
                metadata[INFERENCE_GEO] = geo
            if citations is not None and metadata.get(CITATION_TOKENS) != citations:
                metadata[CITATION_TOKENS] = citations
    searches, tier, file_searches, geo, citations = (
        priced_extras(metadata, output_tokens - reasoning) if metadata else (0, "", 0, "", 0)
    )
    if metadata and not CONTENT_FIELDS.isdisjoint(metadata):
        metadata = without_content(metadata)
    text = metadata_json(metadata, max_metadata_bytes) if metadata else None
    if request_id is None:
        request_id = derived_request_id(obj)

    project = get("project", "")
    if type(project) is not str or len(project) > LABEL_MAX_LEN or not project.isprintable():
        project = _check_label("project", project, required=False)
    user = get("user", "")
    if type(user) is not str or len(user) > LABEL_MAX_LEN or not user.isprintable():
        user = _check_label("user", user, required=False)
    service = get("service", "")
    if type(service) is not str or len(service) > LABEL_MAX_LEN or not service.isprintable():
        service = _check_label("service", service, required=False)
    session = get("session")
    session = "" if session is None else _check_label("session", session, required=False)
    return UsageEvent(
        request_id,
        timestamp,
        provider,
        model,
        input_tokens,
        cache_read,
        cache_write,
        output_tokens,
        reasoning,
        cost_nanos,
        latency_ms,
        status,
        project,
        user,
        service,
        metadata or None,
        cache_write_1h_tokens=write_1h,
        session=session,
        input_audio_tokens=media[0],
        cache_read_audio_tokens=media[1],
        output_audio_tokens=media[2],
        input_image_tokens=media[3],
        cache_read_image_tokens=media[4],
        output_image_tokens=media[5],
        input_video_tokens=media[6],
        cache_read_video_tokens=media[7],
        output_video_tokens=media[8],
        web_search_requests=searches,
        file_search_requests=file_searches,
        service_tier=tier,
        inference_geo=geo,
        citation_tokens=citations,
        metadata_text=text,
    )


def _check_foreign_counts(extra: Mapping[str, Any], get: Any) -> None:
    """Reject a token count the event names in `FOREIGN_COUNTS` when no canonical field counts it.

    Such a count would otherwise land in `metadata` and the call be stored at 0 tokens and $0
    (`"prompt_tokens": 1000` flattened out of an OpenAI usage). The reason names the field and what to
    send instead: the provider's usage object as `usage` (read with that provider's meaning), or the
    canonical field.
    """
    for name, value in extra.items():
        canonical = FOREIGN_COUNTS.get(name)
        if canonical == "usage object" and isinstance(value, Mapping):
            if not any(get(field) is not None for field in TOKEN_FIELDS[:4]):
                raise InvalidEvent(name, 'is a usage object under its own name, not counted: send it as "usage"')
            continue
        if canonical is None or not _nonzero(value):
            continue
        counted_by = (canonical,) if canonical else TOKEN_FIELDS[:4]
        if any(get(field) is not None for field in counted_by):
            continue  # the canonical count is there: this one is a note, kept in metadata
        if not canonical:
            raise InvalidEvent(
                name,
                f"({value}) is a total, which cannot be priced: send input_tokens and output_tokens, "
                'or the provider\'s usage object as "usage"',
            )
        instead = f"{canonical} (uncached input only)" if canonical == "input_tokens" else canonical
        if name.startswith(("gen_ai.", "llm.")):
            raise InvalidEvent(
                name,
                'is a GenAI span attribute: beside "provider" the record is read as a canonical event and its '
                f"{value} tokens would not be counted; name the provider as gen_ai.provider.name instead, "
                f"or send {instead}",
            )
        raise InvalidEvent(
            name,
            f"is a provider usage field, not an event field: its {value} tokens would not be counted; send the "
            f"provider's usage object as \"usage\": {{...}} (read with that provider's meaning), or {instead}",
        )


def _nonzero(value: Any) -> bool:
    """True for a count other than 0 (a number, or a number as text: a CSV cell)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        try:
            return float(value) != 0
        except ValueError:
            return False
    return False


_NO_MEDIA = (0,) * len(MEDIA_FIELDS)


def _media_counts(get: Any, input_tokens: int, cache_read: int, output_tokens: int) -> tuple[int, ...]:
    """The `MEDIA_FIELDS` parts of the three token fields; together, the parts of one field cannot exceed it."""
    values = [get(part, 0) for part, _ in MEDIA_FIELDS]
    if not any(values):
        return _NO_MEDIA  # the norm: no per-field work
    wholes = {"input_tokens": input_tokens, "cache_read_tokens": cache_read, "output_tokens": output_tokens}
    left = dict(wholes)
    counts = []
    for (part, whole), value in zip(MEDIA_FIELDS, values, strict=True):
        number = _check_count(part, value)
        if number > left[whole]:
            others = wholes[whole] - left[whole]
            plus = f" plus the {others} audio, image or video tokens before it" if others else ""
            raise InvalidEvent(part, f"({number}){plus} cannot exceed {whole} ({wholes[whole]}), which includes it")
        left[whole] -= number
        counts.append(number)
    return tuple(counts)
