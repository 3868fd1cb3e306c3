"""What the console shows, gathered from the same services the API answers from.

Budgets come from `BudgetService.listing` (what `GET /v1/budgets` returns), alerts from
the gateway's `alerts` table (what `GET /v1/alerts` lists), spikes from `spike_state` (the `llm_spend_*` gauges),
totals from `usage_series` (what `/metrics` sums) and spend over time from the rollups, through
`SpendHistory`. Nothing here reads raw events, and nothing here writes.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
from markupsafe import Markup
from sqlalchemy import case, func, select

from alerting.budgets.amounts import amounts_apart, percent
from alerting.console.charts import PALETTE_SIZE, Stack, budget_bar, spike_chart, stacked_bars
from alerting.console.history import DIMENSIONS, HOUR, FloatArray, SpendSnapshot
from alerting.gateway.alert_rows import with_silences
from alerting.gateway.records import alert_from_row
from alerting.gateway.tables import alerts as alerts_table
from alerting.periods import period_bounds
from alerting.spikes.settings import WATCHABLE_LABELS
from alerting.spikes.state import read_spike_state
from exporter.events import nanos_to_usd
from exporter.local_time import start_of_local_day, zone
from exporter.store import Store
from exporter.store.schema import BUCKET_SECONDS

if TYPE_CHECKING:
    from alerting.budgets.definition import Budget
    from alerting.gateway.service import GatewayService
    from alerting.model import Alert

TOP = 5
"""Entries in each top list of the Now section (the rest are summed as "others")."""
STACKS = PALETTE_SIZE - 1
"""Values stacked in a chart; the rest go into "other", which takes the last colour."""
RESOLVED_HOURS = 24
"""Resolved alerts stay on the page this long."""
MAX_ACTIVE_ALERTS = 500
"""Firing and acknowledged alerts listed (critical first); the page says how many more there are."""
MAX_RESOLVED_ALERTS = 100
"""Alerts resolved in the last `RESOLVED_HOURS` listed (newest first); the page says how many more."""
MAX_SPIKES = 12
"""Firing spikes drawn (the largest excess over the baseline first); the page says how many more fire."""
MAX_INSTANCES = 50
"""Instances listed under a `key: "*"` budget on the main page (the highest ratios; its own page lists the rest)."""
MAX_BUDGET_INSTANCES = 5000
"""Instances listed on one budget's page, `/?budget=NAME` (the highest ratios; the page says how many more)."""
SPIKE_CHART_BUCKETS = 24


@dataclass(frozen=True)
class Share:
    """One entry of a top list."""

    name: str
    usd: float
    share: float


@dataclass(frozen=True)
class ZoneSpend:
    """Today's and this month's spend in one time zone."""

    zone: str
    today: float
    month: float


PROJECTED = frozenset({"shape", "recent rate", "complete"})
"""A status' `projection` values for which `projected` is a projection (else it is the spend so far)."""
NOT_PROJECTED = {"insufficient history": "not yet (too little history)", "no end": "no period end"}
"""What the Projected column says instead, in the words of the alerts' `projected` annotation."""


@dataclass
class BudgetRow:
    """One budget instance, or the summary row of a `key: "*"` budget (with `children`)."""

    name: str
    scope: str
    key: str
    period: str
    unit: str
    mode: str
    limit: float
    spent: float
    projected: float
    ratio: float
    state: str
    period_end: int | None
    bar: Markup
    children: list[BudgetRow] = field(default_factory=list)
    hidden: int = 0
    """Instances of a `key: "*"` budget not listed (beyond `MAX_INSTANCES`, or `MAX_BUDGET_INSTANCES` on its page)."""
    note: str = ""
    """Why a `key: "*"` budget shows no instance (none of its values has spent yet in this period)."""
    projection: str = ""
    """How `projected` was made, as the status says it (`shape`, `recent rate`, `insufficient history`, …)."""

    @property
    def projected_text(self) -> str:
        """The Projected column: the amount when there is a projection, else why not, as the alerts say it.

        Without one the status' `projected` is the spend so far; shown as an amount (and a ▲ at the spend)
        it read as a forecast that the budget ends the period where it is, beside alerts saying "not yet".
        """
        if self.projection in PROJECTED:
            return self.amount(self.projected)
        return NOT_PROJECTED.get(self.projection, "not yet")

    def amount(self, value: float) -> str:
        """A spent/limit figure in this budget's unit, as the check says it (budgets/amounts.py).

        To the cent, with more decimals where a figure would otherwise read as the limit ($4,999.996).
        """
        return amounts_apart(self.unit, value, self.limit)[0]

    @property
    def percent(self) -> str:
        """Spent / limit, rounded down: "100%" only once the limit is reached."""
        return percent(self.ratio)


