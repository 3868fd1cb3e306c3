"""llmcost's Python client: record LLM calls and ask budgets from the application that makes them.

    from llmcost import Client
    client = Client("http://127.0.0.1:9800", token="…", project="search")
    client.guard(model="gpt-4o")          # raises llmcost.BudgetExceededError on a hard budget
    response = openai.chat.completions.create(...)
    client.record_response(response)      # never blocks; sent in the background

This package stays light (httpx and the server's normalisation only); the LiteLLM callback lives in
`llmcost.litellm` and imports LiteLLM only when that module is imported.
"""

from __future__ import annotations

from llmcost.client import Client
from llmcost.errors import BudgetExceededError, LlmcostError

__all__ = ["BudgetExceededError", "Client", "LlmcostError"]
