"""Budget spend maintained inside the ingest transaction, and rebuilt from rollups when budgets change.

Consistency across processes: a budget change takes `budget_spend` exclusively (PostgreSQL) or the
database write lock (SQLite), bumps `budgets.revision`, and rebuilds the changed budgets' current period
from the rollups. Every ingest transaction takes `budget_spend` in ROW EXCLUSIVE mode before it reads
the revision, so it either finishes before the rebuild reads the rollups (and is counted by it) or
starts after the change committed (and applies the new definitions itself): never both, never neither.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from alerting.budgets.definition import OTHER_INSTANCE, Budget, parse_budget
from alerting.budgets.tables import REVISION_COUNTER
from alerting.periods import period_bounds
from exporter.store.schema import LABEL_COLUMNS

_LABEL_INDEX = {name: i for i, name in enumerate(LABEL_COLUMNS)}
_CACHE_LIMIT = 200_000

SpendKey = tuple[str, str, int]  # (budget, key, period_start)


def load_budgets(rows: Sequence[tuple[str, str]]) -> list[Budget]:
    """Budgets from stored `(name, definition JSON)` rows (invalid rows are skipped)."""
    out = []
    for name, definition in rows:
        problems: list[str] = []
        budget = parse_budget(json.loads(definition), f"budget {name}", problems, name=name, stored=True)
        if budget is not None:
            out.append(budget)
    return out


class PeriodStarts:
    """Start of the period containing a bucket, per (period, timezone); memoised, bounded."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, int], int] = {}

    def __call__(self, budget: Budget, bucket: int) -> int:
        """Epoch seconds at which `budget`'s period containing `bucket` starts."""
        key = (budget.period, budget.timezone, bucket)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) > _CACHE_LIMIT:
                self._cache.clear()
            start, _ = period_bounds(budget.period, datetime.fromtimestamp(bucket, UTC), budget.timezone)
            found = self._cache[key] = int(start.timestamp())
        return found


def unit_value(budget: Budget, cost_nanousd: int, tokens: int, requests: int) -> float:
    """The amount a budget counts, in its unit (usd as dollars)."""
    if budget.unit == "usd":
        return cost_nanousd / 1e9
    return float(tokens if budget.unit == "tokens" else requests)


@dataclass(frozen=True)
class SpendChange:
    """What one ingest transaction added to budget spend: the spend hook's result."""

    increments: dict[SpendKey, tuple[int, int, int]]  # cost_nanousd, tokens, requests
    applied_at: float  # time.monotonic() inside the transaction, so before its commit