@dataclass(frozen=True)
class SpikeRow:
    """One firing spike: its labels, window against baseline, and the chart."""

    labels: dict[str, str]
    window_usd: float
    baseline_usd: float
    ratio: float | None
    window_minutes: int
    since: int | None
    chart: Markup


_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}")


def zone_or(name: str | None, fallback: str) -> str:
    """`name` when it is a known IANA zone, else `fallback` (the name comes from a cookie: anything)."""
    if name and len(name) <= 64 and _ZONE_NAME.fullmatch(name):
        try:
            zone(name)
            return name
        except (ValueError, OSError):
            pass
    return fallback


def budget_zones(definitions: Sequence[Budget]) -> list[str]:
    """The time zones the budgets are declared in, most used first (UTC when there are none)."""
    counts: dict[str, int] = {}
    for budget in definitions:
        counts[budget.timezone] = counts.get(budget.timezone, 0) + 1
    return sorted(counts, key=lambda z: -counts[z])[:3] or ["UTC"]


def zone_spend(history: SpendSnapshot, names: Sequence[str], now: float) -> list[ZoneSpend]:
    """Spend today and this month in each zone."""
    at = datetime.fromtimestamp(now, UTC)
    out = []
    for name in names:
        day = period_bounds("daily", at, name)[0].timestamp()
        month = period_bounds("monthly", at, name)[0].timestamp()
        out.append(ZoneSpend(name, history.total_between(day, now + 1), history.total_between(month, now + 1)))
    return out


def top_shares(history: SpendSnapshot, dimension: str, start: float, end: float) -> tuple[list[Share], float]:
    """The `TOP` values of `dimension` by spend in [start, end) with their share, and what the rest spent."""
    rows = history.by_value(dimension, start, end)
    total = sum(usd for _, usd in rows)
    top = [Share(name, usd, usd / total if total else 0.0) for name, usd in rows[:TOP]]
    return top, total - sum(s.usd for s in top)


def _stacks(names: Sequence[str], values: FloatArray) -> list[Stack]:
    """The biggest `STACKS` rows of `values` (value × bar) as stacks, the rest summed as "other"."""
    totals = values.sum(axis=1)
    order = [int(i) for i in np.argsort(-totals, kind="stable") if totals[i] > 0]
    stacks = [Stack(names[i], values[i].tolist(), k) for k, i in enumerate(order[:STACKS])]
    rest = order[STACKS:]
    if rest:
        stacks.append(Stack(f"other ({len(rest)})", values[rest].sum(axis=0).tolist(), PALETTE_SIZE - 1))
    return stacks


def _columns(matrix: FloatArray, first: int, count: int) -> FloatArray:
    """Columns [first, first + count) of `matrix`, zeros where they fall outside it."""
    out = np.zeros((matrix.shape[0], count))
    lo, hi = max(first, 0), min(first + count, matrix.shape[1])
    if hi > lo:
        out[:, lo - first : hi - first] = matrix[:, lo:hi]
    return out


