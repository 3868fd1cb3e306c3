"""Budget instances in their current period: spend, last projection and last reset, read from the store.

An instance is a budget and, for `key: "*"`, one value of its label. `InstanceReader` reads them for
status, alerts and pre-call checks; only the current period of each budget is ever read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_

from alerting.budgets.definition import OTHER_INSTANCE, Budget
from alerting.budgets.spend import unit_value
from alerting.budgets.tables import budget_spend, budget_state
from alerting.periods import period_bounds
from exporter.store import Store
from exporter.store.schema import LABEL_COLUMNS

if TYPE_CHECKING:
    from alerting.budgets.registry import BudgetRegistry


NO_SPEND_YET = "no key has spent yet in this period"
"""The note on a `key: "*"` budget's one listed row before any of its values has spent."""


def iso(ts: float) -> str:
    """Epoch seconds as an ISO 8601 UTC time with a `Z`."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


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
    folded: bool = False
    """A value past its budget's `max_instances`: its spend is counted in `__other__`, and `spent` was
    summed from the rollups for this check (see `InstanceReader.instances_on`)."""

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
        """The status object of docs/budgets.md."""
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
            "reset_at": iso(self.reset_at) if self.reset_at is not None else None,
        }


def still_current(instances: Iterable[Instance], now: float) -> bool:
    """No instance's period has ended by `now`."""
    return all(i.period_end is None or now < i.period_end.timestamp() for i in instances)


class CurrentPeriods:
    """The current period of each (period, timezone), cached until it ends (computing one costs ~100 µs)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[datetime, datetime | None]] = {}

    def bounds(self, budget: Budget, now: float) -> tuple[datetime, datetime | None]:
        """Start and end (None for a `total` budget) of `budget`'s period containing `now`."""
        key = (budget.period, budget.timezone)
        cached = self._cache.get(key)
        if cached is not None:
            start, end = cached
            if start.timestamp() <= now and (end is None or now < end.timestamp()):
                return cached
        bounds = period_bounds(budget.period, datetime.fromtimestamp(now, UTC), budget.timezone)
        self._cache[key] = bounds
        return bounds

    def start(self, budget: Budget, now: float) -> int:
        """Epoch seconds at which `budget`'s current period started (the `period_start` of its rows)."""
        return int(self.bounds(budget, now)[0].timestamp())