class BudgetSpendHook:
    """The `WriteHook` adding each ingest batch to every matching budget's `budget_spend` row."""

    def __init__(self) -> None:
        self._revision: float | None = None
        self._budgets: list[Budget] = []
        self.period_start = PeriodStarts()

    def apply(
        self,
        cursor: Any,
        postgres: bool,
        rollups: Mapping[tuple[int, int], Sequence[int]],
        series: Mapping[int, tuple[str, ...]],
        corrections: Mapping[tuple[int, int], Sequence[tuple[float, int]]] | None = None,
    ) -> SpendChange | None:
        """Add the batch to budget_spend; returns what it added (None when no budget matched).

        `corrections` (repricing): the corrected events' ingest times and cost changes; what a budget
        reset had counted is corrected in that reset's record instead (`_correct_resets`), and the rest
        only in the spend rows the budget keeps (`_correct_counted`).
        """
        q = "%s" if postgres else "?"
        if postgres:
            cursor.execute("LOCK TABLE budget_spend IN ROW EXCLUSIVE MODE")
        cursor.execute(f"SELECT value FROM ingest_counters WHERE name = {q}", (REVISION_COUNTER,))
        row = cursor.fetchone()
        revision = float(row[0]) if row else 0.0
        if revision != self._revision:
            cursor.execute("SELECT name, definition FROM budgets")
            self._budgets = load_budgets(cursor.fetchall())
            self._revision = revision
        if not self._budgets:
            return None
        increments: dict[SpendKey, list[int]] = {}
        corrected: dict[SpendKey, list[tuple[float, int]]] = {}
        for (sid, bucket), acc in rollups.items():
            labels = series[sid]
            values = {name: labels[i] for name, i in _LABEL_INDEX.items()}
            for budget in self._budgets:
                key = budget.matches(values)
                if key is None:
                    continue
                spend_key = (budget.name, key, self.period_start(budget, bucket))
                inc = increments.get(spend_key)
                if inc is None:
                    inc = increments[spend_key] = [0, 0, 0]
                inc[0] += acc[6]
                inc[1] += acc[1] + acc[2] + acc[3] + acc[4]
                inc[2] += acc[0]
                if corrections is not None:
                    corrected.setdefault(spend_key, []).extend(corrections.get((sid, bucket), ()))
        if corrected:
            self._correct_resets(cursor, q, increments, corrected)
        if not increments:
            return None
        self._cap_instances(cursor, q, increments)
        if corrections is not None:
            self._correct_counted(cursor, q, increments)
            return SpendChange({k: (v[0], v[1], v[2]) for k, v in increments.items()}, time.monotonic())
        cursor.executemany(
            f"INSERT INTO budget_spend (budget, key, period_start, cost_nanousd, tokens, requests) "
            f"VALUES ({q}, {q}, {q}, {q}, {q}, {q}) ON CONFLICT (budget, key, period_start) DO UPDATE SET "
            "cost_nanousd = budget_spend.cost_nanousd + excluded.cost_nanousd, "
            "tokens = budget_spend.tokens + excluded.tokens, requests = budget_spend.requests + excluded.requests",
            [(*k, *increments[k]) for k in sorted(increments)],
        )
        return SpendChange({k: (v[0], v[1], v[2]) for k, v in increments.items()}, time.monotonic())

    def _correct_resets(
        self,
        cursor: Any,
        q: str,
        increments: dict[SpendKey, list[int]],
        corrected: Mapping[SpendKey, Sequence[tuple[float, int]]],
    ) -> None:
        """Move the cost changes of calls a reset had counted from `increments` to that reset's record.

        A reset zeroes the spend and records what it counted (the calls ingested before it); a rebuild
        subtracts those records from the rollups. A repriced call counted by a reset, added to the spend,
        would count again what the reset forgave (a price cut would even make the spend negative), and
        disagree with a rebuild, which reads the corrected rollups less the uncorrected record. Added
        to the record of the first reset after the call was ingested, the spend stays as reset and a
        rebuild gives the same figure.
        """
        for spend_key, changes in corrected.items():
            name, key, start = spend_key
            cursor.execute(
                f"SELECT id, reset_at FROM budget_resets WHERE budget = {q} AND key = {q} AND period_start = {q} "
                "ORDER BY reset_at, id",
                (name, key, start),
            )
            resets = [(float(reset_at), int(rid)) for rid, reset_at in cursor.fetchall()]
            if not resets:
                continue
            moved: dict[int, int] = {}
            for ingested_at, cost in changes:
                rid = next((r for at, r in resets if ingested_at < at), None)
                if rid is not None:
                    moved[rid] = moved.get(rid, 0) + cost
            for rid, cost in sorted(moved.items()):
                cursor.execute(
                    f"UPDATE budget_resets SET cost_nanousd = cost_nanousd + {q} WHERE id = {q}", (cost, rid)
                )
                increments[spend_key][0] -= cost
            if increments[spend_key] == [0, 0, 0]:
                del increments[spend_key]  # nothing left for the spend: no row for an instance that spent nothing

    def _correct_counted(self, cursor: Any, q: str, increments: dict[SpendKey, list[int]]) -> None:
        """Add repricing corrections to the spend rows they correct; drop those for periods never counted.

        A budget counts the period it was created (or changed) in, rebuilt from the rollups, and what is
        ingested from then on: every call it counted has its instance's row for that period. A corrected
        call with no such row was never counted (a day before the budget existed): inserting one would
        write a period of the difference alone, often negative, that no figure reads.
        """
        for spend_key in sorted(increments):
            cost, tokens, requests = increments[spend_key]
            cursor.execute(
                f"UPDATE budget_spend SET cost_nanousd = cost_nanousd + {q}, tokens = tokens + {q}, "
                f"requests = requests + {q} WHERE budget = {q} AND key = {q} AND period_start = {q}",
                (cost, tokens, requests, *spend_key),
            )
            if cursor.rowcount == 0:
                del increments[spend_key]

    def _cap_instances(self, cursor: Any, q: str, increments: dict[SpendKey, list[int]]) -> None:
        """Fold the values of a `key: "*"` budget past its `max_instances` into one `__other__` instance.

        100k distinct project names would otherwise make 100k instances (rows, evaluations, alerts).
        Values that already have an instance keep it; new ones take the free places in key order, and
        the rest are added to `__other__`, so the budget's total stays exact. Runs inside the ingest
        transaction, which holds the budget_spend lock, so concurrent writers count the same instances.
        """
        caps = {b.name: b.max_instances for b in self._budgets if b.key == "*"}
        groups: dict[tuple[str, int], list[SpendKey]] = {}
        for spend_key in increments:
            name, key, start = spend_key
            if name in caps and key != OTHER_INSTANCE:
                groups.setdefault((name, start), []).append(spend_key)
        for (name, start), keys in groups.items():
            cap = caps[name]
            cursor.execute(
                f"SELECT COUNT(*) FROM budget_spend WHERE budget = {q} AND period_start = {q} AND key <> {q}",
                (name, start, OTHER_INSTANCE),
            )
            count = int(cursor.fetchone()[0])
            if count + len(keys) <= cap:
                continue  # all fit, whether new or not
            existing: set[str] = set()
            values = [k[1] for k in keys]
            for i in range(0, len(values), 500):
                chunk = values[i : i + 500]
                marks = ", ".join([q] * len(chunk))
                cursor.execute(
                    f"SELECT key FROM budget_spend WHERE budget = {q} AND period_start = {q} AND key IN ({marks})",
                    (name, start, *chunk),
                )
                existing.update(row[0] for row in cursor.fetchall())
            room = cap - count
            for spend_key in sorted(keys):
                if spend_key[1] in existing:
                    continue
                if room > 0:
                    room -= 1
                    continue
                moved = increments.pop(spend_key)
                other = increments.setdefault((name, OTHER_INSTANCE, start), [0, 0, 0])
                for j in range(3):
                    other[j] += moved[j]


