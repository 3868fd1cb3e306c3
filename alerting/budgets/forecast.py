"""Budget projections: each instance's end-of-period spend, projected from the rollups into `budget_state`.

Part of the scheduler's budget job (leader only). The status, the `llm_budget_projected_*` gauges and
the forecast alerts read what it stores; alerting/projection.py does the projecting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select

from alerting.budgets.definition import OTHER_INSTANCE, Budget
from alerting.budgets.instances import CurrentPeriods
from alerting.budgets.tables import budget_resets, budget_spend, budget_state
from alerting.projection import INSUFFICIENT_HISTORY, ProjectionConfig, has_forecast_evidence, project_many
from exporter.store import Store
from exporter.store.schema import BUCKET_SECONDS


class BudgetForecasts:
    """Projects every budget instance's spend to the end of its period and stores the projections."""

    def __init__(self, store: Store, periods: CurrentPeriods, projection: ProjectionConfig) -> None:
        self.store = store
        self.periods = periods
        self.projection = projection

    def store_projections(self, definitions: list[Budget], now: float) -> None:
        """Replace `budget_state` with the projections of every instance of `definitions` at `now`."""
        cfg = self.projection
        rows: list[dict[str, Any]] = []
        for budget in definitions:
            start, end = self.periods.bounds(budget, now)
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
            # A reset starts a fresh count: what was spent this period before it is not projected on
            # (the bucket holding the reset is left out too: most of it may be what was reset).
            for key, reset_at in self._last_resets(budget, int(start.timestamp())).items():
                if key in keyed:
                    before = (bucket_starts >= start.timestamp()) & (bucket_starts < reset_at)
                    keyed[key][before] = 0.0
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

    def _last_resets(self, budget: Budget, period_start: int) -> dict[str, float]:
        """When each instance of `budget` was last reset in the period starting at `period_start`."""
        query = (
            select(budget_resets.c.key, func.max(budget_resets.c.reset_at))
            .where(budget_resets.c.budget == budget.name, budget_resets.c.period_start == period_start)
            .group_by(budget_resets.c.key)
        )
        with self.store.reading() as conn:
            return {str(row[0]): float(row[1]) for row in conn.execute(query)}

    def _tracked_keys(self, budget: Budget, period_start: int) -> set[str]:
        """The instance keys a `key: "*"` budget tracks in the period starting at `period_start`."""
        query = select(budget_spend.c.key).where(
            budget_spend.c.budget == budget.name, budget_spend.c.period_start == period_start
        )
        with self.store.reading() as conn:
            return {str(row[0]) for row in conn.execute(query)}
