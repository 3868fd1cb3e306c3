"""`parse_event`: a canonical event dict checked field by field into a `UsageEvent` (the ingest hot path)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from exporter.events.checks import check_count, check_label, check_number, parse_timestamp
from exporter.events.fields import (
    CACHE_WRITE_1H,
    CITATION_TOKENS,
    FILE_SEARCHES,
    FOREIGN_COUNTS,
    INFERENCE_GEO,
    KNOWN_FIELDS,
    LABEL_MAX_LEN,
    MAX_COST_USD,
    MAX_LATENCY_MS,
    MAX_METADATA_BYTES,
    MAX_TOKENS,
    MAX_WEB_SEARCHES,
    MEDIA_FIELDS,
    REQUEST_ID_MAX_LEN,
    SERVICE_TIER,
    SERVICE_TIER_MAX_LEN,
    STATUSES,
    TOKEN_FIELDS,
    WEB_SEARCHES,
)
from exporter.events.metadata import derived_request_id, has_content, metadata_json, without_content
from exporter.events.money import usd_to_nanos
from exporter.events.priced_extras import priced_extras
from exporter.events.usage_event import InvalidEvent, UsageEvent


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
        provider = check_label("provider", provider, required=True)
    model = get("model")
    if type(model) is not str or not model or len(model) > LABEL_MAX_LEN or not model.isprintable():
        model = check_label("model", model, required=True)
    timestamp = parse_timestamp(get("timestamp"), now=now, max_future_skew=max_future_skew)

    # Plain non-negative ints are the norm; anything else takes the checking path with its message.
    input_tokens = get("input_tokens", 0)
    if type(input_tokens) is not int or not 0 <= input_tokens <= MAX_TOKENS:
        input_tokens = check_count("input_tokens", input_tokens)
    cache_read = get("cache_read_tokens", 0)
    if type(cache_read) is not int or not 0 <= cache_read <= MAX_TOKENS:
        cache_read = check_count("cache_read_tokens", cache_read)
    cache_write = get("cache_write_tokens", 0)
    if type(cache_write) is not int or not 0 <= cache_write <= MAX_TOKENS:
        cache_write = check_count("cache_write_tokens", cache_write)
    output_tokens = get("output_tokens", 0)
    if type(output_tokens) is not int or not 0 <= output_tokens <= MAX_TOKENS:
        output_tokens = check_count("output_tokens", output_tokens)
    reasoning = get("reasoning_tokens", 0)
    if type(reasoning) is not int or not 0 <= reasoning <= MAX_TOKENS:
        reasoning = check_count("reasoning_tokens", reasoning)
    if reasoning > output_tokens:
        raise InvalidEvent("reasoning_tokens", f"({reasoning}) cannot exceed output_tokens ({output_tokens})")
    write_1h = get(CACHE_WRITE_1H, 0)
    if write_1h:
        write_1h = check_count(CACHE_WRITE_1H, write_1h)
        if write_1h > cache_write:
            raise InvalidEvent(
                CACHE_WRITE_1H, f"({write_1h}) cannot exceed cache_write_tokens ({cache_write}), which includes it"
            )

    media = _media_counts(get, input_tokens, cache_read, output_tokens)
    searches = get(WEB_SEARCHES)
    if searches is not None:
        searches = check_count(WEB_SEARCHES, searches)
        if searches > MAX_WEB_SEARCHES:
            raise InvalidEvent(WEB_SEARCHES, f"is implausibly large ({searches})")
    file_searches = get(FILE_SEARCHES)
    if file_searches is not None:
        file_searches = check_count(FILE_SEARCHES, file_searches)
        if file_searches > MAX_WEB_SEARCHES:
            raise InvalidEvent(FILE_SEARCHES, f"is implausibly large ({file_searches})")
    tier = get(SERVICE_TIER)
    if tier is not None and (type(tier) is not str or len(tier) > SERVICE_TIER_MAX_LEN or not tier.isprintable()):
        raise InvalidEvent(SERVICE_TIER, f"must be a printable string of at most {SERVICE_TIER_MAX_LEN} characters")
    citations = get(CITATION_TOKENS)
    if citations is not None:
        citations = check_count(CITATION_TOKENS, citations)
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
    if metadata and has_content(metadata):
        metadata = without_content(metadata)
    text = metadata_json(metadata, max_metadata_bytes) if metadata else None
    if request_id is None:
        request_id = derived_request_id(obj)

    project = get("project", "")
    if type(project) is not str or len(project) > LABEL_MAX_LEN or not project.isprintable():
        project = check_label("project", project, required=False)
    user = get("user", "")
    if type(user) is not str or len(user) > LABEL_MAX_LEN or not user.isprintable():
        user = check_label("user", user, required=False)
    service = get("service", "")
    if type(service) is not str or len(service) > LABEL_MAX_LEN or not service.isprintable():
        service = check_label("service", service, required=False)
    session = get("session")
    session = "" if session is None else check_label("session", session, required=False)
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
        number = check_count(part, value)
        if number > left[whole]:
            others = wholes[whole] - left[whole]
            plus = f" plus the {others} audio, image or video tokens before it" if others else ""
            raise InvalidEvent(part, f"({number}){plus} cannot exceed {whole} ({wholes[whole]}), which includes it")
        left[whole] -= number
        counts.append(number)
    return tuple(counts)
