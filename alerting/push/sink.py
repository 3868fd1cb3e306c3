"""`AlertmanagerSink`: the budgets' and detectors' view of Alertmanager, in place of the gateway.

`fire` and `resolve` record the alert in `alertmanager_alerts` and wake the push loop; notifications
then come back through Alertmanager's webhook (the shipped `alertmanager.yml` routes them to the
gateway), so the direct path is not used and nothing is notified twice. A resolve is also applied
to the gateway's own record of the alert at once: a resolve that a silence in Alertmanager would
hold back still closes the alert in llmcost (and sends its one resolve notification). So are new
figures of an alert the gateway holds open at the same level: Alertmanager's webhook sends nothing for
changed annotations (only when a group's alerts come or go, or after repeat_interval), so llmcost
showed the first figures for hours while Alertmanager held the current ones.

A budget instance is one alert whose name follows its level (`ESCALATING_ALERTS`): one row, updated in
place. Alertmanager knows each level as its own alert (the name is a label), so when the level changes
the previous level is kept as a resolved row of its own (`level_key`) and pushed as resolved: otherwise
Alertmanager would hold it firing until its `endsAt` and route it back as if the alert had fallen. A
fall (a limit raised) is also applied to the gateway's record at once (`GatewayService.fall`), so the
end of the higher level, routed back, does not end the alert.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select, update

from alerting.gateway.enqueue import dialect_insert
from alerting.gateway.records import dumps, loads
from alerting.gateway.service import GatewayService
from alerting.model import PUSHED_ONLY_LABELS, alert_family, fingerprint, level_rank
from alerting.push.tables import alertmanager_alerts
from alerting.sink import Figures, Reasons, figures_key
from exporter.store import Store


def clean_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels as pushed and fingerprinted: no empty values (Alertmanager drops them), no routing-only labels."""
    return {
        k: str(v) for k, v in sorted(labels.items()) if v != "" and k not in PUSHED_ONLY_LABELS and k != "alertname"
    }


def level_key(fp: str, alertname: str) -> str:
    """The row key of an earlier level of the alert `fp` (fits the 32-character key column)."""
    return "L" + hashlib.sha256(f"{fp}:{alertname}".encode()).hexdigest()[:24]


