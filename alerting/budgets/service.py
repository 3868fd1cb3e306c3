"""Budget service: definitions (config, API, CLI), resets, status, pre-call checks, alerts, projections.

`BudgetService` is the one object the rest of the product holds (the HTTP routes, the CLI, the scheduler,
the collector). It composes one collaborator per concern, each in its own module:

- `registry` (alerting/budgets/registry.py): the stored definitions, their changes and the reset audit;
- `reader` (alerting/budgets/instances.py): instances in their current period, status objects;
- `checks` (alerting/budgets/checks.py): pre-call checks with their short-lived cache;
- `alerts` (alerting/budgets/alerts.py): threshold alerts after each ingest commit, reconciliation;
- `forecasts` (alerting/budgets/forecast.py): projections to the end of each period.

and carries out what spans them: a definition change drops the cached check answers and resolves the
alerts of what it removed; an ingest commit adds its spend to those answers and raises what it crossed.

Definitions change only through explicit calls (`apply_config`, `put`, `delete`, `reset`): building a
service writes nothing, so a reading command can never change budgets (docs/budgets.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from alerting.budgets.alerts import BudgetAlerts, dropped_caps
from alerting.budgets.apply import ApplyPlan, Prune, StoredDefinition
from alerting.budgets.checks import CHECK_CACHE_SECONDS, MAX_CACHED_CHECKS, BudgetChecks
from alerting.budgets.definition import Budget, BudgetsConfig
from alerting.budgets.errors import BudgetError
from alerting.budgets.forecast import BudgetForecasts
from alerting.budgets.history import HISTORY_NOTE, history
from alerting.budgets.instances import CurrentPeriods, Instance, InstanceReader
from alerting.budgets.registry import BudgetRegistry
from alerting.budgets.spend import BudgetSpendHook, PeriodStarts, SpendChange
from alerting.projection import ProjectionConfig
from alerting.sink import AlertSink
from exporter.store import Store
from exporter.store.writer import WriteResult

__all__ = ["CHECK_CACHE_SECONDS", "MAX_CACHED_CHECKS", "BudgetError", "BudgetService", "Instance"]


class BudgetService:
    """Budgets over one store; thread-safe; `evaluate` is the scheduler job."""

    def __init__(
        self,
        store: Store,
        config: BudgetsConfig,
        *,
        sink: AlertSink | None = None,
        clock: Callable[[], float] = time.time,
        projection: ProjectionConfig | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.projection = projection or ProjectionConfig()
        current = CurrentPeriods()
        self.registry = BudgetRegistry(store, current, clock)
        self.reader = InstanceReader(store, self.registry, current, clock)
        self.checks = BudgetChecks(store, self.registry, self.reader, config, clock)
        self.alerts = BudgetAlerts(sink, self.registry, self.reader, current, clock, self.projection)
        self.forecasts = BudgetForecasts(store, current, self.projection)
        store.add_write_hook(BudgetSpendHook(), after_commit=self._after_commit)  # no-op hook if present

    @property
    def config(self) -> BudgetsConfig:
        """The `budgets:` section (a SIGHUP reload replaces it)."""
        return self.checks.config

    @config.setter
    def config(self, section: BudgetsConfig) -> None:
        self.checks.config = section

    @property
    def sink(self) -> AlertSink | None:
        """Where budget alerts go (None: they are not raised)."""
        return self.alerts.sink

    @sink.setter
    def sink(self, sink: AlertSink | None) -> None:
        self.alerts.sink = sink

    @property
    def periods(self) -> PeriodStarts:
        """Memoised period starts used to rebuild a changed budget's current period."""
        return self.registry.period_starts

    # ---- definitions -------------------------------------------------------------------------------

    def stored_definitions(self, conn: Any = None) -> list[StoredDefinition]:
        """Every stored definition row with its origin."""
        return self.registry.stored_definitions(conn)

    def apply_config(
        self,
        declared: tuple[Budget, ...],
        *,
        origin_ref: str,
        prune: Prune = Prune.OWN,
        dry_run: bool = False,
        by: str = "",
    ) -> ApplyPlan:
        """Apply a config file's budgets (never touching API/CLI ones); returns the plan it carried out."""
        plan = self.registry.apply_config(declared, origin_ref=origin_ref, prune=prune, dry_run=dry_run, by=by)
        if not dry_run and plan.changes:
            self.checks.forget(definitions=True)
            self.alerts.resolve_budgets(plan.delete, by=by or "config", comment="budget removed from the config file")
            for stored, budget in plan.update:
                self.alerts.resolve_dropped_caps(budget.name, dropped_caps(stored, budget), by=by or "config")
                self.alerts.resolve_raised_limit(stored, budget, by=by, origin="config")
        return plan

    def definitions(self) -> list[Budget]:
        """Current definitions (reloaded when any process changed them: one primary-key read)."""
        return self.registry.definitions()

    def get(self, name: str) -> Budget:
        """One definition, or a 404 BudgetError."""
        return self.registry.get(name)

    def is_wildcard(self, name: str) -> bool:
        """Whether `name` is a `key: "*"` budget, as the definitions were last read (no store read)."""
        # Asked while raising the budget's alerts, just after the definitions were read for them.
        return any(b.name == name and b.key == "*" for b in self.registry.cached())

    def origin(self, name: str) -> dict[str, Any]:
        """Where a definition came from: `origin` (config, api, cli), `origin_ref`, `updated_at`, `updated_by`."""
        return self.registry.origin(name)

    def put(self, name: str, raw: Any, *, origin: str = "api", by: str = "", mode: str = "upsert") -> Budget:
        """Create or replace an API- or CLI-managed budget (`mode`: upsert, create or update).

        A budget applied from a config file is refused (409): the file is its source of truth. `update`
        takes a partial mapping laid over the stored definition.
        """
        before = next((b.to_json() for b in self.registry.definitions() if b.name == name), {})
        budget = self.registry.put(name, raw, origin=origin, by=by, mode=mode)
        self.checks.forget(definitions=True)
        # A cap removed leaves its alert nothing to report: resolved now, not when the period ends; a limit
        # raised past the alert's level, now too, saying so and by whom.
        self.alerts.resolve_dropped_caps(name, dropped_caps(before, budget), by=by or origin)
        self.alerts.resolve_raised_limit(before, budget, by=by, origin=origin)
        return budget

    def delete(self, name: str, *, by: str = "") -> None:
        """Remove an API- or CLI-managed budget and resolve its alerts; a config-file budget is refused.

        A budget already gone still has its alerts resolved before the 404: the removal and the resolves
        are separate transactions, and a first attempt whose removal landed as the database went away
        (its client answered 503) left them firing; the client's retry finishes the job.
        """
        try:
            self.registry.delete(name)
        except BudgetError as exc:
            if exc.status == 404:
                self.alerts.resolve_budgets([name], by=by, comment="budget deleted")
            raise
        self.checks.forget(definitions=True)
        self.alerts.resolve_budgets([name], by=by, comment="budget deleted")

    def reset(self, name: str, *, by: str, reason: str = "", key: str | None = None) -> list[dict[str, Any]]:
        """Start a fresh count for the current period from now (audited); resolves the budget's alerts.

        Returns the audit records: per instance, who, when and what had been spent. A `key: "*"` budget
        needs `key`: one value, or `"*"` for every instance (see `BudgetRegistry.reset`).
        """
        records, keys = self.registry.reset(name, by=by, reason=reason, key=key)
        self.checks.forget(definitions=True)
        # key "*" reset every instance: resolve every alert of the budget, as for a one-key budget.
        self.alerts.resolve_reset(name, keys, key=None if key == "*" else key, by=by, reason=reason)
        return records

    def resets(self, name: str) -> list[dict[str, Any]]:
        """The audit trail of a budget's resets, newest first."""
        return self.registry.resets(name)

    # ---- status and checks -------------------------------------------------------------------------

    def instances(self, now: float | None = None, only: Iterable[Budget] | None = None) -> list[Instance]:
        """Every budget instance in its current period, with spend and the last projection."""
        return self.reader.instances(now, only)

    def listing(self, now: float | None = None) -> list[dict[str, Any]]:
        """Status rows of every defined budget, one per instance (a `key: "*"` budget without spend: one row)."""
        return self.reader.listing(now)

    def status(self, name: str) -> dict[str, Any]:
        """Status object of one budget; a `key: "*"` budget lists its instances and shows the worst."""
        return self.reader.status(name)

    def history(self, name: str, periods: int, now: float | None = None) -> dict[str, Any]:
        """The budget's last `periods` completed periods, newest first, summed from the rollups (read-only).

        `{"history": [...], "history_note": ...}`, to lay over a status object; see alerting/budgets/history.py.
        """
        budget = self.get(name)
        with self.store.reading() as conn:
            past = history(conn, budget, self.clock() if now is None else now, periods)
        return {"history": past, "history_note": HISTORY_NOTE}

    def check(self, request: Any) -> dict[str, Any]:
        """Would this call fit? See alerting/budgets/check_answer.py for the answer's fields."""
        return self.checks.check(request)

    # ---- the scheduler job and the ingest callback -------------------------------------------------

    def evaluate(self, now: float | None = None) -> None:
        """Scheduler job: project every instance, raise what holds, resolve what no longer does."""
        now = self.clock() if now is None else now
        definitions = self.definitions()
        self.forecasts.store_projections(definitions, now)
        self.alerts.reconcile(definitions, self.instances(now), now)

    def _after_commit(self, result: WriteResult) -> None:
        """Make an ingest commit's spend visible to the next check, and raise the alerts it crossed."""
        committed_by = time.monotonic()
        changes = [r for r in result.hook_results if isinstance(r, SpendChange)]
        touched = {(b, k) for change in changes for b, k, _p in change.increments}
        if not touched:
            return
        self.checks.add_local_spend(changes, committed_by)  # visible to the very next check
        self.alerts.on_commit(result, touched)
