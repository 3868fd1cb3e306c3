"""Budget definitions in the store: read (cached by revision), created, changed, deleted, reset, audited.

Definitions change only through explicit calls: `apply_config` (the `serve` leader and `llmcost budgets
apply`), `put`/`delete` (API and CLI) and `reset`; building a registry writes nothing, so a reading
command can never change budgets (docs/budgets.md). See alerting/budgets/apply.py for the origin rules.
Every change bumps the definitions' revision, which every process reads before trusting its copy.

The registry changes rows only: dropping cached check answers and resolving alerts after a change is
the `BudgetService`'s part.
"""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from alerting.budgets.apply import ApplyPlan, Prune, StoredDefinition, definition_json, plan_apply
from alerting.budgets.definition import OTHER_INSTANCE, Budget, counts_alike, parse_budget
from alerting.budgets.errors import BudgetError
from alerting.budgets.instances import CurrentPeriods, folded_spend, iso
from alerting.budgets.origin import BUDGET_SET_KEY, ConfigOrigin
from alerting.budgets.spend import (
    PeriodStarts,
    bump_revision,
    load_budgets,
    lock_for_change,
    rebuild_current_period,
    unit_value,
)
from alerting.budgets.tables import REVISION_COUNTER, budget_resets, budget_spend, budget_state, budgets
from exporter.store import Store


def _declared_in(origin: ConfigOrigin) -> str:
    """Where a config budget is declared, for a refusal: "declared in /etc/llmcost/prod.yml"."""
    # Rows applied before origins were recorded have no file to point to.
    if origin.budget_set:
        seen = f" (last seen at {origin.path})" if origin.path else ""
        return f"declared in the file with {BUDGET_SET_KEY} {origin.budget_set}{seen}"
    return f"declared in {origin.path}" if origin.path else "declared in a config file"


def _refusal(name: str, origin_ref: str | None, *, removing: bool) -> str:
    """Why an API/CLI change of a config budget is refused, and the commands that make it."""
    # Removing a budget from the file is not enough: `budgets apply` keeps what the file no longer
    # declares unless asked to prune, so the advice names the command that does delete it (which
    # deletes only what that file made: other files' budgets are never its to delete).
    origin = ConfigOrigin.parse(origin_ref)
    # A set's stored path is where an apply last *wrote* it (an unchanged apply from a new CI checkout
    # rewrites nothing): likely a checkout that is gone, so the advice names the set, not that path.
    path = None if origin.budget_set else origin.path
    apply = ["llmcost", "budgets", "apply", "--config", path or "FILE", *(["--prune"] if removing else [])]
    what = "remove it there" if removing else "change it there"
    with_file = " with that file" if path is None else ""
    return (
        f"budget {name!r} is {_declared_in(origin)}; {what}, then run `{shlex.join(apply)}`{with_file} "
        "or send SIGHUP to the llmcost serve that reads that file"
    )