class AlertmanagerSink:
    """Records llmcost's alerts for the pusher; `wake` pushes them at once."""

    def __init__(
        self,
        store: Store,
        gateway: GatewayService,
        *,
        wake: Callable[[], None],
        generator_url: Callable[[str, Mapping[str, str]], str],
        runbook_url: Callable[[str], str],
        dashboard_url: Callable[[str, Mapping[str, str]], str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.gateway = gateway
        self._wake = wake
        self._generator_url = generator_url
        self._runbook_url = runbook_url
        self._dashboard_url = dashboard_url
        self.clock = clock

    def fire(self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str], severity: str) -> bool:
        """Raise (or keep raising) an alert; True when it is new, reopened or changed (then pushed at once)."""
        return self._fire(alertname, labels, annotations, severity, edit=False)

    def update(self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str], severity: str) -> bool:
        """New figures of a firing alert that grew: pushed, and edited into its messages (`GatewaySink.update`)."""
        return self._fire(alertname, labels, annotations, severity, edit=True)

    def _fire(
        self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str], severity: str, *, edit: bool
    ) -> bool:
        clean = clean_labels(labels)
        fp = fingerprint(alertname, clean)
        notes = self._notes(alertname, clean, annotations)
        values = {
            "alertname": alertname,
            "labels": dumps(clean),
            "annotations": dumps(notes),
            "severity": severity,
            "generator_url": self._generator_url(alertname, clean),
        }
        t = alertmanager_alerts
        now = self.clock()
        refigured = False  # the same firing alert with other figures
        fell = False  # a firing budget alert at a lower level than before (its limit raised)
        with self.store.transaction() as conn:
            inserted = conn.execute(
                dialect_insert(self.store.dialect, t)
                .values(fingerprint=fp, starts_at=now, ends_at=None, updated_at=now, **values)
                .on_conflict_do_nothing(index_elements=["fingerprint"])
                .returning(t.c.fingerprint)
            ).first()
            changed = inserted is not None
            if alert_family(alertname) is not None:  # this level fires: it is no earlier level any more
                conn.execute(delete(t).where(t.c.fingerprint == level_key(fp, alertname)))
            if not changed:
                row = conn.execute(select(t).where(t.c.fingerprint == fp)).first()
                if row is not None and row.alertname != alertname:  # firing, or resolved and now reopened
                    self._end_level(conn, row, fp, now if row.ends_at is None else row.ends_at)
                    fell = row.ends_at is None and level_rank(alertname) < level_rank(row.alertname)
                reopened = row is not None and row.ends_at is not None
                if reopened or row is None or (row.severity, loads(row.annotations)) != (severity, notes):
                    extra = {"starts_at": now, "ends_at": None} if reopened else {}
                    conn.execute(update(t).where(t.c.fingerprint == fp).values(updated_at=now, **values, **extra))
                    changed = True
                    refigured = row is not None and not reopened and row.alertname == alertname
        if fell:
            # Into the gateway's record before Alertmanager hears of the end of the higher level, which
            # it would route back as the end of the alert (see `Lifecycle.fall`).
            url = values["generator_url"]
            self.gateway.fall(alertname, clean, notes, severity=severity, generator_url=url)  # type: ignore[arg-type]
        if changed:
            self._wake()
        if refigured:
            # Into the gateway's record now (see the module docstring), not whenever Alertmanager re-sends.
            self.gateway.refresh_figures(alertname, clean, notes, severity=severity, update=edit)  # type: ignore[arg-type]
        return True

    def _notes(self, alertname: str, clean: dict[str, str], annotations: Mapping[str, str]) -> dict[str, str]:
        """The annotations as pushed: with the runbook link and the Grafana link the direct path adds.

        The alert comes back from Alertmanager with the annotations pushed here, so without the dashboard
        link the Dashboard button was missing on this path (`GatewaySink`).
        """
        notes = {**annotations, "runbook_url": self._runbook_url(alertname)}
        dashboard = self._dashboard_url(alertname, clean) if self._dashboard_url is not None else ""
        if dashboard:
            notes["dashboard_url"] = dashboard
        return notes

    def _end_level(self, conn: Any, row: Any, fp: str, ended: float) -> None:
        """Keep the level `row` had as a resolved alert of its own, pushed with its `endsAt` (`ended`)."""
        t = alertmanager_alerts
        key = level_key(fp, row.alertname)
        conn.execute(delete(t).where(t.c.fingerprint == key))
        conn.execute(
            t.insert().values(
                fingerprint=key,
                alertname=row.alertname,
                labels=row.labels,
                annotations=row.annotations,
                severity=row.severity,
                generator_url=row.generator_url,
                starts_at=row.starts_at,
                ends_at=ended,
                updated_at=ended,
            )
        )

    def resolve(self, alertname: str, labels: Mapping[str, str]) -> bool:
        """Resolve an alert if it is firing: pushed with its `endsAt`, and closed in the gateway."""
        self.resolve_many([(alertname, labels)])
        return True

    def resolve_many(
        self,
        items: Sequence[tuple[str, Mapping[str, str]]],
        *,
        started_by: float | None = None,
        figures: Figures | None = None,
        reasons: Reasons | None = None,
        by: str = "llmcost",
        via: str = "scheduler",
    ) -> None:
        """Resolve several alerts `(alertname, labels)` in one transaction (see `alerting.sink.resolve_all`).

        `started_by`: only alerts that started no later than this are resolved, here and in the gateway
        (an evaluation's start: an alert raised after it read the state is not one it saw). `figures`:
        their annotations now, pushed with the end and shown by the gateway's resolve. `reasons`: why
        some of them end, shown by the gateway's resolve as said by `by` via `via` (Alertmanager's end
        carries no reason, and the gateway has closed the alert before it routes the end back).
        """
        cleaned: list[tuple[str, dict[str, str]]] = []
        now_figures: dict[tuple[str, frozenset[tuple[str, str]]], dict[str, str]] = {}
        why: dict[tuple[str, frozenset[tuple[str, str]]], str] = {}
        for name, labels in items:
            clean = clean_labels(labels)
            cleaned.append((name, clean))
            notes = (figures or {}).get(figures_key(name, labels))
            if notes is not None:
                now_figures[figures_key(name, clean)] = self._notes(name, clean, notes)
            reason = (reasons or {}).get(figures_key(name, labels))
            if reason:
                why[figures_key(name, clean)] = reason
        t = alertmanager_alerts
        now = self.clock()
        done = 0
        with self.store.transaction() as conn:
            for name, clean in sorted(cleaned, key=lambda item: fingerprint(*item)):
                stmt = update(t).where(t.c.fingerprint == fingerprint(name, clean), t.c.ends_at.is_(None))
                if started_by is not None:
                    stmt = stmt.where(t.c.starts_at <= started_by)
                notes = now_figures.get(figures_key(name, clean))
                if notes is not None:  # the figures are this level's: not written over another's
                    conn.execute(stmt.where(t.c.alertname == name).values(annotations=dumps(notes)))
                done += conn.execute(stmt.values(ends_at=now, updated_at=now)).rowcount
        if done:
            self._wake()
        self.gateway.resolve_many(cleaned, by=by, via=via, started_by=started_by, figures=now_figures, reasons=why)

    def resolve_with_reason(self, alertname: str, labels: Mapping[str, str], *, by: str, comment: str) -> None:
        """Resolve an alert for a person's action (a reset, a deletion), recording who and why.

        Ended in Alertmanager, and closed in the gateway as `GatewaySink.resolve_with_reason` does on the
        direct path. The plain `resolve` closed the gateway's record "by llmcost via scheduler": Slack and
        mail named llmcost, not the person who reset or deleted the budget, and gave no reason.
        """
        why = {figures_key(alertname, labels): comment}
        self.resolve_many([(alertname, labels)], reasons=why, by=by, via="budgets")

    def active_labels(self, alertnames: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
        """(alertname, labels) of the firing alerts with these names."""
        t = alertmanager_alerts
        names = list(set(alertnames))
        stmt = select(t.c.alertname, t.c.labels).where(t.c.ends_at.is_(None), t.c.alertname.in_(names))
        with self.store.reading() as conn:
            return [(row.alertname, loads(row.labels)) for row in conn.execute(stmt)]

    def active_since(self, alertnames: Iterable[str]) -> list[tuple[str, dict[str, str], float]]:
        """(alertname, labels, starts_at) of the firing alerts with these names."""
        t = alertmanager_alerts
        names = list(set(alertnames))
        stmt = select(t.c.alertname, t.c.labels, t.c.starts_at).where(t.c.ends_at.is_(None), t.c.alertname.in_(names))
        with self.store.reading() as conn:
            return [(row.alertname, loads(row.labels), float(row.starts_at)) for row in conn.execute(stmt)]

    def pushed(self) -> list[dict[str, Any]]:
        """Every row, for diagnostics and tests."""
        with self.store.reading() as conn:
            return [dict(row._mapping) for row in conn.execute(select(alertmanager_alerts))]