def lock_for_change(conn: Connection) -> None:
    """Inside a budget-changing transaction: wait for in-flight ingests, hold new ones back."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE budget_spend IN EXCLUSIVE MODE"))


def bump_revision(conn: Connection) -> None:
    """Tell every process's ingest path to reload budget definitions."""
    conn.execute(
        text(
            "INSERT INTO ingest_counters (name, value) VALUES (:name, 1) "
            "ON CONFLICT (name) DO UPDATE SET value = ingest_counters.value + 1"
        ),
        {"name": REVISION_COUNTER},
    )


def rebuild_current_period(conn: Connection, budget: Budget, now: float, periods: PeriodStarts) -> None:
    """Recompute `budget`'s spend for its current period (every key) from the rollups."""
    start, end = period_bounds(budget.period, datetime.fromtimestamp(now, UTC), budget.timezone)
    first = int(start.timestamp())
    conn.execute(
        text("DELETE FROM budget_spend WHERE budget = :b AND period_start = :p"), {"b": budget.name, "p": first}
    )
    rows = period_sums(conn, budget, first, int(end.timestamp()) if end else 2**62)
    # Resets in this period: what was counted before each is not counted again.
    baseline = {
        k: (int(c or 0), int(t or 0), int(r or 0))
        for k, c, t, r in conn.execute(
            text(
                "SELECT key, SUM(cost_nanousd), SUM(tokens), SUM(requests) FROM budget_resets "
                "WHERE budget = :b AND period_start = :p GROUP BY key"
            ),
            {"b": budget.name, "p": first},
        )
    }
    counted: list[tuple[Any, ...]] = [tuple(row) for row in rows]
    if baseline:
        counted = [
            (k, *(max(int(v or 0) - base, 0) for v, base in zip((c, t, r), baseline.get(k, (0, 0, 0)), strict=True)))
            for k, c, t, r in counted
        ]
    if budget.key == "*" and len(counted) > budget.max_instances:
        counted = fold_instances(counted, budget.max_instances)
    if counted:
        conn.execute(
            text(
                "INSERT INTO budget_spend (budget, key, period_start, cost_nanousd, tokens, requests) "
                "VALUES (:b, :k, :p, :c, :t, :r)"
            ),
            [
                {"b": budget.name, "k": k, "p": first, "c": int(c or 0), "t": int(t or 0), "r": int(r or 0)}
                for k, c, t, r in counted
            ],
        )


