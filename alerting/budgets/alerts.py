"""Budget alerts: which should fire for an instance, raised after the ingest that crossed them, reconciled.

Threshold alerts are raised right after the ingest commit that crossed them (`on_commit`), not only on
the scheduler's next tick; `reconcile` (part of the scheduler's budget job, leader only) adds forecast
alerts and resolves what no longer holds, e.g. when a new period starts. A reset or a deletion resolves
a budget's alerts with who did it and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from alerting.budgets.amounts import amount, amounts_apart, percent, usd_apart
from alerting.budgets.definition import (
    ALERT_FOR_STATE,
    FORECAST_ALERT,
    OTHER_INSTANCE,
    REQUEST_CAP_ALERT,
    SEVERITY_FOR_ALERT,
    STATES,
    Budget,
    counts_alike,
)
from alerting.budgets.instances import CurrentPeriods, Instance, InstanceReader
from alerting.budgets.registry import BudgetRegistry
from alerting.model import level_rank
from alerting.periods import elapsed_fraction, period_bounds, period_label
from alerting.projection import INSUFFICIENT_HISTORY, ProjectionConfig, ProjectionResult, should_alert_forecast
from alerting.sink import (
    AlertSink,
    FireItem,
    active_since,
    figures_key,
    fire_all,
    resolve_all,
    resolve_with_reason,
)
from exporter.store.writer import WriteResult

BUDGET_ALERTS = (*ALERT_FOR_STATE.values(), FORECAST_ALERT)
PERSON_RESOLVED = (*BUDGET_ALERTS, REQUEST_CAP_ALERT)  # what a reset or a deletion resolves
CAPS = ("max_cost_per_request", "max_tokens_per_request")


def dropped_caps(before: Mapping[str, Any], after: Budget) -> list[str]:
    """The per-request caps `before` (a stored definition's JSON) had and `after` no longer has."""
    return [cap for cap in CAPS if before.get(cap) is not None and getattr(after, cap) is None]


def _capped(budget: Budget) -> bool:
    return any(getattr(budget, cap) is not None for cap in CAPS)


def _utc(moment: datetime) -> str:
    """A period bound as people read it, in UTC whatever the budget's timezone: "2026-12-08 00:00 UTC"."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def period_ended(budget: Budget, started: float) -> str:
    """Why llmcost resolves an alert of `budget` that started at `started`: the period it belonged to ended.

    "the daily period ended (2026-12-07 in UTC); spend starts again from $0.00 in the new period". Spend
    never falls within a period, so a resolve saying only when left the on-call guessing between a reset
    and the end of the period; the period is named on the budget's own calendar (its timezone).
    """
    return f"{_period_over(budget, started)}; spend starts again from {amount(budget.unit, 0)} in the new period"


def cap_period_ended(budget: Budget, period_start: float) -> str:
    """Why llmcost resolves a cap alert of `budget` for the period starting at `period_start`: it ended.

    "the daily period ended (2026-12-07 in UTC); a call over a per-request cap in the new period raises the
    alert again": the alert is about one call of that period, and said only when it was resolved.
    """
    again = "a call over a per-request cap in the new period raises the alert again"
    return f"{_period_over(budget, period_start)}; {again}"


def _period_over(budget: Budget, moment: float) -> str:
    """That the period of `budget` holding `moment` ended, named on its calendar: "the daily period ended (…)"."""
    start, end = period_bounds(budget.period, datetime.fromtimestamp(moment, UTC), budget.timezone)
    named = period_label(budget.period, start, end, budget.timezone)
    return f"the {budget.period} period ended ({named} in {budget.timezone})"


def limit_raised(after: Budget, *, by: str, origin: str) -> str:
    """Why a change to a budget resolves its alerts: "the limit was raised to $200.00 by dave".

    Without a person's name, where it was raised ("in the config file", "through the API"). A resolve that
    said only when left the on-call guessing between a raised limit and a reset. The old limit is not
    named: the resolve's figures are the new limit's, and the old one read as if it still held.
    """
    where = {"config": " in the config file", "api": " through the API", "cli": " with llmcost budgets"}
    said = f"the limit was raised to {amount(after.unit, after.limit)}"
    if by:
        return said + f" by {by}" + (where["config"] if origin == "config" else "")
    return said + where.get(origin, "")


def _raises_limit(before: Mapping[str, Any], after: Budget) -> bool:
    """Whether `after` is `before` (a stored definition's JSON) with a higher limit, counting the same calls."""
    if not before or before.get("unit", "usd") != after.unit or not counts_alike(before, after):
        return False
    return float(before.get("limit", after.limit)) < after.limit


def _starts_a_period(budget: Budget, label: str) -> bool:
    """Whether `label` (a cap alert's `period_start`) is the start of one of `budget`'s periods as defined now.

    A budget whose period changed since (daily to hourly) cannot name the period its old alert was about.
    """
    if not label.isdigit():
        return False
    start, _end = period_bounds(budget.period, datetime.fromtimestamp(int(label), UTC), budget.timezone)
    return int(start.timestamp()) == int(label)


def _identity(alertname: str) -> str:
    """What identifies a budget alert of an instance: "level" for its one alert (levels, forecast), else its name."""
    return "level" if alertname in SEVERITY_FOR_ALERT else alertname


class BudgetAlerts:
    """Raises and resolves budget alerts through a sink (none: alerts are not raised)."""

    def __init__(
        self,
        sink: AlertSink | None,
        registry: BudgetRegistry,
        reader: InstanceReader,
        periods: CurrentPeriods,
        clock: Callable[[], float],
        projection: ProjectionConfig,
    ) -> None:
        self.sink = sink
        self.registry = registry
        self.reader = reader
        self.periods = periods
        self.clock = clock
        self.projection = projection
        self._levels: dict[tuple[str, str], tuple[float, int]] = {}
        """Each instance's period start and index in STATES of its level when last alerted on (so a level
        fires once per period: the same level reached again in the next period is a new crossing)."""

    def annotations(self, instance: Instance, alertname: str) -> dict[str, str]:
        """The annotations of one budget alert of `instance`: summary, description, figures, runbook.

        They are what a person reads in Slack, mail and PagerDuty (the figures are listed there as they
        are), so every figure carries its unit and the limit it is compared with, and every time names UTC:
        the exact numbers are in `GET /v1/budgets/{name}` and the `llm_budget_*` metrics.
        """
        b = instance.budget
        scope = "all usage" if b.scope == "global" else f"{b.scope} {instance.key!r}"
        ends = _utc(instance.period_end) if instance.period_end is not None else None
        # What `spent` counts from: the last reset in this period, else the period's start. A `total` budget
        # has no start to name (its period runs from the Unix epoch: "since 1970-01-01" says nothing).
        if instance.reset_at is not None:
            since = f" since its reset at {_utc(datetime.fromtimestamp(instance.reset_at, UTC))}"
        else:
            since = f" since {_utc(instance.period_start)}" if ends is not None else ""

        def of(value: float) -> str:
            shown, limit = amounts_apart(b.unit, value, b.limit)  # $4,999.996 is not "$5,000.00 of $5,000.00"
            return f"{shown} of {limit}"

        spent, limit = amounts_apart(b.unit, instance.spent, b.limit)
        projected = amounts_apart(b.unit, instance.projected, b.limit)[0]
        if alertname == FORECAST_ALERT:
            summary = f"Budget {b.name} is projected to reach {projected} by {ends}, over its {limit} limit"
        else:
            # Rounded down: a critical alert at 99.99% must not read "at 100%" beside an exceeded one.
            summary = f"Budget {b.name} is at {percent(instance.ratio)} ({of(instance.spent)})"
        if ends is None:
            outlook, projected_text = "the budget has no period end.", "no period end"
        elif instance.projection == INSUFFICIENT_HISTORY:
            outlook = f"not projected yet (too little history); the period ends {ends}."
            projected_text = "not yet (too little history)"
        else:
            outlook = f"projected {projected} by the period's end, {ends}."
            projected_text = f"{projected} by {ends}"
        return {
            "summary": summary,
            "description": f"{b.period.capitalize()} budget for {scope}: {spent} spent of {limit}{since}; {outlook}",
            "spent": spent,
            "limit": f"{limit} ({b.period})",
            "ratio": percent(instance.ratio),
            "projected": projected_text,
            "runbook_url": "https://github.com/llmcost/llmcost/blob/main/docs/runbook.md#llmbudget-alerts",
        }

    def desired(self, instance: Instance, now: float) -> set[str]:
        """The alert this instance should have firing (none or one): the highest of its level and the forecast.

        The forecast is a level of the instance's one alert (`alerting.model.ESCALATING_ALERTS`): a budget
        projected over its limit that then crosses warning is one problem, so one Slack thread, mail thread
        and PagerDuty incident, named after the highest of the two.
        """
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
            result = ProjectionResult(instance.projected, instance.projected, instance.projected, instance.spent, "")
            if should_alert_forecast(result, instance.budget.limit, fraction, self.projection):
                wanted.add(FORECAST_ALERT)
        return {max(wanted, key=level_rank)} if wanted else wanted

    def on_commit(self, result: WriteResult, touched: set[tuple[str, str]]) -> None:
        """Raise the threshold alerts that an ingest commit crossed (`touched`: its (budget, key) pairs)."""
        if self.sink is None:
            return
        names = {b for b, _ in touched}
        defs = [b for b in self.registry.definitions() if b.name in names]
        self._alert_request_caps(result, [b for b in defs if _capped(b)])
        crossed: list[FireItem] = []
        rising: list[Instance] = []
        for instance in self.reader.instances(only=defs):
            ident = (instance.budget.name, instance.key)
            if ident not in touched:
                continue
            level = STATES.index(instance.state)
            start = instance.period_start.timestamp()
            seen_start, seen = self._levels.get(ident, (start, STATES.index("ok")))
            if seen_start == start and level <= seen:
                continue
            self._levels[ident] = (start, level)
            for alertname in sorted(self.desired(instance, self.clock()) - {FORECAST_ALERT}):
                rising.append(instance)
                crossed.append(
                    (
                        alertname,
                        instance.labels(),
                        self.annotations(instance, alertname),
                        SEVERITY_FOR_ALERT[alertname],
                    )
                )
        if rising:
            self._end_finished_periods(rising)
        # One request crossing many instances of a `key: "*"` budget: one transaction, one grouped message.
        fire_all(self.sink, crossed)

    def _alert_request_caps(self, result: WriteResult, capped: list[Budget]) -> None:
        """Fire REQUEST_CAP_ALERT for each capped budget that a newly stored call went over (counted anyway)."""
        if not capped or self.sink is None:
            return
        worst: dict[tuple[str, str, int], tuple[Budget, Any, str]] = {}
        now = self.clock()
        current = {budget.name: self.periods.bounds(budget, now) for budget in capped}
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
                start, end = current[budget.name]
                if event.timestamp < start.timestamp():
                    # A late call of a period that has ended (a retried batch, an imported log): counted
                    # there, but that period's cap alert is over; raising one now would label it today's.
                    continue
                own_start = int(start.timestamp())
                if end is not None and event.timestamp >= end.timestamp():
                    # Stamped in the next period (a client clock a little fast, within the allowed skew):
                    # counted there, so its alert is that period's, not one the next evaluation ends.
                    at = datetime.fromtimestamp(event.timestamp, UTC)
                    own_start = int(period_bounds(budget.period, at, budget.timezone)[0].timestamp())
                if budget.max_cost_per_request is not None and cost > budget.max_cost_per_request:
                    # As the check words it: sub-cent caps, and a call a fraction of a cent over.
                    spent, cap_usd = usd_apart(cost, budget.max_cost_per_request)
                    why = f"call {event.request_id} cost {spent}, over the {cap_usd} cap"
                elif budget.max_tokens_per_request is not None and tokens > budget.max_tokens_per_request:
                    cap = budget.max_tokens_per_request
                    why = f"call {event.request_id} used {tokens:,} tokens, over the {cap:,} cap"
                else:
                    continue
                worst.setdefault((budget.name, key, own_start), (budget, event, why))
        for (name, key, period_start), (budget, _event, why) in sorted(worst.items(), key=lambda item: item[0]):
            labels = {"budget": name, "scope": budget.scope, "key": key, "period_start": str(period_start)}
            annotations = {
                "summary": f"Budget {name}: a call exceeded its per-request cap ({why}); it was counted",
                "description": (
                    f"{budget.period} budget {name}; the alert resolves when the period ends, on reset, "
                    "or when the cap is removed."
                ),
                "runbook_url": "https://github.com/llmcost/llmcost/blob/main/docs/budgets.md#per-request-caps",
            }
            self.sink.fire(REQUEST_CAP_ALERT, labels, annotations, "warning")

    def reconcile(self, definitions: list[Budget], instances: list[Instance], now: float) -> None:
        """Make the active budget alerts those `instances` call for: raise what holds, resolve what does not."""
        self._levels = {(i.budget.name, i.key): (i.period_start.timestamp(), STATES.index(i.state)) for i in instances}
        if self.sink is None:
            return
        desired: dict[tuple[str, str, str], Instance] = {}
        for instance in instances:
            if instance.key == OTHER_INSTANCE:
                # The sum of many values past `max_instances`: reported in the status, never paged as if
                # it were one value over its limit (a flood of names must not page by itself).
                continue
            for alertname in self.desired(instance, now):
                desired[(alertname, instance.budget.name, instance.key)] = instance
        # The level alerts of one instance are one alert (its name follows the level): compare them
        # by instance, so moving from one level to another is a change of that alert, not a resolve.
        active = {
            (_identity(alertname), labels.get("budget", ""), labels.get("key", "")): (alertname, labels)
            for alertname, labels in self._end_finished_periods(instances, definitions=definitions, now=now)
        }
        wanted = {(_identity(alertname), budget, key) for alertname, budget, key in desired}
        # Levels only rise within a period; the forecast can fall back below them (to info, when the
        # projection drops). Relabelled as info, its thread would stay firing under a warning about an
        # overrun, and through Alertmanager (which drops a lower level's report, gateway/lifecycle.py) it
        # would end in a resolve and a second alert: it is resolved first, and the info level is new.
        levels = {(_identity(alertname), budget, key): alertname for alertname, budget, key in desired}
        fallen = [
            (alertname, labels)
            for ident, (alertname, labels) in active.items()
            if alertname == FORECAST_ALERT and ident in levels and level_rank(levels[ident]) < level_rank(alertname)
        ]
        figures: dict[tuple[str, frozenset[tuple[str, str]]], dict[str, str]] = {}
        ended = self._still_unwanted(definitions, fallen, now, fallen=True, figures=figures)
        resolve_all(self.sink, ended, started_by=now, figures=figures)
        fire_all(
            self.sink,
            [
                (
                    ident[0],
                    instance.labels(),
                    self.annotations(instance, ident[0]),
                    SEVERITY_FOR_ALERT.get(ident[0], "warning"),
                )
                for ident, instance in desired.items()
            ],
        )
        # Only alerts that had started when this evaluation began (`now`, before `instances` were read):
        # one raised since, by an ingest or another leader, is left to the next evaluation. The start was
        # written with the clock of the process that raised the alert, so on a host whose clock is slow a
        # later alert looks older: the state is read again first (`_still_unwanted`), and what it now calls
        # for stays open whatever the clocks say.
        unwanted = [(alertname, labels) for ident, (alertname, labels) in active.items() if ident not in wanted]
        figures = {}
        ended = self._still_unwanted(definitions, unwanted, now, figures=figures)
        resolve_all(self.sink, ended, started_by=now, figures=figures)
        # The current period's cap alerts stay, and the next one's (a call stamped just past the period
        # end, within the allowed skew): that period has not even begun. Any other is over, and so is
        # every one of a budget left without a cap (removed by a process with no sink to end its alerts,
        # or whose `resolve_dropped_caps` failed after the change committed).
        self._end_cap_alerts(definitions, now)

    def _end_cap_alerts(self, definitions: list[Budget], now: float) -> None:
        """Resolve the cap alerts whose period is over, or whose budget or cap is gone; a period's end says so."""
        assert self.sink is not None
        open_periods: dict[str, set[str]] = {}
        capped = {b.name: b for b in definitions if _capped(b)}
        for b in capped.values():
            start, end = self.periods.bounds(b, now)
            open_periods[b.name] = {str(int(start.timestamp()))} | ({str(int(end.timestamp()))} if end else set())
        ended: list[tuple[str, dict[str, str]]] = []
        reasons: dict[tuple[str, frozenset[tuple[str, str]]], str] = {}
        for alertname, labels in self.sink.active_labels([REQUEST_CAP_ALERT]):
            name, period_start = labels.get("budget", ""), labels.get("period_start", "")
            if period_start in open_periods.get(name, set()):
                continue
            ended.append((alertname, labels))
            budget = capped.get(name)
            if budget is not None and _starts_a_period(budget, period_start):  # not gone, nor its cap: its period
                reasons[figures_key(alertname, labels)] = cap_period_ended(budget, float(period_start))
        resolve_all(self.sink, ended, reasons=reasons)

    def _still_unwanted(
        self,
        definitions: list[Budget],
        items: list[tuple[str, dict[str, str]]],
        now: float,
        *,
        fallen: bool = False,
        figures: dict[tuple[str, frozenset[tuple[str, str]]], dict[str, str]] | None = None,
    ) -> list[tuple[str, dict[str, str]]]:
        """Of `items` (alerts the evaluation's state no longer calls for), those the spend read now does not either.

        The evaluation's state may be seconds old (a long pass, a stalled leader): an ingest in any process
        may have crossed a threshold since and raised the alert. Telling that apart by the alert's start
        compares clocks of different hosts; reading the spend again does not. The periods stay the
        evaluation's (`now`); only the budgets of `items` are read (one query), and only when there is
        something to resolve. With `fallen`, `items` are levels above the one their instance calls for:
        one stays only while the spend read now calls for a lower level still (an ingest meanwhile may
        have raised the instance's one alert to that level or above: it must not be resolved).

        `figures` gets the annotations of each one returned as read now, for its resolve to show: a limit
        raised past every level ends the alert, and its last figures (over the old limit) no longer hold.
        """
        if not items:
            return items
        names = {labels.get("budget", "") for _, labels in items}
        chosen = [b for b in definitions if b.name in names]
        wanted: dict[tuple[str, str], list[str]] = {}
        read: dict[tuple[str, str], Instance] = {}
        for instance in self.reader.instances(now, only=chosen):
            if instance.key != OTHER_INSTANCE:
                wanted.setdefault((instance.budget.name, instance.key), []).extend(self.desired(instance, now))
                read[instance.budget.name, instance.key] = instance

        def unwanted(alertname: str, labels: dict[str, str]) -> bool:
            called_for = wanted.get((labels.get("budget", ""), labels.get("key", "")), [])
            if fallen:
                return all(level_rank(name) < level_rank(alertname) for name in called_for)
            return all(_identity(name) != _identity(alertname) for name in called_for)

        ended = [(alertname, labels) for alertname, labels in items if unwanted(alertname, labels)]
        if figures is not None:
            for alertname, labels in ended:
                now_read = read.get((labels.get("budget", ""), labels.get("key", "")))
                if now_read is not None:
                    figures[figures_key(alertname, labels)] = self.annotations(now_read, alertname)
        return ended

    def _end_finished_periods(
        self, instances: list[Instance], *, definitions: Iterable[Budget] = (), now: float | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        """Resolve the alerts these instances still hold from a period that has ended; the rest stay active.

        A budget alert's labels name no period, so an instance over a threshold again early in the next
        period (an hourly request budget refilled in its first seconds, before the scheduler's next
        evaluation) would otherwise carry on the last period's alert: no new Slack thread or PagerDuty
        incident for a new crossing, and none at all if the old one was acknowledged. An alert that
        started before the instance's current period belongs to the finished one and is resolved here;
        only alerts that old are touched, so one raised in this period (by any process) stays.

        With `definitions` and `now` (a scheduler pass), the alerts of every value of those budgets are
        looked at, not only of `instances`: a `key: "*"` budget lists only the values that spent in the new
        period yet. Each resolve says why (`period_ended`), as a reset's says who and why.
        Returns (alertname, labels) of the budget alerts still active.
        """
        assert self.sink is not None
        found = active_since(self.sink, BUDGET_ALERTS)
        if found is None:  # a sink that cannot tell when its alerts started
            return self.sink.active_labels(BUDGET_ALERTS)
        starts = {(i.budget.name, i.key): (i.budget, i.period_start.timestamp()) for i in instances}
        budget_starts = {} if now is None else {b.name: (b, float(self.periods.start(b, now))) for b in definitions}
        ended: list[tuple[str, dict[str, str]]] = []
        reasons: dict[tuple[str, frozenset[tuple[str, str]]], str] = {}
        kept: list[tuple[str, dict[str, str]]] = []
        latest = float("-inf")
        for alertname, labels, started in found:
            name = labels.get("budget", "")
            current = starts.get((name, labels.get("key", ""))) or budget_starts.get(name)
            if current is not None and started < current[1]:
                ended.append((alertname, labels))
                reasons[figures_key(alertname, labels)] = period_ended(current[0], started)
                latest = max(latest, started)
            else:
                kept.append((alertname, labels))
        if ended:
            # `started_by`: the latest of their starts, still before the period, so nothing newer is resolved.
            resolve_all(self.sink, ended, started_by=latest, reasons=reasons)
        return kept

    def resolve_raised_limit(self, before: Mapping[str, Any], budget: Budget, *, by: str, origin: str) -> None:
        """Resolve the alerts of `budget` that its raised limit no longer calls for, saying so and by whom.

        `before`: its stored definition's JSON before the change (config reload, `budgets update`, `PUT`);
        `origin`: where the change came from (config, api, cli). Resolved now, with the figures of the new
        limit, by `by` (else `origin`) via budgets, as a reset is; the scheduler's next pass used to resolve
        them saying only when. Only alerts of the current period: an older one ends with its period.
        """
        if self.sink is None or not _raises_limit(before, budget):
            return
        found = active_since(self.sink, BUDGET_ALERTS)
        if not found:
            return
        now = self.clock()
        start = float(self.periods.start(budget, now))
        mine = [(a, labels) for a, labels, started in found if labels.get("budget") == budget.name and started >= start]
        figures: dict[tuple[str, frozenset[tuple[str, str]]], dict[str, str]] = {}
        ended = self._still_unwanted([budget], mine, now, figures=figures)
        if not ended:
            return
        for _alertname, labels in ended:  # a crossing of the new limit's levels is news again
            self._levels.pop((budget.name, labels.get("key", "")), None)
        why = limit_raised(budget, by=by, origin=origin)
        reasons = {figures_key(alertname, labels): why for alertname, labels in ended}
        resolve_all(self.sink, ended, started_by=now, figures=figures, reasons=reasons, by=by or origin, via="budgets")

    def resolve_budgets(self, names: Iterable[str], *, by: str, comment: str) -> None:
        """Resolve every alert of these budgets (removed or deleted), recording who and why."""
        wanted = set(names)
        if self.sink is None or not wanted:
            return
        for alertname, labels in self.sink.active_labels(PERSON_RESOLVED):
            if labels.get("budget") in wanted:
                resolve_with_reason(self.sink, alertname, labels, by=by, comment=comment)

    def resolve_dropped_caps(self, name: str, caps: list[str], *, by: str) -> None:
        """Resolve the cap alerts of budget `name`, whose definition change removed `caps`.

        A cap alert says a call went over a cap; with that cap gone it has nothing left to report, yet it
        stayed firing until its period ended. The alert's labels do not say which cap a call went over, so
        removing either cap resolves it: a later call over a cap that remains raises it again.
        """
        if self.sink is None or not caps:
            return
        comment = f"{' and '.join(caps)} removed from the budget"
        for alertname, labels in self.sink.active_labels([REQUEST_CAP_ALERT]):
            if labels.get("budget") == name:
                resolve_with_reason(self.sink, alertname, labels, by=by or "api", comment=comment)

    def resolve_reset(self, name: str, keys: Iterable[str], *, key: str | None, by: str, reason: str) -> None:
        """After a reset of `keys` (all of them, or only `key`): forget their levels, resolve their alerts."""
        for k in keys:
            self._levels.pop((name, k), None)
        if self.sink is None:
            return
        why = f"budget reset by {by}" + (f": {reason}" if reason else "")
        for alertname, labels in self.sink.active_labels(PERSON_RESOLVED):
            if labels.get("budget") == name and (key is None or labels.get("key") == key):
                resolve_with_reason(self.sink, alertname, labels, by=by, comment=why)
