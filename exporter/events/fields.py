"""The canonical event's vocabulary: its fields, the names other sources give its counts, and its limits."""

from __future__ import annotations

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
