"""Reminders with evidence: an alert the scheduler evaluates is reminded of only after a pass has seen it.

A reminder ("still firing since …") says the problem holds now. For an alert of a Prometheus rule,
Alertmanager is the evidence: it resolves the alert when the rule stops firing. For the alerts llmcost's
scheduler raises (budgets, forecasts, request caps, spikes) the evidence is the job that evaluates them:
each pass raises what holds and resolves what no longer does. While no pass runs (the server stopped
overnight, the leader dead, the job failing) nothing resolves them, and a reminder sent then claims what
nobody checked: after a restart the gateway's first tick reminded of a daily budget's alerts (Slack, mail, a
PagerDuty trigger) seconds before the first budgets pass resolved them because their period had ended.

So such an alert's reminder is due only once a pass of its job that began after the reminder fell due
(`last_notified_at + repeat_interval`) has succeeded: that pass saw the alert (open before it began) and,
having left it open, vouches that it still holds. Why "since it fell due" and not "within a few of the
job's intervals": it needs no interval (the gateway does not know the jobs' schedules, which the
application configures), it cannot be met by a pass that ran just before a long stop, and it costs a
running scheduler at most one job interval of delay. On the direct path a pass that finds an alert still
firing when its reminder is due sends that reminder itself (`Lifecycle.fire`); the tick then only finds
the ones a pass left open without firing them to the gateway (on the Alertmanager path it pushes them
there), on its first run after that pass.

The evidence is read from the store (the gauge each successful run records, `alerting.scheduler`), so it
holds however the processes are split: the leader's scheduler runs the jobs, every process ticks. A job
that stops passing holds its alerts' reminders back; `LLMCostSchedulerStalled` and
`LLMCostSchedulerFailing` (prometheus/rules/) say so (docs/alerting.md, "Reminders").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import and_, or_, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from alerting.gateway.tables import alerts
from exporter.store.schema import ingest_counters


class ReminderEvidence:
    """Which persisted gauge vouches for which alerts: `passes` maps a gauge name to alert names.

    The gauge holds when the last successful pass of the job evaluating those alerts began
    (`alerting.scheduler.last_success_name`, on the leader's clock: a few seconds of skew between hosts
    delay a reminder by at most one pass). Alert names in no entry (Prometheus rules' alerts) need no
    evidence; with no entries at all, none does.
    """

    def __init__(self, passes: Mapping[str, Iterable[str]] | None = None) -> None:
        self.passes = {gauge: tuple(sorted(set(names))) for gauge, names in (passes or {}).items()}
        counted = [name for names in self.passes.values() for name in names]
        twice = sorted({name for name in counted if counted.count(name) > 1})
        if twice:
            raise ValueError(f"reminder evidence: {', '.join(twice)} listed under two jobs; one job evaluates an alert")
        self.alertnames = tuple(sorted(counted))

    def reminder_vouched(self, conn: Connection, repeat_interval: float) -> ColumnElement[bool]:
        """A condition on `alerts`: its reminder, once due, has the evidence it needs (or needs none)."""
        if not self.passes:
            return true()
        rows = conn.execute(
            select(ingest_counters.c.name, ingest_counters.c.value).where(ingest_counters.c.name.in_(self.passes))
        ).all()
        passed = {name: float(value) for name, value in rows}
        vouched: list[ColumnElement[bool]] = [alerts.c.alertname.not_in(self.alertnames)]
        for gauge, names in self.passes.items():
            if gauge in passed:  # a job that never passed vouches for nothing
                # due at last_notified_at + repeat_interval, at or before the start of the last pass
                fell_due_before_pass = alerts.c.last_notified_at <= passed[gauge] - repeat_interval
                vouched.append(and_(alerts.c.alertname.in_(names), fell_due_before_pass))
        return or_(*vouched)
