"""`GatewaySink`: the budgets' and detectors' alert sink that hands alerts to the gateway directly.

It is the sink without an `alertmanager:` section (with one, `alerting.push.sink.AlertmanagerSink`);
the application's wiring (`llmcost.wiring`) and `llmcost budgets delete|reset` build it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from alerting.gateway.lifecycle import AlertInput
from alerting.gateway.service import GatewayService
from alerting.sink import Figures, Reasons


class GatewaySink:
    """The budgets' and detectors' view of the gateway (the direct path, without `alertmanager:`)."""

    def __init__(
        self,
        gateway: GatewayService,
        runbook: Callable[[str], str] | None = None,
        source: Callable[[str, Mapping[str, str]], str] | None = None,
        dashboard: Callable[[str, Mapping[str, str]], str] | None = None,
    ) -> None:
        """Hand alerts to `gateway`, with the links a person follows from a message.

        `runbook(alertname)`: the runbook link; `source(alertname, labels)`: where to look at it ("" for none);
        `dashboard(alertname, labels)`: its Grafana dashboard ("" for none), kept as `dashboard_url`.
        """
        self._gateway = gateway
        self._runbook = runbook
        self._source = source
        self._dashboard = dashboard

    def fire(self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str], severity: str) -> Any:
        """Raise (or keep raising) an alert; its `runbook_url` is the absolute link to its runbook section."""
        return self._fire(alertname, labels, annotations, severity, update=False)

    def update(self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str], severity: str) -> Any:
        """New figures of a firing alert that grew: stored, and its Slack message edited in place."""
        return self._fire(alertname, labels, annotations, severity, update=True)

    def fire_many(self, items: Sequence[tuple[str, Mapping[str, str], Mapping[str, str], str]]) -> Any:
        """Fire several alerts `(alertname, labels, annotations, severity)` in one transaction (see grouping)."""
        return self._gateway.fire_many(
            [
                AlertInput(
                    alertname=name,
                    labels=dict(labels),
                    severity=severity,  # type: ignore[arg-type]
                    annotations=self._annotated(name, labels, annotations),
                    generator_url=self._source_of(name, labels),
                )
                for name, labels, annotations, severity in items
            ]
        )

    def _fire(
        self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str], severity: str, *, update: bool
    ) -> Any:
        return self._gateway.fire(
            alertname,
            labels,
            severity=severity,  # type: ignore[arg-type]
            annotations=self._annotated(alertname, labels, annotations),
            generator_url=self._source_of(alertname, labels),
            update=update,
        )

    def _annotated(self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str]) -> dict[str, str]:
        """The annotations with the absolute links to the alert's runbook section and dashboard (when known)."""
        annotated = dict(annotations)
        if self._runbook is not None:
            annotated["runbook_url"] = self._runbook(alertname)
        dashboard = self._dashboard(alertname, labels) if self._dashboard is not None else ""
        if dashboard:
            annotated["dashboard_url"] = dashboard
        return annotated

    def _source_of(self, alertname: str, labels: Mapping[str, str]) -> str:
        return self._source(alertname, labels) if self._source is not None else ""

    def resolve(self, alertname: str, labels: Mapping[str, str]) -> Any:
        """Resolve an alert if it is active."""
        return self._gateway.resolve(alertname, labels)

    def resolve_many(
        self,
        items: Sequence[tuple[str, Mapping[str, str]]],
        *,
        started_by: float | None = None,
        figures: Figures | None = None,
        reasons: Reasons | None = None,
        by: str = "",
        via: str = "scheduler",
    ) -> Any:
        """Resolve several alerts `(alertname, labels)` in one transaction (see `alerting.sink.resolve_all`).

        `figures`: their annotations now, shown by their resolve (with the links `fire` adds); `reasons`:
        why some of them end, shown by their resolve as said by `by` (llmcost when unnamed) via `via`.
        """
        now = {key: self._annotated(key[0], dict(key[1]), notes) for key, notes in (figures or {}).items()}
        return self._gateway.resolve_many(items, by=by, via=via, started_by=started_by, figures=now, reasons=reasons)

    def resolve_with_reason(self, alertname: str, labels: Mapping[str, str], *, by: str, comment: str) -> Any:
        """Resolve an alert for a person's action (a reset, a deletion), recording who and why."""
        return self._gateway.resolve(alertname, labels, by=by, via="budgets", comment=comment)

    def active_since(self, alertnames: Iterable[str]) -> list[tuple[str, dict[str, str], float]]:
        """(alertname, labels, starts_at) of unresolved alerts with these names."""
        names = set(alertnames)
        return [
            (a.alertname, dict(a.labels), a.starts_at.timestamp())
            for state in ("firing", "acknowledged")
            for a in self._gateway.alerts(state, limit=100_000)
            if a.alertname in names
        ]

    def active_annotations(self, alertnames: Iterable[str]) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        """(alertname, labels, annotations) of unresolved alerts with these names: the figures last handed over."""
        names = set(alertnames)
        return [
            (a.alertname, dict(a.labels), dict(a.annotations))
            for state in ("firing", "acknowledged")
            for a in self._gateway.alerts(state, limit=100_000)
            if a.alertname in names
        ]

    def active_labels(self, alertnames: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
        """(alertname, labels) of unresolved alerts with these names."""
        names = set(alertnames)
        return [
            (a.alertname, dict(a.labels))
            for state in ("firing", "acknowledged")
            for a in self._gateway.alerts(state, limit=100_000)
            if a.alertname in names
        ]
