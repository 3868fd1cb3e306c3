"""Budget service: definitions (config + API), status, pre-call checks, threshold and forecast alerts.

Threshold alerts are raised right after the ingest commit that crossed them (an after-commit callback),
not only on the scheduler's next tick; `evaluate` (a scheduler job, leader only) adds projections and
forecast alerts and resolves what no longer holds, e.g. when a new period starts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select, tuple_

from alerting.budgets.check_cache import CheckCache
from alerting.budgets.definition import (
    ALERT_FOR_STATE,
    FORECAST_ALERT,
    OTHER_INSTANCE,
    SEVERITY_FOR_ALERT,
    STATES,
    Budget,
    BudgetsConfig,
    parse_budget,
)
from alerting.budgets.spend import (
    BudgetSpendHook,
    PeriodStarts,
    SpendChange,
    bump_revision,
    load_budgets,
    lock_for_change,
    rebuild_current_period,
    unit_value,
)
from alerting.budgets.tables import REVISION_COUNTER, budget_spend, budget_state, budgets
from alerting.periods import elapsed_fraction, period_bounds
from alerting.projection import ProjectionConfig, project_many, should_alert_forecast
from exporter.store import Store, StoreUnavailable
from exporter.store.schema import BUCKET_SECONDS
from exporter.store.writer import WriteResult

log = logging.getLogger(__name__)
BUDGET_ALERTS = (*ALERT_FOR_STATE.values(), FORECAST_ALERT)
_LEVELS = ("warning", "critical", "exceeded")


class AlertSink(Protocol):
    """Where budget alerts go (the alert gateway)."""

    def fire(self, alertname: str, labels: dict[str, str], annotations: dict[str, str], severity: str) -> Any:
        """Raise (or keep raising) an alert."""

    def resolve(self, alertname: str, labels: dict[str, str]) -> Any:
        """Resolve an alert if it is active."""

    def active_labels(self, alertnames: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
        """(alertname, labels) of the active alerts with these names."""


class BudgetError(Exception):
    """An API request on budgets that cannot be carried out; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Instance:
    """One budget instance (a budget and, for `key: "*"`, one value) in its current period."""

    budget: Budget
    key: str
    period_start: datetime
    period_end: datetime | None
    spent: float
    projected: float

    @property
    def ratio(self) -> float:
        """Spent / limit."""
        return self.spent / self.budget.limit

    @property
    def state(self) -> str:
        """Ok … exceeded."""
        return self.budget.state(self.ratio)

    def labels(self) -> dict[str, str]:
        """Labels of this instance's alerts and metrics."""
        return {"budget": self.budget.name, "scope": self.budget.scope, "key": self.key}

    def to_json(self) -> dict[str, Any]:
        """SPEC's status object."""
        b = self.budget
        return {
            "name": b.name,
            "scope": b.scope,
            "key": self.key,
            "period": b.period,
            "unit": b.unit,
            "limit": b.limit,
            "spent": round(self.spent, 9),
            "ratio": round(self.ratio, 6),
            "remaining": round(max(b.limit - self.spent, 0.0), 9),
            "projected": round(self.projected, 9),
            "state": self.state,
            "mode": b.mode,
            "period_start": self.period_start.isoformat().replace("+00:00", "Z"),
            "period_end": self.period_end.isoformat().replace("+00:00", "Z") if self.period_end else None,
        }


def _still_current(instances: Iterable[Instance], now: float) -> bool:
    """No instance's period has ended by `now`."""
    return all(i.period_end is None or now < i.period_end.timestamp() for i in instances)


def _worst(states: Iterable[str]) -> str:
    return max(states, key=STATES.index, default="ok")


