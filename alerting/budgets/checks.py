"""Pre-call budget checks (`POST /v1/budgets/check`), answered from a short-lived cache.

Applications call the check before every LLM call, hundreds of times a second with a handful of label
sets; on PostgreSQL each answer costs round trips and ~1 ms of CPU. This process's own spend is added to
cached answers as it commits (see alerting/budgets/check_cache.py), and a definition change or a period
end drops them. A cached answer is reused only once one primary-key query has found its spend rows
unchanged: several replicas behind a load balancer share one store, and a call recorded through one of
them used to be missed by a check on another for up to `CHECK_CACHE_SECONDS`, so a hard budget let a
call through on one replica that the other refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from alerting.budgets.check_answer import CheckRequestError, decide, parse_check_request
from alerting.budgets.check_cache import CheckCache
from alerting.budgets.definition import BudgetsConfig
from alerting.budgets.errors import BudgetError
from alerting.budgets.instances import Instance, InstanceReader, still_current
from alerting.budgets.registry import BudgetRegistry
from alerting.budgets.spend import SpendChange
from exporter.store import Store, StoreUnavailable

CHECK_CACHE_SECONDS = 0.25
"""How long a check answer may be reused (see `BudgetChecks.instances_for`)."""
MAX_CACHED_CHECKS = 10_000
"""Label sets remembered at once; the cache starts over beyond this (unbounded label values)."""


class BudgetChecks:
    """Answers "would this call fit?"; thread-safe."""

    def __init__(
        self,
        store: Store,
        registry: BudgetRegistry,
        reader: InstanceReader,
        config: BudgetsConfig,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.registry = registry
        self.reader = reader
        self.config = config
        """The `budgets:` section; its `fail_mode` decides the answer when the store is unreachable."""
        self.clock = clock
        self._cache = CheckCache(CHECK_CACHE_SECONDS, MAX_CACHED_CHECKS)
        self._definitions_fresh_until = 0.0  # monotonic; until then checks skip the revision read

    def check(self, request: Any) -> dict[str, Any]:
        """Would this call fit? See alerting/budgets/check_answer.py for the answer's fields."""
        try:
            parsed = parse_check_request(request)
        except CheckRequestError as exc:
            raise BudgetError(422, f"invalid check: {exc}", exc.problems) from None
        now = self.clock()
        try:
            found = self.instances_for(parsed.labels, now)
        except StoreUnavailable:
            allowed = self.config.fail_mode == "open"
            detail = f"store unreachable; budgets.fail_mode is {self.config.fail_mode!r}"
            return {
                "allowed": allowed,
                "state": "unknown",
                "reason": f"{detail}: the call is {'allowed' if allowed else 'refused'} without checking budgets",
                "budgets": [],
                "degraded": True,
                "detail": detail,
            }
        return decide(list(found), parsed)

    def instances_for(self, labels: dict[str, str], now: float) -> list[Instance]:
        """The instances matching a check's labels; a cached answer (up to CHECK_CACHE_SECONDS) if still exact."""
        key = tuple(labels.values())
        cached = self._cache.answer(key, lambda instances: still_current(instances, now))
        if cached is not None and not cached[0]:
            return []  # no budget matches: only a definition change (re-read every CHECK_CACHE_SECONDS) alters that
        began = self._cache.begin_read()
        # One connection for every read. Definitions change rarely: their revision is read at most every
        # CHECK_CACHE_SECONDS (local changes reset that).
        with self.store.raw_cursor() as (cursor, q):
            # Another process may have committed spend since: reuse the answer only if its rows say not.
            if cached is not None and self.reader.unchanged_on(cursor, q, *cached):
                return cached[0]
            if time.monotonic() < self._definitions_fresh_until:
                definitions = self.registry.cached()
            else:
                definitions = self.registry.definitions_on(cursor, q)
                self._definitions_fresh_until = time.monotonic() + CHECK_CACHE_SECONDS
            pairs = [(b, k) for b in definitions if (k := b.matches(labels)) is not None]
            raw: list[tuple[int, int, int]] = []
            found = self.reader.instances_on(cursor, q, pairs, now, raw=raw)
        self._cache.put(key, began, found, raw)
        return found

    def add_local_spend(self, changes: Sequence[SpendChange], committed_by: float) -> None:
        """Add this process's committed spend to the cached answers (see `CheckCache.add_local_spend`)."""
        self._cache.add_local_spend(changes, committed_by)

    def forget(self, *, definitions: bool = False) -> None:
        """Drop every cached answer; with `definitions`, also re-read the definitions' revision next time."""
        self._cache.clear()
        if definitions:
            self._definitions_fresh_until = 0.0
