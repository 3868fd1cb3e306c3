"""Gateway metrics, read from the store at scrape time (client_python's custom collector pattern)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from alerting.gateway.enqueue import DEAD, PENDING
from alerting.gateway.outbox import FOLDED, OUTCOMES, counter_name
from alerting.gateway.tables import alerts, notification_outbox
from exporter import metric_names
from exporter.store import Store


class GatewayCollector(Collector):
    """`llm_alerts_active`, `llm_notifications_total`, `…_folded_total`, `…_outbox_pending`, `…_dead_letters`."""

    def __init__(self, store: Store, channels: Sequence[str]) -> None:
        self._store = store
        self._channels = tuple(channels)

    def collect(self) -> Iterator[Metric]:
        """Query alerts, outbox and counters once per scrape."""
        o = notification_outbox
        with self._store.reading() as conn:
            open_alerts = conn.execute(
                select(alerts.c.alertname, alerts.c.severity, alerts.c.state, alerts.c.silence_id, func.count())
                .where(alerts.c.state.in_(("firing", "acknowledged")))
                .group_by(alerts.c.alertname, alerts.c.severity, alerts.c.state, alerts.c.silence_id)
            ).all()
            queued = conn.execute(
                select(o.c.channel, o.c.status, func.count())
                .where(o.c.status.in_((PENDING, DEAD)))
                .group_by(o.c.channel, o.c.status)
            ).all()
        counters = self._store.counters()

        gauge = GaugeMetricFamily(
            metric_names.ALERTS_ACTIVE.name,
            metric_names.ALERTS_ACTIVE.help,
            labels=list(metric_names.ALERTS_ACTIVE.labels),
        )
        for (alertname, severity, state), count in sorted(_active(open_alerts).items()):
            gauge.add_metric([alertname, severity, state], count)
        yield gauge

        channels = sorted(
            {*self._channels, *(row[0] for row in queued)}
            | {name.split(".")[1] for name in counters if name.startswith("notifications.") and name.count(".") == 2}
        )
        for spec, kinds in ((metric_names.NOTIFICATIONS, OUTCOMES), (metric_names.NOTIFICATIONS_FOLDED, FOLDED)):
            per_channel = CounterMetricFamily(spec.family_name, spec.help, labels=list(spec.labels))
            for channel in channels:
                for kind in kinds:
                    per_channel.add_metric([channel, kind], counters.get(counter_name(channel, kind), 0.0))
            yield per_channel

        by_status = {(channel, status): float(count) for channel, status, count in queued}
        for spec, status in ((metric_names.OUTBOX_PENDING, PENDING), (metric_names.OUTBOX_DEAD, DEAD)):
            family = GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
            for channel in channels:
                family.add_metric([channel], by_status.get((channel, status), 0.0))
            yield family


def _active(rows: Sequence[Sequence[Any]]) -> dict[tuple[str, str, str], float]:
    """Open alerts counted by (alertname, severity, state shown).

    A firing alert that a silence or an inhibition in Alertmanager holds (`alerting.gateway.silence_watch`,
    one mark for both) is counted as `acknowledged`, not `firing`: the team chose not to hear of it (an
    inhibit rule: not while the alert muting it fires), and Alertmanager's own UI hides it, so
    `state="firing"` keeps meaning firing with nobody dealing with it. The label keeps the public
    contract's two values (firing, acknowledged: someone has taken it, by an ack or by a silence);
    `llmcost alerts list`, the console and `GET /v1/alerts` tell the two apart.
    """
    counts: dict[tuple[str, str, str], float] = {}
    for alertname, severity, state, silence_id, count in rows:
        shown = "acknowledged" if state == "firing" and silence_id else state
        key = (alertname, severity, shown)
        counts[key] = counts.get(key, 0.0) + float(count)
    return counts
