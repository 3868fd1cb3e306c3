"""Budget service: definitions (config, API, CLI), resets, status, pre-call checks, alerts.

Definitions change only through explicit calls (`apply_config`, `put`, `delete`, `reset`): building a
service writes nothing, so a reading command can never change budgets (docs/budgets.md).

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

from alerting.budgets.apply import ApplyPlan, Prune, StoredDefinition, definition_json, plan_apply
from alerting.budgets.check_answer import CheckRequestError, decide, parse_check_request
from alerting.budgets.check_cache import CheckCache
from alerting.budgets.definition import (
    ALERT_FOR_STATE,
    FORECAST_ALERT,
    OTHER_INSTANCE,
    REQUEST_CAP_ALERT,
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
from alerting.budgets.tables import REVISION_COUNTER, budget_resets, budget_spend, budget_state, budgets
from alerting.periods import elapsed_fraction, period_bounds
from alerting.projection import (
    INSUFFICIENT_HISTORY,
    ProjectionConfig,
    has_forecast_evidence,
    project_many,
    should_alert_forecast,
)
from exporter.store import Store, StoreUnavailable
from exporter.store.schema import BUCKET_SECONDS
from exporter.store.writer import WriteResult

log = logging.getLogger(__name__)
BUDGET_ALERTS = (*ALERT_FOR_STATE.values(), FORECAST_ALERT)
PERSON_RESOLVED = (*BUDGET_ALERTS, REQUEST_CAP_ALERT)  # what a reset or a deletion resolves


def _identity(alertname: str) -> str:
    """What identifies a budget alert of an instance: "level" for any level alert, else its name."""
    return "level" if alertname in SEVERITY_FOR_ALERT else alertname


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
    projection: str = ""
    """How `projected` was made (the projector's method); `insufficient_history` when it is not yet."""
    reset_at: float | None = None  # the last reset in this period, if any

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
            "projection": self.projection.replace("_", " "),
            "state": self.state,
            "mode": b.mode,
            "period_start": self.period_start.isoformat().replace("+00:00", "Z"),
            "period_end": self.period_end.isoformat().replace("+00:00", "Z") if self.period_end else None,
            "reset_at": _iso(self.reset_at) if self.reset_at is not None else None,
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _resolve(sink: AlertSink, alertname: str, labels: dict[str, str], *, by: str, comment: str) -> None:
    """Resolve with who and why when the sink records it (the gateway does)."""
    resolve_with_reason = getattr(sink, "resolve_with_reason", None)
    if resolve_with_reason is not None:
        resolve_with_reason(alertname, labels, by=by, comment=comment)
    else:
        sink.resolve(alertname, labels)


FireItem = tuple[str, dict[str, str], dict[str, str], str]
"""(alertname, labels, annotations, severity) of one alert to fire."""


def _fire_all(sink: AlertSink, items: list[FireItem]) -> None:
    """Fire `items` together: in one transaction when the sink can (the gateway groups their notifications)."""
    fire_many = getattr(sink, "fire_many", None)
    if fire_many is not None and len(items) > 1:
        fire_many(items)
        return
    for alertname, labels, notes, severity in items:
        sink.fire(alertname, labels, notes, severity)


def _resolve_all(sink: AlertSink, items: list[tuple[str, dict[str, str]]]) -> None:
    """Resolve `items` together when the sink can (see `_fire_all`)."""
    resolve_many = getattr(sink, "resolve_many", None)
    if resolve_many is not None and len(items) > 1:
        resolve_many(items)
        return
    for alertname, labels in items:
        sink.resolve(alertname, labels)


def _still_current(instances: Iterable[Instance], now: float) -> bool:
    """No instance's period has ended by `now`."""
    return all(i.period_end is None or now < i.period_end.timestamp() for i in instances)


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
        self._resets: dict[tuple[str, str, int], float] = {}  # (budget, key, period_start) → last reset_at
        self._levels: dict[tuple[str, str], int] = {}
        self._period_cache: dict[tuple[str, str], tuple[datetime, datetime | None]] = {}
        self._checks = CheckCache(CHECK_CACHE_SECONDS, MAX_CACHED_CHECKS)  # see `_check_instances`
        self._definitions_fresh_until = 0.0  # monotonic; until then checks skip the revision read
        store.add_write_hook(BudgetSpendHook(), after_commit=self._after_commit)  # no-op hook if present

    # ---- definitions ----------------------------------------------------------------------------
    #
    # Nothing here runs on construction: definitions change only through `apply_config` (called by the
    # `serve` leader and by `llmcost budgets apply`), `put`/`create`/`update`/`delete` (API and CLI) and
    # `reset`. See alerting/budgets/apply.py for the origin rules.

    def stored_definitions(self, conn: Any = None) -> list[StoredDefinition]:
        """Every stored definition row with its origin."""
        stmt = select(budgets.c.name, budgets.c.definition, budgets.c.source, budgets.c.origin_ref)
        if conn is not None:
            rows = conn.execute(stmt).all()
        else:
            with self.store.reading() as reader:
                rows = reader.execute(stmt).all()
        return [StoredDefinition(r.name, r.definition, r.source, r.origin_ref) for r in rows]

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
        now = self.clock()
        if dry_run:
            return plan_apply(self.stored_definitions(), declared, origin_ref=origin_ref, prune=prune)
        with self.store.transaction() as conn:
            lock_for_change(conn)
            plan = plan_apply(self.stored_definitions(conn), declared, origin_ref=origin_ref, prune=prune)
            for budget in [*plan.create, *(new for _old, new in plan.update)]:
                conn.execute(budgets.delete().where(budgets.c.name == budget.name))
                conn.execute(
                    budgets.insert().values(
                        name=budget.name,
                        definition=definition_json(budget),
                        source="config",
                        origin_ref=origin_ref,
                        updated_at=now,
                        updated_by=by or None,
                    )
                )
            for name in plan.delete:
                self._delete_rows(conn, name)
            if plan.changes:
                bump_revision(conn)
                for budget in [*plan.create, *(new for old, new in plan.update if old != new.to_json())]:
                    rebuild_current_period(conn, budget, now, self.periods)
        if plan.changes:
            self._forget_checks(definitions=True)
            self._resolve_alerts_of(plan.delete, by=by or "config", comment="budget removed from the config file")
        return plan

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
                # Resets bump the revision too; there are few, so all are kept.
                cursor.execute("SELECT budget, key, period_start, MAX(reset_at) FROM budget_resets GROUP BY 1, 2, 3")
                self._resets = {(r[0], r[1], int(r[2])): float(r[3]) for r in cursor.fetchall()}
                self._revision = revision
            return list(self._budgets)

    def get(self, name: str) -> Budget:
        """One definition, or a 404 BudgetError."""
        for budget in self.definitions():
            if budget.name == name:
                return budget
        raise BudgetError(404, f"no budget named {name!r}")

    def origin(self, name: str) -> dict[str, Any]:
        """Where a definition came from: `origin` (config, api, cli), `origin_ref`, `updated_at`, `updated_by`."""
        with self.store.reading() as conn:
            row = conn.execute(select(budgets).where(budgets.c.name == name)).first()
        if row is None:
            raise BudgetError(404, f"no budget named {name!r}")
        return {
            "origin": row.source,
            "origin_ref": row.origin_ref,
            "updated_at": row.updated_at,
            "updated_by": row.updated_by,
        }

    def put(self, name: str, raw: Any, *, origin: str = "api", by: str = "", mode: str = "upsert") -> Budget:
        """Create or replace an API- or CLI-managed budget (`mode`: upsert, create or update).

        A budget applied from a config file is refused (409): the file is its source of truth. `update`
        takes a partial mapping laid over the stored definition.
        """
        now = self.clock()
        with self.store.transaction() as conn:
            lock_for_change(conn)
            stored = conn.execute(select(budgets.c.source, budgets.c.definition).where(budgets.c.name == name)).first()
            if stored is not None and stored.source == "config":
                raise BudgetError(
                    409, f"budget {name!r} is declared in a config file; change it there and apply the file"
                )
            if mode == "create" and stored is not None:
                raise BudgetError(409, f"budget {name!r} exists already; use update")
            if mode == "update":
                if stored is None:
                    raise BudgetError(404, f"no budget named {name!r}")
                if not isinstance(raw, dict):
                    raise BudgetError(422, "invalid budget", ["budget: must be a mapping"])
                raw = {**json.loads(stored.definition), **raw}
            problems: list[str] = []
            budget = parse_budget(raw, "budget", problems, name=name)
            if budget is None:
                raise BudgetError(422, "invalid budget", problems)
            self._delete_rows(conn, name)
            conn.execute(
                budgets.insert().values(
                    name=name,
                    definition=definition_json(budget),
                    source=origin,
                    updated_at=now,
                    updated_by=by or None,
                )
            )
            bump_revision(conn)
            rebuild_current_period(conn, budget, now, self.periods)
        self._forget_checks(definitions=True)
        return budget

    def delete(self, name: str, *, by: str = "") -> None:
        """Remove an API- or CLI-managed budget and resolve its alerts; a config-file budget is refused."""
        with self.store.transaction() as conn:
            lock_for_change(conn)
            row = conn.execute(select(budgets.c.source).where(budgets.c.name == name)).first()
            if row is None:
                raise BudgetError(404, f"no budget named {name!r}")
            if row.source == "config":
                raise BudgetError(
                    409, f"budget {name!r} is declared in a config file; remove it there and apply the file"
                )
            self._delete_rows(conn, name)
            bump_revision(conn)
        self._forget_checks(definitions=True)
        self._resolve_alerts_of([name], by=by, comment="budget deleted")

    def _resolve_alerts_of(self, names: Iterable[str], *, by: str, comment: str) -> None:
        wanted = set(names)
        if self.sink is None or not wanted:
            return
        for alertname, labels in self.sink.active_labels(PERSON_RESOLVED):
            if labels.get("budget") in wanted:
                _resolve(self.sink, alertname, labels, by=by, comment=comment)

    def reset(self, name: str, *, by: str, reason: str = "", key: str | None = None) -> list[dict[str, Any]]:
        """Start a fresh count for the current period from now (audited); resolves the budget's alerts.

        Returns the audit records: per instance, who, when and what had been spent. `key` limits a
        `key: "*"` budget's reset to one value.
        """
        if not by:
            raise BudgetError(422, "a reset needs the name of who resets (by)")
        budget = self.get(name)
        now = self.clock()
        first = int(self._bounds(budget, now)[0].timestamp())
        fixed = None if budget.key == "*" else (budget.key if budget.scope != "global" else "")
        if key is not None and fixed is not None and key != fixed:
            raise BudgetError(404, f"budget {name!r} has no key {key!r}")
        records: list[dict[str, Any]] = []
        with self.store.transaction() as conn:
            lock_for_change(conn)
            where = [budget_spend.c.budget == name, budget_spend.c.period_start == first]
            if key is not None:
                where.append(budget_spend.c.key == key)
            rows = {r.key: r for r in conn.execute(select(budget_spend).where(*where))}
            keys = sorted(rows) if fixed is None else [fixed]
            if key is not None and fixed is None:
                keys = [key]
            for k in keys:
                row = rows.get(k)
                counters = (row.cost_nanousd, row.tokens, row.requests) if row is not None else (0, 0, 0)
                conn.execute(
                    budget_resets.insert().values(
                        budget=name,
                        key=k,
                        period_start=first,
                        reset_at=now,
                        reset_by=by,
                        reason=reason,
                        cost_nanousd=counters[0],
                        tokens=counters[1],
                        requests=counters[2],
                    )
                )
                records.append(
                    {
                        "budget": name,
                        "key": k,
                        "reset_at": _iso(now),
                        "reset_by": by,
                        "reason": reason,
                        "spent_before": unit_value(budget, *counters),
                        "unit": budget.unit,
                    }
                )
            conn.execute(budget_spend.delete().where(*where))
            bump_revision(conn)
        self._forget_checks(definitions=True)
        for k in keys:
            self._levels.pop((name, k), None)
        if self.sink is not None:
            why = f"budget reset by {by}" + (f": {reason}" if reason else "")
            for alertname, labels in self.sink.active_labels(PERSON_RESOLVED):
                if labels.get("budget") == name and (key is None or labels.get("key") == key):
                    _resolve(self.sink, alertname, labels, by=by, comment=why)
        return records

    def resets(self, name: str) -> list[dict[str, Any]]:
        """The audit trail of a budget's resets, newest first."""
        with self.store.reading() as conn:
            rows = conn.execute(
                select(budget_resets).where(budget_resets.c.budget == name).order_by(budget_resets.c.id.desc())
            ).all()
        return [
            {
                "key": r.key,
                "reset_at": _iso(r.reset_at),
                "reset_by": r.reset_by,
                "reason": r.reason,
                "cost_usd": r.cost_nanousd / 1e9,
                "tokens": r.tokens,
                "requests": r.requests,
            }
            for r in rows
        ]

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
        projections = {(r.budget, r.key, r.period_start): (r.projected, r.method) for r in state_rows}
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
                projected, method = projections.get((budget.name, key, first), (spent, ""))
                reset_at = self._resets.get((budget.name, key, first))
                out.append(
                    Instance(
                        budget, key, start, end, spent, max(projected, spent), projection=method, reset_at=reset_at
                    )
                )
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
            "SELECT s.budget, s.key, s.cost_nanousd, s.tokens, s.requests, st.projected, st.method "
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
            method = str(row[4]) if row and row[4] is not None else ""
            reset_at = self._resets.get((budget.name, key, int(start.timestamp())))
            out.append(Instance(budget, key, start, end, spent, projected, projection=method, reset_at=reset_at))
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

    def check(self, request: Any) -> dict[str, Any]:
        """Would this call fit? See alerting/budgets/check_answer.py for the answer's fields."""
        try:
            parsed = parse_check_request(request)
        except CheckRequestError as exc:
            raise BudgetError(422, f"invalid check: {exc}", exc.problems) from None
        now = self.clock()
        try:
            found = self._check_instances(parsed.labels, now)
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
        """The alerts this instance should have firing: its level's (one at most) and the forecast."""
        wanted = set()
        level_alert = ALERT_FOR_STATE.get(instance.state)
        if level_alert is not None:
            wanted.add(level_alert)
        fraction = elapsed_fraction(instance.period_start, instance.period_end, datetime.fromtimestamp(now, UTC))
        # Forecasts need evidence: a part of the period gone (should_alert_forecast) and enough history
        # of the series for its period (has_forecast_evidence, recorded as the projection's method).
        if (
            instance.period_end is not None
            and instance.state != "exceeded"
            and instance.projection != INSUFFICIENT_HISTORY
        ):
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
        self._alert_request_caps(result, [b for b in defs if b.max_cost_per_request or b.max_tokens_per_request])
        crossed: list[FireItem] = []
        for instance in self.instances(only=defs):
            ident = (instance.budget.name, instance.key)
            if ident not in touched:
                continue
            level = STATES.index(instance.state)
            if level <= self._levels.get(ident, STATES.index("ok")):
                continue
            self._levels[ident] = level
            for alertname in sorted(self._desired(instance, self.clock()) - {FORECAST_ALERT}):
                crossed.append(
                    (
                        alertname,
                        instance.labels(),
                        self._annotations(instance, alertname),
                        SEVERITY_FOR_ALERT[alertname],
                    )
                )
        # One request crossing many instances of a `key: "*"` budget: one transaction, one grouped message.
        _fire_all(self.sink, crossed)

    def _alert_request_caps(self, result: WriteResult, capped: list[Budget]) -> None:
        """Fire REQUEST_CAP_ALERT for each capped budget that a newly stored call went over (counted anyway)."""
        if not capped or self.sink is None:
            return
        worst: dict[tuple[str, str], tuple[Budget, Any, str]] = {}
        for event, new in zip(result.events, result.inserted, strict=False):
            if not new:
                continue
            labels = {"project": event.project, "user": event.user, "service": event.service, "model": event.model}
            cost = (event.cost_nanousd or 0) / 1e9
            tokens = event.input_tokens + event.cache_read_tokens + event.cache_write_tokens + event.output_tokens
            for budget in capped:
                key = budget.matches(labels)
                if key is None:
                    continue
                if budget.max_cost_per_request is not None and cost > budget.max_cost_per_request:
                    why = f"call {event.request_id} cost ${cost:,.4f}, over the ${budget.max_cost_per_request:,.2f} cap"
                elif budget.max_tokens_per_request is not None and tokens > budget.max_tokens_per_request:
                    cap = budget.max_tokens_per_request
                    why = f"call {event.request_id} used {tokens:,} tokens, over the {cap:,} cap"
                else:
                    continue
                worst.setdefault((budget.name, key), (budget, event, why))
        now = self.clock()
        for (name, key), (budget, _event, why) in sorted(worst.items(), key=lambda item: item[0]):
            start = int(self._bounds(budget, now)[0].timestamp())
            labels = {"budget": name, "scope": budget.scope, "key": key, "period_start": str(start)}
            annotations = {
                "summary": f"Budget {name}: a call exceeded its per-request cap ({why}); it was counted",
                "description": f"{budget.period} budget {name}; the alert resolves when the period ends or on reset.",
                "runbook_url": "https://github.com/llmcost/llmcost/blob/main/docs/budgets.md#per-request-caps",
            }
            self.sink.fire(REQUEST_CAP_ALERT, labels, annotations, "warning")

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
        # The level alerts of one instance are one alert (its name follows the level): compare them
        # by instance, so moving from one level to another is a change of that alert, not a resolve.
        active = {
            (_identity(alertname), labels.get("budget", ""), labels.get("key", "")): (alertname, labels)
            for alertname, labels in self.sink.active_labels(BUDGET_ALERTS)
        }
        wanted = {(_identity(alertname), budget, key) for alertname, budget, key in desired}
        _fire_all(
            self.sink,
            [
                (
                    ident[0],
                    instance.labels(),
                    self._annotations(instance, ident[0]),
                    SEVERITY_FOR_ALERT.get(ident[0], "warning"),
                )
                for ident, instance in desired.items()
            ],
        )
        _resolve_all(
            self.sink, [(alertname, labels) for ident, (alertname, labels) in active.items() if ident not in wanted]
        )
        current = {b.name: str(int(self._bounds(b, now)[0].timestamp())) for b in definitions}
        for alertname, labels in self.sink.active_labels([REQUEST_CAP_ALERT]):
            if current.get(labels.get("budget", "")) != labels.get("period_start"):
                self.sink.resolve(alertname, labels)  # its period is over (or the budget is gone)

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
            history = batch.history_seconds if batch.history_seconds is not None else np.zeros(len(keys))
            for i, key in enumerate(keys):
                state: dict[str, Any] = {
                    "budget": budget.name,
                    "key": key,
                    "period_start": int(start.timestamp()),
                    "projected": float(batch.projected[i]),
                    "projected_low": float(batch.low[i]),
                    "projected_high": float(batch.high[i]),
                    "method": str(batch.method[i]),
                    "updated_at": now,
                }
                if state["method"] in ("shape", "recent_rate") and not has_forecast_evidence(
                    budget.period, float(history[i])
                ):
                    # Not enough history to project from: report spend so far, raise no forecast.
                    spent = float(batch.spent[i])
                    state.update(projected=spent, projected_low=spent, projected_high=spent)
                    state["method"] = INSUFFICIENT_HISTORY
                rows.append(state)
        with self.store.transaction() as conn:
            conn.execute(budget_state.delete())
            if rows:
                conn.execute(budget_state.insert(), rows)