def period_sums(conn: Connection, budget: Budget, first: int, end: int) -> list[tuple[str, int, int, int]]:
    """`(key, cost_nanousd, tokens, requests)` per instance of `budget` over the rollups in `[first, end)`.

    What the budget counts before resets, read by its current period's rebuild and by its history. One sum
    per rollup table rather than one over a UNION of their rows, which SQLite materialises whole (see
    `alerting.budgets.instances.folded_spend`); both in one statement, so a pruning run moving buckets
    between them is never seen half done.
    """
    label = budget.label
    if label and label not in LABEL_COLUMNS:  # a column name goes into the statement: only a known one
        raise ValueError(f"budget {budget.name!r} has no label column for scope {budget.scope!r}")
    group = f's."{label}"' if label else "''"
    where = f' AND s."{label}" = :key' if label and budget.key != "*" else ""
    every_kind = "r.input_tokens + r.cache_read_tokens + r.cache_write_tokens + r.output_tokens"
    statement = " UNION ALL ".join(
        f"SELECT {group} AS k, SUM(r.cost_nanousd), SUM({every_kind}), SUM(r.requests) "
        f"FROM {table} r JOIN usage_series s ON s.id = r.series_id "
        f"WHERE r.bucket >= :first AND r.bucket < :end{where}" + (f" GROUP BY {group}" if label else "")
        for table in ("usage_rollup", "usage_rollup_hourly")
    )
    totals: dict[str, list[int]] = {}
    for key, cost, tokens, requests in conn.execute(text(statement), {"first": first, "end": end, "key": budget.key}):
        acc = totals.setdefault(str(key), [0, 0, 0])
        for i, v in enumerate((cost, tokens, requests)):
            acc[i] += int(v or 0)
    return [(key, acc[0], acc[1], acc[2]) for key, acc in sorted(totals.items())]


def fold_instances(rows: list[tuple[Any, ...]], cap: int) -> list[tuple[Any, ...]]:
    """Keep the `cap` highest-cost (key, cost, tokens, requests) rows; sum the rest as `__other__`."""
    ranked = sorted(rows, key=lambda r: (-int(r[1] or 0), str(r[0])))
    kept = [r for r in ranked[:cap] if r[0] != OTHER_INSTANCE]
    rest = [r for r in ranked[:cap] if r[0] == OTHER_INSTANCE] + ranked[cap:]
    other = (OTHER_INSTANCE, *(sum(int(r[i] or 0) for r in rest) for i in (1, 2, 3)))
    return [*kept, other]
