"""Exceptions of the llmcost client."""

from __future__ import annotations

from typing import Any


class LlmcostError(Exception):
    """llmcost refused a budget check (a wrong token, a URL that is not llmcost's) under `fail_mode="closed"`.

    With `fail_mode="open"` the same refusal is logged and the call allowed (docs/sending-data.md).
    """


class BudgetExceededError(Exception):
    """A hard budget refuses the call; `answer` is llmcost's budget check answer as it came.

    `reason` and `fallback_model` are read from the answer when the server gives them (plain words
    naming the budget that decided; a cheaper model the budget allows), and derived or None otherwise.
    """

    # LiteLLM's proxy answers an exception raised by a hook with its `status_code`; 400 is what LiteLLM
    # uses for its own budget refusals (a 429 would be retried by the OpenAI SDKs).
    status_code = 400
    type = "budget_exceeded"  # the error `type` LiteLLM's proxy puts in its answer

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        reason = answer.get("reason")
        self.reason: str = reason if isinstance(reason, str) and reason else _derived_reason(answer)
        fallback = answer.get("fallback_model")
        self.fallback_model: str | None = fallback if isinstance(fallback, str) and fallback else None
        super().__init__(self.reason)

    @property
    def state(self) -> str:
        """The answer's `state` (`exceeded`, `critical`, …, or `unknown` when llmcost was unreachable)."""
        state = self.answer.get("state")
        return state if isinstance(state, str) else "unknown"


def _derived_reason(answer: dict[str, Any]) -> str:
    # Servers without `reason`: name a deciding budget, else the worst one.
    budgets = [b for b in answer.get("budgets") or () if isinstance(b, dict)]
    deciding = [b for b in budgets if b.get("decided")] or [
        b for b in budgets if b.get("state") == "exceeded" or b.get("state_after") == "exceeded"
    ]
    for budget in deciding or budgets:
        name = budget.get("name", "?")
        spent, limit = budget.get("spent"), budget.get("limit")
        if isinstance(spent, int | float) and isinstance(limit, int | float):
            return f"budget {name!r} is exhausted: spent {spent:g} of {limit:g}"
        return f"budget {name!r} refuses the call"
    detail = answer.get("detail")
    return str(detail) if detail else "a hard budget refuses the call"
