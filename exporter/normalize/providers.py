"""Provider names from foreign vocabularies (OpenTelemetry, API hosts) in the names llmcost uses.

Provider is a metric label, so one provider must get one name whichever way its calls arrive. Names
here are the ones users and LiteLLM already send (`openai`, `anthropic`, `bedrock`, `gemini`, …); the
price book maps those to genai-prices ids.
"""

from __future__ import annotations

# `gen_ai.provider.name` / `gen_ai.system` well-known values that differ from the names above.
OTEL_PROVIDERS = {
    "aws.bedrock": "bedrock",
    "az.ai.inference": "azure_ai",
    "az.ai.openai": "azure",
    "azure.ai.inference": "azure_ai",
    "azure.ai.openai": "azure",
    "gcp.gemini": "gemini",
    "gcp.gen_ai": "google",
    "gcp.vertex_ai": "vertex_ai",
    "ibm.watsonx.ai": "watsonx",
    "mistral_ai": "mistral",
    "x_ai": "xai",
}

# API host (exact, or a suffix after a dot) → provider. Checked in order: the first match wins.
_HOSTS: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    ("openai.azure.com", "azure"),
    ("api.anthropic.com", "anthropic"),
    ("amazonaws.com", "bedrock"),
    ("api.aws", "bedrock"),
    ("api.deepseek.com", "deepseek"),
    ("openrouter.ai", "openrouter"),
    ("api.groq.com", "groq"),
    ("api.mistral.ai", "mistral"),
    ("api.cohere.com", "cohere"),
    ("api.cohere.ai", "cohere"),
    ("generativelanguage.googleapis.com", "gemini"),
    ("aiplatform.googleapis.com", "vertex_ai"),
    ("router.huggingface.co", "huggingface"),
    ("api.cerebras.ai", "cerebras"),
    ("api.voyageai.com", "voyage"),
    ("api.x.ai", "xai"),
    ("api.z.ai", "zai"),
    ("api.together.xyz", "together"),
    ("api.fireworks.ai", "fireworks"),
    ("api.perplexity.ai", "perplexity"),
    ("ollama.com", "ollama"),
    ("snowflakecomputing.com", "snowflake"),
    ("inference.heroku.com", "heroku"),
    ("crusoecloud.com", "crusoe"),
)

# Providers whose usage objects need a provider-specific reading (see provider_usage).
XAI = frozenset(("xai", "x-ai", "x_ai", "grok"))
GOOGLE = frozenset(("gemini", "google", "vertex_ai", "vertex", "gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai"))


def from_otel(name: str) -> str:
    """Translate an OpenTelemetry GenAI provider name into llmcost's vocabulary."""
    # Instrumentations spell the same provider differently (OpenLLMetry's `gen_ai.system` is "Anthropic").
    name = name.strip().lower()
    return OTEL_PROVIDERS.get(name, name)


def from_host(host: str) -> str:
    """Name the provider behind an API host; an unknown host names itself (without a port)."""
    name = host.lower().rsplit("@", 1)[-1].split(":", 1)[0]
    for suffix, provider in _HOSTS:
        if name == suffix or name.endswith("." + suffix):
            return provider
    return name
