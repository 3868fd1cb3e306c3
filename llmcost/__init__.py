"""llmcost's Python client: record LLM calls and ask budgets from the application that makes them.

    from llmcost import Client
    client = Client("http://127.0.0.1:9800", token="…", project="search")
    client.guard(model="gpt-4o")          # raises llmcost.BudgetExceededError on a hard budget
    response = openai.chat.completions.create(...)
    client.record_response(response)      # never blocks; sent in the background

This package stays light (httpx and the server's normalisation only); the LiteLLM callback lives in
`llmcost.litellm` and imports LiteLLM only when that module is imported. The package also holds the
application (`llmcost.cli`, `llmcost.wiring`); `Client` is imported on first use, so that the `llmcost`
command does not load the client's HTTP stack it does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmcost.errors import BudgetExceededError, LlmcostError

if TYPE_CHECKING:
    from llmcost.client import Client

__all__ = ["BudgetExceededError", "Client", "LlmcostError"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from llmcost.client import Client

        return Client
    raise AttributeError(f"module 'llmcost' has no attribute {name!r}")