def merge_update(stored: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A stored definition with an update's fields laid over it: only the given fields change.

    `thresholds` merge per level (`warning=0.7` keeps a stored `critical`). A scope changed to `global`
    without a `key` drops the stored key, which a global budget cannot carry (a `key` given alongside is
    still refused by the validation), and a budget that no longer has `key: "*"` drops its stored
    `max_instances`.
    """
    merged = {**stored, **given}
    if isinstance(stored.get("thresholds"), dict) and isinstance(given.get("thresholds"), dict):
        merged["thresholds"] = {**stored["thresholds"], **given["thresholds"]}
    if given.get("scope") == "global" and "key" not in given:
        merged.pop("key", None)
    if merged.get("key") != "*" and "max_instances" not in given:
        merged.pop("max_instances", None)  # stored with every key "*" budget; meaningless for one key
    return merged


class BudgetRegistry:
    """The stored budget definitions and their reset audit trail; thread-safe."""

    def __init__(self, store: Store, periods: CurrentPeriods, clock: Callable[[], float]) -> None:
        self.store = store
        self.periods = periods
        self.clock = clock
        self.period_starts = PeriodStarts()
        """Memoised period starts for rebuilding a changed budget's current period from the rollups."""
        self._lock = threading.Lock()
        self._revision: float | None = None
        self._budgets: list[Budget] = []
        self._resets: dict[tuple[str, str, int], float] = {}  # (budget, key, period_start) → last reset_at

    # ---- reading -------------------------------------------------------------------------------------

    def stored_definitions(self, conn: Any = None) -> list[StoredDefinition]:
        """Every stored definition row with its origin."""
        stmt = select(budgets.c.name, budgets.c.definition, budgets.c.source, budgets.c.origin_ref)
        if conn is not None:
            rows = conn.execute(stmt).all()
        else:
            with self.store.reading() as reader:
                rows = reader.execute(stmt).all()
        return [StoredDefinition(r.name, r.definition, r.source, r.origin_ref) for r in rows]

    def definitions(self) -> list[Budget]:
        """Current definitions (reloaded when any process changed them: one primary-key read)."""
        with self.store.raw_cursor() as (cursor, q):
            return self.definitions_on(cursor, q)

    def definitions_on(self, cursor: Any, q: str) -> list[Budget]:
        """`definitions` on a raw driver cursor the caller holds (`q` is the driver's placeholder)."""
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

    def cached(self) -> list[Budget]:
        """The definitions as last read, without asking the store whether they changed."""
        with self._lock:
            return list(self._budgets)

    def reset_at(self, name: str, key: str, period_start: int) -> float | None:
        """When the instance was last reset in the period starting at `period_start` (as last read)."""
        return self._resets.get((name, key, period_start))

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

    def resets(self, name: str) -> list[dict[str, Any]]:
        """The audit trail of a budget's resets, newest first."""
        with self.store.reading() as conn:
            rows = conn.execute(
                select(budget_resets).where(budget_resets.c.budget == name).order_by(budget_resets.c.id.desc())
            ).all()
        return [
            {
                "key": r.key,
                "reset_at": iso(r.reset_at),
                "reset_by": r.reset_by,
                "reason": r.reason,
                "cost_usd": r.cost_nanousd / 1e9,
                "tokens": r.tokens,
                "requests": r.requests,
            }
            for r in rows
        ]

    # ---- changing ------------------------------------------------------------------------------------

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
                # A change that counts the same calls keeps the spend counted so far (`counts_alike`).
                for budget in [*plan.create, *(new for old, new in plan.update if not counts_alike(old, new))]:
                    rebuild_current_period(conn, budget, now, self.period_starts)
        return plan

    def put(self, name: str, raw: Any, *, origin: str = "api", by: str = "", mode: str = "upsert") -> Budget:
        """Create or replace an API- or CLI-managed budget (`mode`: upsert, create or update).

        A budget applied from a config file is refused (409): the file is its source of truth. `update`
        takes a partial mapping laid over the stored definition.
        """
        now = self.clock()
        with self.store.transaction() as conn:
            lock_for_change(conn)
            stored = conn.execute(
                select(budgets.c.source, budgets.c.definition, budgets.c.origin_ref).where(budgets.c.name == name)
            ).first()
            if stored is not None and stored.source == "config":
                raise BudgetError(409, _refusal(name, stored.origin_ref, removing=False))
            if mode == "create" and stored is not None:
                raise BudgetError(409, f"budget {name!r} exists already; use update")
            if mode == "update":
                if stored is None:
                    raise BudgetError(404, f"no budget named {name!r}")
                if not isinstance(raw, dict):
                    raise BudgetError(422, "invalid budget", ["budget: must be a mapping"])
                raw = merge_update(json.loads(stored.definition), raw)
            problems: list[str] = []
            budget = parse_budget(raw, "budget", problems, name=name)
            if budget is None:
                raise BudgetError(422, "invalid budget", problems)
            keep_spend = stored is not None and counts_alike(json.loads(stored.definition), budget)
            self._delete_rows(conn, name, keep_spend=keep_spend)
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
            if not keep_spend:
                rebuild_current_period(conn, budget, now, self.period_starts)
        return budget

    def delete(self, name: str) -> None:
        """Remove an API- or CLI-managed budget with its spend and state; a config-file budget is refused."""
        with self.store.transaction() as conn:
            lock_for_change(conn)
            row = conn.execute(select(budgets.c.source, budgets.c.origin_ref).where(budgets.c.name == name)).first()
            if row is None:
                raise BudgetError(404, f"no budget named {name!r}")
            if row.source == "config":
                raise BudgetError(409, _refusal(name, row.origin_ref, removing=True))
            self._delete_rows(conn, name)
            bump_revision(conn)

    def reset(
        self, name: str, *, by: str, reason: str = "", key: str | None = None
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Start a fresh count for the current period from now, recording who, when and what had been spent.

        Returns the audit records and the instance keys reset. A `key: "*"` budget needs `key`: a value
        resets that instance, `"*"` every instance (a reset of them all is never a default: it erases
        every project's count at once). A budget with one key takes no key, or that key.

        The same reset again (same `by` and `reason`) of an instance with nothing spent since its last one
        is that reset, not a new one: its record is returned and no second is written, so a client that
        retries a reset whose first attempt landed late (the database answered after the client was told
        503) leaves one record in the audit trail.
        """
        if not by:
            raise BudgetError(422, "a reset needs the name of who resets (by)")
        budget = self.get(name)
        now = self.clock()
        first = self.periods.start(budget, now)
        fixed = None if budget.key == "*" else (budget.key if budget.scope != "global" else "")
        if fixed is None and key is None:
            raise BudgetError(
                422,
                f'budget {name!r} counts each {budget.scope} separately (key "*"): give key, a {budget.scope} '
                f'to reset that one, or "*" to reset every {budget.scope}',
            )
        if key is not None and fixed is not None and key != fixed:
            raise BudgetError(404, f"budget {name!r} has no key {key!r}")
        every = fixed is None and key == "*"
        records: list[dict[str, Any]] = []
        with self.store.transaction() as conn:
            lock_for_change(conn)
            where = [budget_spend.c.budget == name, budget_spend.c.period_start == first]
            if key is not None and not every:
                where.append(budget_spend.c.key == key)
            rows = {r.key: r for r in conn.execute(select(budget_spend).where(*where))}
            # One-key budget: its key; key "*" given: every instance with spend; else the one value.
            keys = [fixed] if fixed is not None else (sorted(rows) if every else [str(key)])
            folded = (
                fixed is None
                and not every
                and not rows
                and conn.execute(
                    select(budget_spend.c.key).where(
                        budget_spend.c.budget == name,
                        budget_spend.c.period_start == first,
                        budget_spend.c.key == OTHER_INSTANCE,
                    )
                ).first()
                is not None
            )
            for k in keys:
                row = rows.get(k)
                counters = (row.cost_nanousd, row.tokens, row.requests) if row is not None else (0, 0, 0)
                if folded:
                    # A value past max_instances: its spend is in `__other__`; what it spent itself is what
                    # the check counts for it (instances.folded_spend), so that is what this reset records.
                    start, end = self.periods.bounds(budget, now)
                    postgres = conn.dialect.name == "postgresql"
                    cursor = conn.connection.cursor()
                    try:
                        counters = folded_spend(cursor, "%s" if postgres else "?", budget, k, start, end)
                    finally:
                        cursor.close()
                reset_at = now
                same = _same_reset(conn, name, k, first, by, reason) if counters == (0, 0, 0) else None
                if same is not None:
                    # The same reset again, with nothing spent since: a retry (the first attempt landed
                    # after its client was told 503), recorded once (exporter/http/bounded_requests.py).
                    reset_at, counters = same.reset_at, (same.cost_nanousd, same.tokens, same.requests)
                else:
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
                        "reset_at": iso(reset_at),
                        "reset_by": by,
                        "reason": reason,
                        "spent_before": unit_value(budget, *counters),
                        "unit": budget.unit,
                    }
                )
            conn.execute(budget_spend.delete().where(*where))
            bump_revision(conn)
        return records, keys

    def _delete_rows(self, conn: Any, name: str, *, keep_spend: bool = False) -> None:
        conn.execute(budgets.delete().where(budgets.c.name == name))
        if not keep_spend:
            conn.execute(budget_spend.delete().where(budget_spend.c.budget == name))
        conn.execute(budget_state.delete().where(budget_state.c.budget == name))


def _same_reset(conn: Any, name: str, key: str, period_start: int, by: str, reason: str) -> Any:
    """The instance's last reset of this period when `by` made it for `reason`, else None."""
    last = conn.execute(
        select(budget_resets)
        .where(budget_resets.c.budget == name, budget_resets.c.key == key, budget_resets.c.period_start == period_start)
        .order_by(budget_resets.c.id.desc())
        .limit(1)
    ).first()
    return last if last is not None and (last.reset_by, last.reason) == (by, reason) else None