CHECK_CACHE_SECONDS = 0.25
"""How long a check answer may be reused (see `BudgetService._check_instances`)."""
MAX_CACHED_CHECKS = 10_000
"""Label sets remembered at once; the cache starts over beyond this (unbounded label values)."""


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
        self.config = config
        self.sink = sink
        self.clock = clock
        self.projection = projection or ProjectionConfig()
        self.periods = PeriodStarts()
        self._lock = threading.Lock()
        self._revision: float | None = None
        self._budgets: list[Budget] = []
        self._config_names = {b.name for b in config.items}
        self._levels: dict[tuple[str, str], int] = {}
        self._period_cache: dict[tuple[str, str], tuple[datetime, datetime | None]] = {}
        self._checks = CheckCache(CHECK_CACHE_SECONDS, MAX_CACHED_CHECKS)  # see `_check_instances`
        self._definitions_fresh_until = 0.0  # monotonic; until then checks skip the revision read
        store.add_write_hook(BudgetSpendHook(), after_commit=self._after_commit)  # no-op hook if present
        self.sync_config()

    # ---- definitions -------------------------------------------------------------------------------

    def sync_config(self) -> None:
        """Make the stored definitions match the config file for every name it declares."""
        now = self.clock()
        with self.store.transaction() as conn:
            lock_for_change(conn)
            stored = {row.name: row for row in conn.execute(select(budgets))}
            changed: list[Budget] = []
            for budget in self.config.items:
                definition = json.dumps(budget.to_json(), sort_keys=True)
                row = stored.get(budget.name)
                if row is None or row.definition != definition or row.source != "config":
                    conn.execute(budgets.delete().where(budgets.c.name == budget.name))
                    conn.execute(
                        budgets.insert().values(
                            name=budget.name, definition=definition, source="config", updated_at=now
                        )
                    )
                    changed.append(budget)
            removed = [
                name for name, row in stored.items() if row.source == "config" and name not in self._config_names
            ]
            for name in removed:
                self._delete_rows(conn, name)
            if changed or removed:
                bump_revision(conn)
                for budget in changed:
                    rebuild_current_period(conn, budget, now, self.periods)
        self._forget_checks(definitions=True)

    def reload(self, config: BudgetsConfig) -> None:
        """Apply a re-read `budgets:` section (SIGHUP): declared budgets change, undeclared ones go."""
        self.config = config
        self._config_names = {b.name for b in config.items}
        self.sync_config()

    def _delete_rows(self, conn: Any, name: str) -> None:
        conn.execute(budgets.delete().where(budgets.c.name == name))
        conn.execute(budget_spend.delete().where(budget_spend.c.budget == name))
        conn.execute(budget_state.delete().where(budget_state.c.budget == name))

    def definitions(self) -> list[Budget]:
        """Current definitions (reloaded when any process changed them: one primary-key read)."""
        with self.store.raw_cursor() as (cursor, q):
            return self._definitions_on(cursor, q)

    def _definitions_on(self, cursor: Any, q: str) -> list[Budget]:
        cursor.execute(f"SELECT value FROM ingest_counters WHERE name = {q}", (REVISION_COUNTER,))
        row = cursor.fetchone()
        revision = float(row[0]) if row else 0.0
        with self._lock:
            if revision != self._revision:
                cursor.execute("SELECT name, definition FROM budgets")
                self._budgets = sorted(load_budgets(cursor.fetchall()), key=lambda b: b.name)
                self._revision = revision
            return list(self._budgets)

    def get(self, name: str) -> Budget:
        """One definition, or a 404 BudgetError."""
        for budget in self.definitions():
            if budget.name == name:
                return budget
        raise BudgetError(404, f"no budget named {name!r}")

    def put(self, name: str, raw: Any) -> Budget:
        """Create or replace an API-managed budget."""
        if name in self._config_names:
            raise BudgetError(409, f"budget {name!r} is declared in the config file, which is its source of truth")
        problems: list[str] = []
        budget = parse_budget(raw, "budget", problems, name=name)
        if budget is None:
            raise BudgetError(422, "invalid budget", problems)
        now = self.clock()
        with self.store.transaction() as conn:
            lock_for_change(conn)
            stored = conn.execute(select(budgets.c.source).where(budgets.c.name == name)).first()
            if stored is not None and stored.source == "config":
                raise BudgetError(409, f"budget {name!r} is declared in the config file")
            self._delete_rows(conn, name)
            conn.execute(
                budgets.insert().values(
                    name=name, definition=json.dumps(budget.to_json(), sort_keys=True), source="api", updated_at=now
                )
            )
            bump_revision(conn)
            rebuild_current_period(conn, budget, now, self.periods)
        self._forget_checks(definitions=True)
        return budget

    def delete(self, name: str) -> None:
        """Remove an API-managed budget (and resolve its alerts)."""
        if name in self._config_names:
            raise BudgetError(409, f"budget {name!r} is declared in the config file; remove it there")
        with self.store.transaction() as conn:
            lock_for_change(conn)
            if conn.execute(select(budgets.c.name).where(budgets.c.name == name)).first() is None:
                raise BudgetError(404, f"no budget named {name!r}")
            self._delete_rows(conn, name)
            bump_revision(conn)
        self._forget_checks(definitions=True)
        if self.sink is not None:
            for alertname, labels in self.sink.active_labels(BUDGET_ALERTS):
                if labels.get("budget") == name:
                    self.sink.resolve(alertname, labels)

    # ---- status ------------------------------------------------------------------------------------

    def _bounds(self, budget: Budget, now: float) -> tuple[datetime, datetime | None]:
        """The current period of `budget`, cached until it ends (computing it costs ~100 µs)."""
        key = (budget.period, budget.timezone)
        cached = self._period_cache.get(key)
        if cached is not None:
            start, end = cached
            if start.timestamp() <= now and (end is None or now < end.timestamp()):
                return cached
        bounds = period_bounds(budget.period, datetime.fromtimestamp(now, UTC), budget.timezone)
        self._period_cache[key] = bounds
        return bounds

    def instances(self, now: float | None = None, only: Iterable[Budget] | None = None) -> list[Instance]:
        """Every budget instance in its current period, with spend and the last projection."""
        now = self.clock() if now is None else now
        chosen = list(only) if only is not None else self.definitions()
        if not chosen:
            return []
        # Only the current period of each budget: rows of past periods are never read again.
        current = [(b.name, int(self._bounds(b, now)[0].timestamp())) for b in chosen]
        with self.store.reading() as conn:
            spend_rows = conn.execute(
                select(budget_spend).where(tuple_(budget_spend.c.budget, budget_spend.c.period_start).in_(current))
            ).all()
            state_rows = conn.execute(
                select(budget_state).where(tuple_(budget_state.c.budget, budget_state.c.period_start).in_(current))
            ).all()
        spend = {(r.budget, r.key, r.period_start): r for r in spend_rows}
        projections = {(r.budget, r.key, r.period_start): r.projected for r in state_rows}
        out: list[Instance] = []
        for budget in chosen:
            start, end = self._bounds(budget, now)
            first = int(start.timestamp())
            keys = sorted({k for (b, k, p) in spend if b == budget.name and p == first})
            if budget.key != "*":
                keys = [budget.key if budget.scope != "global" else ""]
            for key in keys:
                row = spend.get((budget.name, key, first))
                spent = unit_value(budget, row.cost_nanousd, row.tokens, row.requests) if row else 0.0
                projected = max(projections.get((budget.name, key, first), spent), spent)
                out.append(Instance(budget, key, start, end, spent, projected))
        return out

    def _instances_on(
        self,
        cursor: Any,
        q: str,
        pairs: list[tuple[Budget, str]],
        now: float,
        *,
        raw: list[tuple[int, int, int]] | None = None,
    ) -> list[Instance]:
        """The current-period instances of exactly these (budget, key) pairs: one primary-key query.

        On the pre-call check path, so it uses the raw driver: SQLAlchemy's statement building and
        expanding-IN compilation cost ten times the query itself. `raw` (if given) receives each
        instance's spend row counters.
        """
        if not pairs:
            return []
        keys = []
        for budget, key in pairs:
            start, _end = self._bounds(budget, now)
            keys.append((budget.name, key, int(start.timestamp())))
        rows = ", ".join([f"({q}, {q}, {q})"] * len(keys))
        cursor.execute(
            "SELECT s.budget, s.key, s.cost_nanousd, s.tokens, s.requests, st.projected "
            "FROM budget_spend s LEFT JOIN budget_state st "
            "ON st.budget = s.budget AND st.key = s.key AND st.period_start = s.period_start "
            f"WHERE (s.budget, s.key, s.period_start) IN ({rows})",
            [value for triple in keys for value in triple],
        )
        found = {(r[0], r[1]): r[2:] for r in cursor.fetchall()}
        out = []
        for budget, key in pairs:
            start, end = self._bounds(budget, now)
            row = found.get((budget.name, key))
            counters = (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)
            if raw is not None:
                raw.append(counters)
            spent = unit_value(budget, *counters) if row else 0.0
            projected = max(float(row[3]), spent) if row and row[3] is not None else spent
            out.append(Instance(budget, key, start, end, spent, projected))
        return out

    def status(self, name: str) -> dict[str, Any]:
        """Status object of one budget; a `key: "*"` budget lists its instances and shows the worst."""
        budget = self.get(name)
        instances = self.instances(only=[budget])
        if budget.key != "*":
            return instances[0].to_json()
        start, end = self._bounds(budget, self.clock())
        worst = max((i for i in instances if i.key != OTHER_INSTANCE), key=lambda i: i.ratio, default=None)
        body = worst.to_json() if worst else Instance(budget, "*", start, end, 0.0, 0.0).to_json()
        body["key"] = "*"
        body["instances"] = [i.to_json() for i in sorted(instances, key=lambda i: -i.ratio)]
        other = next((i for i in instances if i.key == OTHER_INSTANCE), None)
        if other is not None:
            # Values past max_instances share one instance: said plainly, since it is never alerted on.
            body["folded"] = {
                "max_instances": budget.max_instances,
                "key": OTHER_INSTANCE,
                "spent": other.spent,
                "note": f"values past the first {budget.max_instances} are summed here and not alerted on",
            }
        return body

    def check(self, request: dict[str, Any]) -> dict[str, Any]:
        """Would this call fit? `allowed` is false only when a matching hard budget would be exceeded."""
        estimate = request.get("estimated_cost_usd", 0.0) or 0.0
        if isinstance(estimate, bool) or not isinstance(estimate, int | float) or not 0 <= estimate < 1e9:
            raise BudgetError(422, "estimated_cost_usd must be a number >= 0", {"field": "estimated_cost_usd"})
        labels = {}
        for name in ("project", "user", "service", "model"):
            value = request.get(name, "")
            if not isinstance(value, str):
                raise BudgetError(422, f"{name} must be a string", {"field": name})
            labels[name] = value
        now = self.clock()
        try:
            found = self._check_instances(labels, now)
        except StoreUnavailable:
            allowed = self.config.fail_mode == "open"
            return {
                "allowed": allowed,
                "state": "unknown",
                "budgets": [],
                "degraded": True,
                "detail": f"store unreachable; budgets.fail_mode is {self.config.fail_mode!r}",
            }
        relevant = []
        allowed = True
        for instance in found:
            budget = instance.budget
            relevant.append(instance)
            if budget.mode == "hard":
                extra = {"usd": float(estimate), "requests": 1.0, "tokens": 0.0}[budget.unit]
                after = instance.spent + extra
                if after > budget.limit or (budget.unit == "tokens" and instance.spent >= budget.limit):
                    allowed = False
        return {
            "allowed": allowed,
            "state": _worst(i.state for i in relevant),
            "budgets": [i.to_json() for i in relevant],
        }

    def _check_instances(self, labels: dict[str, str], now: float) -> list[Instance]:
        """The instances matching a check's labels, answered from a cache for up to CHECK_CACHE_SECONDS.

        Applications call the check before every LLM call, hundreds of times a second with a handful
        of label sets; on PostgreSQL each answer costs round trips and ~1 ms of CPU. This process's own
        spend is added to cached answers as it commits (see `check_cache`), and a definition change or a
        period end drops them, so an answer can only miss what *other* processes ingested in the last
        CHECK_CACHE_SECONDS, far less than the time between a check and the ingest of the call it allowed.
        """
        key = tuple(labels.values())
        cached = self._checks.get(key, lambda instances: _still_current(instances, now))
        if cached is not None:
            return cached
        began = self._checks.begin_read()
        # One connection for both reads. Definitions change rarely: their revision is read at most every
        # CHECK_CACHE_SECONDS (local changes reset that).
        with self.store.raw_cursor() as (cursor, q):
            if time.monotonic() < self._definitions_fresh_until:
                with self._lock:
                    definitions = list(self._budgets)
            else:
                definitions = self._definitions_on(cursor, q)
                self._definitions_fresh_until = time.monotonic() + CHECK_CACHE_SECONDS
            pairs = [(b, k) for b in definitions if (k := b.matches(labels)) is not None]
            raw: list[tuple[int, int, int]] = []
            found = self._instances_on(cursor, q, pairs, now, raw=raw)
        self._checks.put(key, began, found, raw)
        return found

    def _forget_checks(self, *, definitions: bool = False) -> None:
        self._checks.clear()
        if definitions:
            self._definitions_fresh_until = 0.0

    # ---- alerts ------------------------------------------------------------------------------------

    def _annotations(self, instance: Instance, alertname: str) -> dict[str, str]:
        b = instance.budget
        scope = "all usage" if b.scope == "global" else f"{b.scope} {instance.key!r}"

        def amount(value: float) -> str:
            return f"${value:,.2f}" if b.unit == "usd" else f"{value:,.0f} {b.unit}"

        if alertname == FORECAST_ALERT:
            summary = f"Budget {b.name} is projected to reach {amount(instance.projected)} of {amount(b.limit)}"
        else:
            summary = f"Budget {b.name} is at {instance.ratio:.0%} ({amount(instance.spent)} of {amount(b.limit)})"
        return {
            "summary": summary,
            "description": f"{b.period} budget for {scope}; period ends {instance.to_json()['period_end'] or 'never'}.",
            "spent": f"{instance.spent:.6f}",
            "limit": f"{b.limit:.6f}",
            "ratio": f"{instance.ratio:.4f}",
            "projected": f"{instance.projected:.6f}",
            "runbook_url": "https://github.com/llmcost/llmcost/blob/main/docs/runbook.md#llmbudget-alerts",
        }

    def _desired(self, instance: Instance, now: float) -> set[str]:
        wanted = set()
        state_index = _LEVELS.index(instance.state) if instance.state in _LEVELS else -1
        for level in _LEVELS[: state_index + 1]:
            wanted.add(ALERT_FOR_STATE[level])
        fraction = elapsed_fraction(instance.period_start, instance.period_end, datetime.fromtimestamp(now, UTC))
        if instance.period_end is not None and instance.state != "exceeded":
            from alerting.projection import ProjectionResult

            result = ProjectionResult(instance.projected, instance.projected, instance.projected, instance.spent, "")
            if should_alert_forecast(result, instance.budget.limit, fraction, self.projection):
                wanted.add(FORECAST_ALERT)
        return wanted

    def _after_commit(self, result: WriteResult) -> None:
        """Raise threshold alerts within moments of the ingest that crossed them."""
        committed_by = time.monotonic()
        changes = [r for r in result.hook_results if isinstance(r, SpendChange)]
        touched = {(b, k) for change in changes for b, k, _p in change.increments}
        if not touched:
            return
        self._checks.add_local_spend(changes, committed_by)  # visible to the very next check
        if self.sink is None:
            return
        names = {b for b, _ in touched}
        defs = [b for b in self.definitions() if b.name in names]
        for instance in self.instances(only=defs):
            ident = (instance.budget.name, instance.key)
            if ident not in touched:
                continue
            level = STATES.index(instance.state)
            if level <= self._levels.get(ident, STATES.index("info")):
                continue
            self._levels[ident] = level
            for alertname in sorted(self._desired(instance, self.clock()) - {FORECAST_ALERT}):
                self.sink.fire(
                    alertname, instance.labels(), self._annotations(instance, alertname), SEVERITY_FOR_ALERT[alertname]
                )

    def evaluate(self, now: float | None = None) -> None:
        """Scheduler job: project every instance, raise what holds, resolve what no longer does."""
        now = self.clock() if now is None else now
        definitions = self.definitions()
        self._store_projections(definitions, now)
        instances = self.instances(now)
        self._levels = {(i.budget.name, i.key): STATES.index(i.state) for i in instances}
        if self.sink is None:
            return
        desired: dict[tuple[str, str, str], Instance] = {}
        for instance in instances:
            if instance.key == OTHER_INSTANCE:
                # The sum of many values past `max_instances`: reported in the status, never paged as if
                # it were one value over its limit (a flood of names must not page by itself).
                continue
            for alertname in self._desired(instance, now):
                desired[(alertname, instance.budget.name, instance.key)] = instance
        active = {
            (alertname, labels.get("budget", ""), labels.get("key", "")): labels
            for alertname, labels in self.sink.active_labels(BUDGET_ALERTS)
        }
        for ident, instance in desired.items():
            alertname = ident[0]
            self.sink.fire(
                alertname,
                instance.labels(),
                self._annotations(instance, alertname),
                SEVERITY_FOR_ALERT.get(alertname, "warning"),
            )
        for ident, labels in active.items():
            if ident not in desired:
                self.sink.resolve(ident[0], labels)

    def _tracked_keys(self, budget: Budget, period_start: int) -> set[str]:
        """The instance keys a `key: "*"` budget tracks in the period starting at `period_start`."""
        query = select(budget_spend.c.key).where(
            budget_spend.c.budget == budget.name, budget_spend.c.period_start == period_start
        )
        with self.store.reading() as conn:
            return {str(row[0]) for row in conn.execute(query)}

    def _store_projections(self, definitions: list[Budget], now: float) -> None:
        cfg = self.projection
        rows: list[dict[str, Any]] = []
        for budget in definitions:
            start, end = self._bounds(budget, now)
            if end is None:
                continue
            history_start = min(start.timestamp(), now - cfg.history_days * 86400)
            first = int(history_start // BUCKET_SECONDS) * BUCKET_SECONDS
            last = int(now // BUCKET_SECONDS) * BUCKET_SECONDS
            bucket_starts = np.arange(first, last + BUCKET_SECONDS, BUCKET_SECONDS, dtype=np.int64)
            label = budget.label
            columns = {"usd": ["cost_nanousd"], "requests": ["requests"]}.get(
                budget.unit, ["input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens"]
            )
            where = {label: budget.key} if label and budget.key != "*" else None
            data = self.store.rollup_buckets(
                first, last + BUCKET_SECONDS, group_by=[label] if label else [], where=where, columns=columns
            )
            keyed: dict[str, np.ndarray] = {}
            # Fold before building arrays: a `key: "*"` budget projects only the instances it tracks
            # (at most max_instances); every other value adds to `__other__`.
            tracked = self._tracked_keys(budget, int(start.timestamp())) if budget.key == "*" else None
            for row in data:
                key = str(row[0]) if label else ""
                if tracked is not None and key not in tracked:
                    key = OTHER_INSTANCE
                bucket = int(row[1] if label else row[0])
                values = row[2:] if label else row[1:]
                arr = keyed.setdefault(key, np.zeros(bucket_starts.size))
                amount = float(sum(int(v or 0) for v in values))
                arr[(bucket - first) // BUCKET_SECONDS] += amount / 1e9 if budget.unit == "usd" else amount
            if budget.key != "*":
                keyed.setdefault(budget.key if label else "", np.zeros(bucket_starts.size))
            if not keyed:
                continue
            keys = sorted(keyed)
            batch = project_many(
                bucket_starts,
                np.vstack([keyed[k] for k in keys]),
                start,
                end,
                datetime.fromtimestamp(now, UTC),
                tz=budget.timezone,
                config=cfg,
            )
            for i, key in enumerate(keys):
                rows.append(
                    {
                        "budget": budget.name,
                        "key": key,
                        "period_start": int(start.timestamp()),
                        "projected": float(batch.projected[i]),
                        "projected_low": float(batch.low[i]),
                        "projected_high": float(batch.high[i]),
                        "method": str(batch.method[i]),
                        "updated_at": now,
                    }
                )
        with self.store.transaction() as conn:
            conn.execute(budget_state.delete())
            if rows:
                conn.execute(budget_state.insert(), rows)
