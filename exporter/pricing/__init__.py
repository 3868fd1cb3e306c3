"""Pricing: the cost of a recorded LLM call, in exact integer nano-dollars, at the time of the call.

Prices come from two places, checked in this order:

1. **Price overrides** from a YAML file (config `pricing.overrides_file`): private, negotiated or
   self-hosted prices.
2. **genai-prices** (https://github.com/pydantic/genai-prices): the price data bundled with the
   installed package. llmcost works offline: it never downloads newer prices at runtime (it does not
   use `genai_prices.UpdatePrices`, nor the process-wide snapshot that feature replaces). Upgrade the
   `genai-prices` package to get new prices.

A call whose model is in neither has no price (`None`): it is stored with cost 0 and counted in
`llm_unpriced_requests_total`. So is a model genai-prices lists without any price, unless genai-prices
says it is free (a `:free` id, or "free of charge" in its comments): docs/pricing.md, "Models listed
without a price".

Token semantics (canonical, see the usage event): `input_tokens` are uncached input only, cache reads
and cache writes are counted apart, `output_tokens` include reasoning tokens. Cache writes are priced
at the provider's standard (5-minute) cache-write price. Tiered prices follow genai-prices: when a
call's total input (uncached + cache read + cache write) exceeds a tier threshold, all its tokens are
charged at that tier's price. Audio, image and video tokens (parts of input, cache read and output
tokens) are charged the price's rates for them; without one, the text rate, noted on the event for
audio and for generated images and video. Server-side web searches (Anthropic's
`server_tool_use.web_search_requests`) are charged the price's per-search rate, and OpenAI file searches
(`file_search_call` items) its per-call file search rate; citation tokens (a part of the output,
Perplexity Deep Research) its citation rate where it has one. A call's `service_tier`
(`batch`, `flex`, `priority`, …) selects genai-prices' price variant for that tier, where it has one
(docs/pricing.md, "Service tiers"); Anthropic's US-only inference (`inference_geo: us`) costs 1.1x
its token prices (docs/pricing.md, "Anthropic's US-only inference"). Costs are rounded once,
half-even, to the nano-dollar.

Provider names: `openai`, `anthropic`, `bedrock`/`aws`, `azure`, `google`/`gemini`/`vertex`,
`deepseek`, `openrouter`, `groq`, `mistral`, `cohere`, `x-ai`/`xai`, `together`, `fireworks`, and
every other genai-prices provider id, plus the aliases in `PROVIDER_ALIASES` (case-insensitive). A
model is looked up under a known provider only; for an unknown provider (a proxy, self-hosted, LiteLLM)
a `provider/model` prefix is tried, then genai-prices matches the model name alone. A router's call
(the Hugging Face router: `model:novita`, `novita/model`, or provider `huggingface/novita`) is priced
at the serving provider's price where genai-prices has one (docs/pricing.md, "Routers").

Override file format
--------------------

```yaml
prices:
  - provider: self-hosted            # provider as sent in events, case-insensitive; or a glob ("*")
    model: llama-3.1-70b-internal    # model as sent, case-insensitive; or a glob like "ft:gpt-4o*"
    input_per_mtok: 0.20             # USD per million uncached input tokens (required)
    output_per_mtok: 0.40            # USD per million output tokens, reasoning included (required)
    cache_read_per_mtok: 0.02        # optional; default = input_per_mtok
    cache_write_per_mtok: 0.25       # optional; default = input_per_mtok
    input_audio_per_mtok: 1.00       # optional audio prices (each a part of input, cache read, output);
    cache_read_audio_per_mtok: 0.10  #   without one, that audio is charged the text price and the
    output_audio_per_mtok: 4.00      #   event's price source says so (docs/pricing.md, "Audio tokens")
    output_image_per_mtok: 30        # image and video likewise: input_image_per_mtok, cache_read_image_per_mtok,
                                     #   output_image_per_mtok, input_video_per_mtok, … (docs/pricing.md)
    web_search_per_thousand: 10      # optional: USD per 1,000 server-side web searches (default: not charged)
    file_search_per_thousand: 2.50   # optional: USD per 1,000 file search calls (default: not charged)
  - provider: openai                 # a negotiated price that changed: one entry per price
    model: gpt-4o
    valid_from: 2025-01-01           # optional: a date (UTC midnight) or an RFC 3339 time
    input_per_mtok: 2.00
    output_per_mtok: 8.00
  - provider: openai
    model: gpt-4o
    valid_from: 2025-07-01T00:00:00Z
    input_per_mtok: 1.80
    output_per_mtok: 7.20
```

- Entries with the same `provider` and `model` form a price history: a call is priced by the entry
  with the latest `valid_from` at or before its timestamp (no `valid_from` = always). Before the
  earliest `valid_from`, the entry does not apply and the next match (or genai-prices) prices the call.
- When several provider/model patterns match a call, the one that appears first in the file wins.
- Prices are decimal numbers (`0.075`, or quoted `"0.0375"`) from 0 to 1000 USD per million tokens
  (a larger one is refused as a typo: it could overflow a call's stored cost); they are kept exact.
- The whole file is validated before use; every problem is reported at once, as
  `prices[INDEX].FIELD: reason` (unknown fields, missing or negative prices, bad dates, duplicates).
"""

from exporter.pricing.book import DEFAULT_CACHE_SIZE, PriceBook
from exporter.pricing.catalog import PROVIDER_ALIASES, to_genai_usage
from exporter.pricing.overrides import PriceOverride, PriceOverrideError, load_overrides, parse_overrides

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "PROVIDER_ALIASES",
    "PriceBook",
    "PriceOverride",
    "PriceOverrideError",
    "load_overrides",
    "parse_overrides",
    "to_genai_usage",
]
