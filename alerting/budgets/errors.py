"""`BudgetError`: a budget request that cannot be carried out, with the HTTP status to answer."""

from __future__ import annotations

from typing import Any


class BudgetError(Exception):
    """An API request on budgets that cannot be carried out; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.headers = headers