def day_chart(history: SpendSnapshot, dimension: str, now: float) -> tuple[Markup, list[Stack]]:
    """The last 24 hours, one bar an hour, stacked by `dimension`."""
    current_hour = int(now // HOUR) * HOUR
    starts = [current_hour - HOUR * k for k in range(23, -1, -1)]
    values = _columns(history.hourly[dimension], history.hour_index(starts[0]), 24)
    stacks = _stacks(history.names[dimension], values)
    chart = stacked_bars(
        starts, HOUR, stacks, tick_every=3, tick_format="hour", zone=ZoneInfo("UTC"), title="spend per hour"
    )
    return chart, stacks


def month_chart(history: SpendSnapshot, dimension: str, now: float, tz: str) -> tuple[Markup, list[Stack]]:
    """The last 30 days, one bar a day (days in `tz`), stacked by `dimension`."""
    z = zone(tz)
    today = datetime.fromtimestamp(now, UTC).astimezone(z).date()
    days = [today - timedelta(days=k) for k in range(29, -1, -1)]
    bounds = [
        (int(start_of_local_day(d, z).timestamp()), int(start_of_local_day(d + timedelta(days=1), z).timestamp()))
        for d in days
    ]
    matrix = history.hourly[dimension]
    # Hours overlapping each day (exact in zones with whole-hour offsets).
    spans = [(max(0, history.hour_index(a)), max(0, history.hour_index(b - 1) + 1)) for a, b in bounds]
    values = np.stack([matrix[:, a:b].sum(axis=1) for a, b in spans], axis=1)
    stacks = _stacks(history.names[dimension], values)
    chart = stacked_bars(
        [a for a, _ in bounds], 86400, stacks, tick_every=5, tick_format="day", zone=z, title="spend per day"
    )
    return chart, stacks


def budget_rows(
    statuses: Sequence[dict[str, Any]], wildcards: Collection[str], limit: int | None = None
) -> list[BudgetRow]:
    """One row per budget instance; a `key: "*"` budget is one summary row (its worst instance) with children.

    `statuses` are the status objects `GET /v1/budgets` lists (`BudgetService.listing`), so a `key: "*"`
    budget none of whose values has spent yet is there too, as one row with key `"*"` and a note;
    `wildcards` names the `key: "*"` budgets (a status object alone does not say whether its key is a
    value of a `"*"` budget or a fixed key). Each `"*"` budget lists its `limit` highest instances
    (`MAX_INSTANCES` by default).
    """
    limit = MAX_INSTANCES if limit is None else limit
    rows: list[BudgetRow] = []
    wildcard: dict[str, list[dict[str, Any]]] = {}
    for status in statuses:
        if status["name"] not in wildcards:
            rows.append(_budget_row(status))
            continue
        if status.get("note"):  # no value has spent yet: the budget's one row, nothing to expand
            rows.append(_budget_row(status))
            continue
        group = wildcard.get(status["name"])
        if group is None:
            group = wildcard[status["name"]] = []
            rows.append(_budget_row(status, key="*"))
        group.append(status)
    for parent in rows:
        group = wildcard.get(parent.name) if parent.key == "*" else None
        if not group:
            continue
        group.sort(key=lambda s: -(s["spent"] / s["limit"]))
        parent.children = [_budget_row(s) for s in group[:limit]]
        parent.hidden = len(group) - len(parent.children)
        worst = parent.children[0]
        parent.spent, parent.projected, parent.ratio, parent.state = (
            worst.spent,
            worst.projected,
            worst.ratio,
            worst.state,
        )
        parent.bar, parent.projection = worst.bar, worst.projection
    return rows


def one_budget_rows(statuses: Sequence[dict[str, Any]], wildcards: Collection[str], name: str) -> list[BudgetRow]:
    """The rows of budget `name` alone (none if there is no such budget), each of its instances listed.

    Up to `MAX_BUDGET_INSTANCES` of a `key: "*"` budget, the highest ratios first: the page of one
    budget, which the main page's "… and N more" and the budget's alerts link to.
    """
    return budget_rows([s for s in statuses if s["name"] == name], wildcards, MAX_BUDGET_INSTANCES)


def _epoch(iso_time: str | None) -> int | None:
    """An ISO 8601 time of a status object (`...Z`) as epoch seconds."""
    if not iso_time:
        return None
    return int(datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp())


def _budget_row(status: dict[str, Any], key: str | None = None) -> BudgetRow:
    limit = float(status["limit"])
    spent = float(status["spent"])
    projected = float(status["projected"])
    projection = str(status.get("projection") or "")
    ratio = spent / limit
    return BudgetRow(
        name=status["name"],
        scope=status["scope"],
        key=status["key"] if key is None else key,
        period=status["period"],
        unit=status["unit"],
        mode=status["mode"],
        limit=limit,
        spent=spent,
        projected=projected,
        ratio=ratio,
        state=status["state"],
        period_end=_epoch(status["period_end"]),
        bar=budget_bar(ratio, projected / limit if projection in PROJECTED else None, status["state"]),
        note=status.get("note") or "",
        projection=projection,
    )


@dataclass(frozen=True)
class AlertList:
    """The alerts the page lists, and how many of each state it leaves out (beyond its caps)."""

    alerts: list[Alert]
    more: dict[str, int]
    """Per state (`firing`, `acknowledged`, `resolved`), alerts not listed; states with none left out are absent."""


def current_alerts(gateway: GatewayService, now: float) -> AlertList:
    """Firing and acknowledged alerts, then those resolved in the last `RESOLVED_HOURS`, with counts of the rest.

    Active ones come critical first, then firing before acknowledged, newest first; at most
    `MAX_ACTIVE_ALERTS` and `MAX_RESOLVED_ALERTS` are listed, so a flood of alerts cannot hide the oldest
    critical one, and the page says how many it left out.
    """
    a = alerts_table.c
    cutoff = now - RESOLVED_HOURS * 3600
    active = a.state.in_(("firing", "acknowledged"))
    recent = (a.state == "resolved") & (a.resolved_at >= cutoff)
    order = (
        case((a.severity == "critical", 0), else_=1),
        case((a.state == "firing", 0), else_=1),
        a.id.desc(),
    )
    with gateway.store.reading() as conn:
        listed = [
            alert_from_row(r)
            for r in conn.execute(select(alerts_table).where(active).order_by(*order).limit(MAX_ACTIVE_ALERTS))
        ]
        listed += [
            alert_from_row(r)
            for r in conn.execute(select(alerts_table).where(recent).order_by(a.id.desc()).limit(MAX_RESOLVED_ALERTS))
        ]
        listed = with_silences(conn, listed)
        rows = conn.execute(select(a.state, func.count()).where(active | recent).group_by(a.state)).all()
        counts: dict[str, int] = {str(state): int(n) for state, n in rows}
    for alert in listed:  # (an alert that changed state between the reads can skew a count by one: never below 0)
        counts[alert.state] = counts.get(alert.state, 0) - 1
    more = {state: int(counts[state]) for state in ("firing", "acknowledged", "resolved") if counts.get(state, 0) > 0}
    return AlertList(listed, more)


def firing_spikes(store: Store, history: SpendSnapshot, now: float) -> tuple[list[SpikeRow], int]:
    """The firing spikes with a chart of their last two hours of 5-minute spend against the baseline.

    At most `MAX_SPIKES`, those spending most above their baseline first; also how many more are firing.
    """
    firing = [s for s in read_spike_state(store) if s.firing]
    firing.sort(key=lambda s: -(s.window_usd - s.baseline_usd))
    states = firing[:MAX_SPIKES]
    current = int(now // BUCKET_SECONDS) * BUCKET_SECONDS
    first = current - (SPIKE_CHART_BUCKETS - 1) * BUCKET_SECONDS
    out = []
    for state in states:
        labels = {k: v for k, v in state.labels.items() if k in WATCHABLE_LABELS}
        if labels:
            by_bucket = {
                int(r[0]): nanos_to_usd(int(r[1] or 0)) for r in store.rollup_buckets(first, now, where=labels)
            }
            values = [by_bucket.get(first + i * BUCKET_SECONDS, 0.0) for i in range(SPIKE_CHART_BUCKETS)]
        else:
            values = [
                history.total_between(first + i * BUCKET_SECONDS, first + (i + 1) * BUCKET_SECONDS)
                for i in range(SPIKE_CHART_BUCKETS)
            ]
        window_buckets = max(1, state.window_minutes * 60 // BUCKET_SECONDS)
        chart = spike_chart(values, window_buckets, state.baseline_usd / window_buckets)
        out.append(
            SpikeRow(
                labels=labels,
                window_usd=state.window_usd,
                baseline_usd=state.baseline_usd,
                ratio=state.ratio,
                window_minutes=state.window_minutes,
                since=int(state.firing_since) if state.firing_since else None,
                chart=chart,
            )
        )
    return out, len(firing) - len(states)


def usage_totals(store: Store) -> dict[str, Any]:
    """All-time spend and unpriced calls (repricing corrections included), summed over `usage_series`.

    `unpriced`: the calls stored without a price now, what the price file still has to cover;
    `unpriced_arrived`: those that arrived without one (`llm_unpriced_requests_total`), a reprice since
    included. One scan of `usage_series` (one row per label set), no event or rollup read.
    """
    rows = store.series_totals((), adjustments=True)
    if not rows:
        return {"cost_usd": 0.0, "unpriced": 0, "unpriced_arrived": 0, "requests": 0}
    row = rows[0]
    # `cost_nanousd` stays as first recorded (it feeds a counter, which must never drop); what `llmcost
    # reprice` changed since is in the correction columns, which the report, the summary and the budgets
    # count. Without them the all-time figure was the spend before repricing.
    cost = row.get("cost_nanousd") + row.get("cost_adjust_up_nanousd") - row.get("cost_adjust_down_nanousd")
    return {
        "cost_usd": nanos_to_usd(cost),
        # Arrival count plus reprice's signed changes (the arrival count feeds a counter, like cost):
        # without them a reprice that priced every call still showed them all as unpriced.
        "unpriced": row.get("unpriced_requests") + row.get("unpriced_adjust_requests"),
        "unpriced_arrived": row.get("unpriced_requests"),
        "requests": row.get("requests"),
    }


DIMENSION_TITLES = {d: d.capitalize() + "s" for d in DIMENSIONS}