class InstanceReader:
    """Reads budget instances and status objects from the store."""

    def __init__(
        self, store: Store, registry: BudgetRegistry, periods: CurrentPeriods, clock: Callable[[], float]
    ) -> None:
        self.store = store
        self.registry = registry
        self.periods = periods
        self.clock = clock

    def instances(self, now: float | None = None, only: Iterable[Budget] | None = None) -> list[Instance]:
        """Every budget instance in its current period, with spend and the last projection."""
        now = self.clock() if now is None else now
        chosen = list(only) if only is not None else self.registry.definitions()
        if not chosen:
            return []
        # Only the current period of each budget: rows of past periods are never read again.
        current = [(b.name, self.periods.start(b, now)) for b in chosen]
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
            start, end = self.periods.bounds(budget, now)
            first = int(start.timestamp())
            keys = sorted({k for (b, k, p) in spend if b == budget.name and p == first})
            if budget.key != "*":
                keys = [budget.key if budget.scope != "global" else ""]
            for key in keys:
                row = spend.get((budget.name, key, first))
                spent = unit_value(budget, row.cost_nanousd, row.tokens, row.requests) if row else 0.0
                projected, method = projections.get((budget.name, key, first), (spent, ""))
                reset_at = self.registry.reset_at(budget.name, key, first)
                out.append(
                    Instance(
                        budget, key, start, end, spent, max(projected, spent), projection=method, reset_at=reset_at
                    )
                )
        return out

    def listing(self, now: float | None = None) -> list[dict[str, Any]]:
        """Status rows of every defined budget (`budgets list`, `GET /v1/budgets`): one per instance.

        A `key: "*"` budget has instances only once a value has spent in the period; until then it is
        one row with key `"*"`, zero spend and a `note` saying so, so a defined budget is never missing.
        """
        now = self.clock() if now is None else now
        definitions = self.registry.definitions()
        found: dict[str, list[Instance]] = {}
        for instance in self.instances(now, definitions):
            found.setdefault(instance.budget.name, []).append(instance)
        rows: list[dict[str, Any]] = []
        for budget in definitions:
            mine = found.get(budget.name)
            if mine:
                rows.extend(i.to_json() for i in mine)
                continue
            start, end = self.periods.bounds(budget, now)
            row = Instance(budget, "*", start, end, 0.0, 0.0).to_json()
            row["note"] = NO_SPEND_YET
            rows.append(row)
        return rows

    def instances_on(
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
            start, _end = self.periods.bounds(budget, now)
            keys.append((budget.name, key, int(start.timestamp())))
            if budget.key == "*" and key != OTHER_INSTANCE:
                # Is anything folded in this period? Then a value without its own row may be among it.
                keys.append((budget.name, OTHER_INSTANCE, int(start.timestamp())))
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
            start, end = self.periods.bounds(budget, now)
            row = found.get((budget.name, key))
            folded = (
                row is None and budget.key == "*" and key != OTHER_INSTANCE and (budget.name, OTHER_INSTANCE) in found
            )
            if folded:
                counters = folded_spend(cursor, q, budget, key, start, end)
                if raw is not None:
                    raw.append(counters)
                spent = unit_value(budget, *counters)
                out.append(Instance(budget, key, start, end, spent, spent, folded=True))
                continue
            counters = (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)
            if raw is not None:
                raw.append(counters)
            spent = unit_value(budget, *counters) if row else 0.0
            projected = max(float(row[3]), spent) if row and row[3] is not None else spent
            method = str(row[4]) if row and row[4] is not None else ""
            reset_at = self.registry.reset_at(budget.name, key, int(start.timestamp()))
            out.append(Instance(budget, key, start, end, spent, projected, projection=method, reset_at=reset_at))
        return out

    def unchanged_on(self, cursor: Any, q: str, instances: list[Instance], raw: list[tuple[int, int, int]]) -> bool:
        """Whether the spend rows behind `instances` still hold `raw` (as `instances_on` read them): one query.

        Reads only the counters, keyed as `instances_on` keys them: another process's commit since, a
        value newly folded into `__other__`, or a folded instance (summed from the rollups) makes it False.
        """
        if any(instance.folded for instance in instances):
            return False
        if not instances:
            return True
        keys = []
        for instance in instances:
            start = int(instance.period_start.timestamp())
            keys.append((instance.budget.name, instance.key, start))
            if instance.budget.key == "*" and instance.key != OTHER_INSTANCE:
                keys.append((instance.budget.name, OTHER_INSTANCE, start))
        rows = ", ".join([f"({q}, {q}, {q})"] * len(keys))
        cursor.execute(
            "SELECT budget, key, cost_nanousd, tokens, requests FROM budget_spend "
            f"WHERE (budget, key, period_start) IN ({rows})",
            [value for triple in keys for value in triple],
        )
        found = {(r[0], r[1]): (int(r[2]), int(r[3]), int(r[4])) for r in cursor.fetchall()}
        for instance, counters in zip(instances, raw, strict=True):
            name = instance.budget.name
            row = found.get((name, instance.key))
            if row is None:
                wildcard = instance.budget.key == "*" and instance.key != OTHER_INSTANCE
                if counters != (0, 0, 0) or (wildcard and (name, OTHER_INSTANCE) in found):
                    return False
            elif row != counters:
                return False
        return True

    def status(self, name: str) -> dict[str, Any]:
        """Status object of one budget; a `key: "*"` budget lists its instances and shows the worst."""
        budget = self.registry.get(name)
        instances = self.instances(only=[budget])
        if budget.key != "*":
            return instances[0].to_json()
        start, end = self.periods.bounds(budget, self.clock())
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


def folded_spend(
    cursor: Any, q: str, budget: Budget, key: str, start: datetime, end: datetime | None
) -> tuple[int, int, int]:
    """What one value past `max_instances` spent in the period (cost_nanousd, tokens, requests).

    Its calls were added to `__other__`, so its own spend is summed from the rollups, less what resets of
    this value counted (as `rebuild_current_period` does): a hard budget must hold for the 1,001st user
    of the day as for the first.
    """
    label = budget.label
    if label not in LABEL_COLUMNS:  # a column name goes into the statement: only a known one
        raise ValueError(f"budget {budget.name!r} has no label column for scope {budget.scope!r}")
    first, until = int(start.timestamp()), int(end.timestamp()) if end else 2**62
    every_kind = "r.input_tokens + r.cache_read_tokens + r.cache_write_tokens + r.output_tokens"
    sums = f"SUM(r.cost_nanousd), SUM({every_kind}), SUM(r.requests)"
    # Both rollup tables in one statement (one snapshot), as exporter.store.rollups reads them: a pruning
    # run moving 5-minute buckets into hours between two statements would count them twice. One sum per
    # table, not one over a UNION of their rows: SQLite would materialise the whole period's rollups for
    # that (~0.3 s at 20k series), where each sum here is an index search on the series, then on the rollups.
    per_table = " UNION ALL ".join(
        f"SELECT {sums} FROM {table} r JOIN usage_series s ON s.id = r.series_id "
        f'WHERE r.bucket >= {q} AND r.bucket < {q} AND s."{label}" = {q}'
        for table in ("usage_rollup", "usage_rollup_hourly")
    )
    cursor.execute(per_table, (first, until, key) * 2)
    counters = [sum(int(v or 0) for v in column) for column in zip(*cursor.fetchall(), strict=True)]
    cursor.execute(
        "SELECT SUM(cost_nanousd), SUM(tokens), SUM(requests) FROM budget_resets "
        f"WHERE budget = {q} AND key = {q} AND period_start = {q}",
        (budget.name, key, first),
    )
    reset = cursor.fetchone()
    cost, tokens, requests = (max(c - int(v or 0), 0) for c, v in zip(counters, reset, strict=True))
    return cost, tokens, requests
