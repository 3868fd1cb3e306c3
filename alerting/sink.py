"""`AlertSink`: where the budget and spike services hand their alerts (the gateway, Alertmanager, a recorder).

Production sinks (`alerting.gateway.sink.GatewaySink`, `alerting.push.sink.AlertmanagerSink`) may also offer
`fire_many`, `resolve_many` (one transaction for a batch, so the gateway groups its notifications) and
`resolve_with_reason` (who resolved and why); the helpers below use them when present and fall back to
one call per alert otherwise, so a test recorder needs only the three methods of the protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

FireItem = tuple[str, dict[str, str], dict[str, str], str]
"""(alertname, labels, annotations, severity) of one alert to fire."""

Figures = Mapping[tuple[str, frozenset[tuple[str, str]]], Mapping[str, str]]
"""Annotations read when alerts were found over, by `figures_key(alertname, labels)`: what their resolve shows."""

Reasons = Mapping[tuple[str, frozenset[tuple[str, str]]], str]
"""Why llmcost itself resolves some alerts (a budget's period ended), by `figures_key(alertname, labels)`."""


def figures_key(alertname: str, labels: Mapping[str, str]) -> tuple[str, frozenset[tuple[str, str]]]:
    """The key of one alert in `Figures`."""
    return alertname, frozenset(labels.items())


class AlertSink(Protocol):
    """Where alerts go: the alert gateway in production, a recorder in tests."""

    def fire(
        self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str], severity: str
    ) -> Any:  # pragma: no cover - protocol
        """Raise (or refresh) the alert identified by `alertname` and `labels`."""
        ...

    def resolve(self, alertname: str, labels: Mapping[str, str]) -> Any:  # pragma: no cover - protocol
        """Resolve the alert identified by `alertname` and `labels` (no-op when it is not firing)."""
        ...

    def active_labels(
        self, alertnames: Iterable[str]
    ) -> list[tuple[str, dict[str, str]]]:  # pragma: no cover - protocol
        """(alertname, labels) of the unresolved alerts with these names."""
        ...


def fire_all(sink: AlertSink, items: list[FireItem]) -> None:
    """Fire `items` together: in one transaction when the sink can (the gateway groups their notifications)."""
    fire_many = getattr(sink, "fire_many", None)
    if fire_many is not None and len(items) > 1:
        fire_many(items)
        return
    for alertname, labels, notes, severity in items:
        sink.fire(alertname, labels, notes, severity)


def resolve_all(
    sink: AlertSink,
    items: list[tuple[str, dict[str, str]]],
    *,
    started_by: float | None = None,
    figures: Figures | None = None,
    reasons: Reasons | None = None,
    by: str = "",
    via: str = "",
) -> None:
    """Resolve `items` together when the sink can (see `fire_all`).

    `started_by` (the time the evaluation that found them over began): only alerts that had started by
    then are resolved. An evaluation reads the state first and resolves later; an alert raised in between
    (by an ingest that crossed a threshold in any process, or by a new leader while this one stalled) is
    not one this evaluation saw, and resolving it would end the problem's Slack thread and PagerDuty
    incident only for the next evaluation to open new ones. The gateway and the Alertmanager push sink
    apply it; sinks without `resolve_many` (test recorders) ignore it.

    `figures`: the alerts' annotations as they are now (a budget whose limit was raised: its spend of the
    new limit), which their resolve shows in place of the figures they last fired with.

    `reasons`: why they ended, for those llmcost can say it of (a budget's period ended, its limit raised);
    the gateway records each as the resolve's comment, by `by` via `via` (by default `llmcost` via
    `scheduler`: llmcost's own finding), and its messages show who and why. Sinks without `resolve_many`
    ignore them.
    """
    resolve_many = getattr(sink, "resolve_many", None)
    if resolve_many is not None and (len(items) > 1 or started_by is not None or reasons):
        if items:
            extra: dict[str, Any] = {"figures": figures} if figures else {}
            if reasons:
                extra["reasons"] = reasons
            extra.update({name: value for name, value in (("by", by), ("via", via)) if value})
            resolve_many(items, started_by=started_by, **extra)
        return
    for alertname, labels in items:
        sink.resolve(alertname, labels)


def update(sink: AlertSink, alertname: str, labels: dict[str, str], annotations: dict[str, str], severity: str) -> None:
    """New figures of a firing alert: edited into its messages when the sink can (the gateway's `update`).

    Other sinks get a plain re-fire (Alertmanager takes the new annotations; a recorder records it).
    """
    update = getattr(sink, "update", None)
    if update is not None:
        update(alertname, labels, annotations, severity)
    else:
        sink.fire(alertname, labels, annotations, severity)


def active_annotations(
    sink: AlertSink, alertnames: Iterable[str]
) -> dict[frozenset[tuple[str, str]], dict[str, str]] | None:
    """The annotations of the unresolved alerts with these names, by their labels; None when the sink cannot say."""
    reader = getattr(sink, "active_annotations", None)
    if reader is None:
        return None
    return {frozenset(labels.items()): annotations for _name, labels, annotations in reader(alertnames)}


def active_since(sink: AlertSink, alertnames: Iterable[str]) -> list[tuple[str, dict[str, str], float]] | None:
    """(alertname, labels, starts_at) of the unresolved alerts with these names; None when the sink cannot say.

    Budget alerts use the start to tell an alert of a period that has ended from one of the current period:
    their labels name no period, so only the start time can (see `alerting.budgets.alerts`).
    """
    reader = getattr(sink, "active_since", None)
    return None if reader is None else list(reader(alertnames))


def resolve_with_reason(sink: AlertSink, alertname: str, labels: dict[str, str], *, by: str, comment: str) -> None:
    """Resolve with who and why when the sink records it (the gateway does)."""
    resolve_with_reason = getattr(sink, "resolve_with_reason", None)
    if resolve_with_reason is not None:
        resolve_with_reason(alertname, labels, by=by, comment=comment)
    else:
        sink.resolve(alertname, labels)
