"""Open forecast alerts of stores older than the forecast level: one open alert per budget instance.

Revision ID: 0012_budget_forecast_in_family
Revises: 0011_budget_alert_family
Create Date: 2026-12-07

Until `LLMBudgetForecastOverrun` became a level of a budget instance's one alert (between info and warning,
see `alerting.model.ESCALATING_ALERTS`), it was an alert of its own, fingerprinted by its name: a budget
projected over its limit that then crossed warning had two Slack messages, two mail threads, and the
forecast's resolved when the limit was reached. Today's code looks the forecast up by the family
fingerprint, so without this revision an open forecast alert would stay open for ever (reminded every
`repeat_interval`) beside the instance's alert.

The same merge as `0011_budget_alert_family`, with the forecast among the levels: per budget instance with
open alerts under a level's own fingerprint, the highest level is kept and re-keyed to the family
fingerprint (its state, acknowledgement, Slack message and PagerDuty incident stay); the others are resolved
as superseded, with an audit row and a resolve notification on every channel they were sent to. The rows
llmcost pushed to Alertmanager are re-keyed likewise. Written out rather than imported, as 0011 is.
"""

import hashlib
import json
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from alembic import op
from sqlalchemy import text

revision = "0012_budget_forecast_in_family"
down_revision = "0011_budget_alert_family"
branch_labels = None
depends_on = None

FAMILY = "LLMBudget"
LEVELS = (  # lowest first
    "LLMBudgetInfo",
    "LLMBudgetForecastOverrun",
    "LLMBudgetWarning",
    "LLMBudgetCritical",
    "LLMBudgetExceeded",
)
_NAMES = ", ".join(f"'{name}'" for name in LEVELS)
ACTOR = {"by": "llmcost", "via": "upgrade"}


def fingerprint(alertname: str, labels: dict[str, str]) -> str:
    """`alerting.model.fingerprint` without the family mapping."""
    identity = sorted({**labels, "alertname": alertname}.items())
    canonical = json.dumps(identity, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def families(rows: list[Any]) -> dict[str, list[Any]]:
    """Open level rows by their family fingerprint; rows whose fingerprint llmcost did not compute are left out."""
    out: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        labels = json.loads(row.labels)
        family = fingerprint(FAMILY, labels)
        if row.fingerprint in (family, fingerprint(row.alertname, labels)):
            out[family].append(row)
    return out


def kept_row(family: str, rows: list[Any]) -> Any:
    """The row that stays the instance's alert: the highest level (a forecast people were told of beats an
    info level that went nowhere), then one keyed by family already, then the last."""
    ranked = enumerate(rows)  # rows come oldest first
    return max(ranked, key=lambda p: (LEVELS.index(p[1].alertname), p[1].fingerprint == family, p[0]))[1]


def upgrade() -> None:
    conn = op.get_bind()
    now = time.time()
    merge_gateway_alerts(conn, now)
    merge_pushed_alerts(conn, now)


def merge_gateway_alerts(conn: Any, now: float) -> None:
    """`alerts`: per instance, the kept level re-keyed by family and the others resolved."""
    rows = conn.execute(
        text(
            "SELECT id, fingerprint, alertname, labels, annotations, severity, state, source, starts_at, notify_seq, "
            "acknowledged_by, acknowledged_at, generator_url, group_key, truncated_alerts FROM alerts "
            f"WHERE state <> 'resolved' AND alertname IN ({_NAMES}) ORDER BY id"
        )
    ).all()
    for family, members in families(rows).items():
        kept = kept_row(family, members)
        for row in members:
            if row is not kept:
                resolve_superseded(conn, row, kept.id, now)
        if kept.fingerprint != family:
            conn.execute(text("UPDATE alerts SET fingerprint = :fp WHERE id = :id"), {"fp": family, "id": kept.id})


def resolve_superseded(conn: Any, row: Any, kept_id: int, now: float) -> None:
    """Resolve `row` as the gateway does: state, audit row, and one resolve notification per notified channel."""
    seq = int(row.notify_seq or 0) + 1
    conn.execute(
        text(
            "UPDATE alerts SET state = 'resolved', resolved_at = :now, updated_at = :now, silence_id = NULL, "
            "notify_seq = :seq WHERE id = :id"
        ),
        {"now": now, "seq": seq, "id": row.id},
    )
    comment = f"the forecast is a level of the budget's one alert since this release: superseded by alert {kept_id}"
    conn.execute(
        text(
            'INSERT INTO alert_events (alert_id, at, action, from_state, to_state, "by", via, comment) '
            "VALUES (:id, :now, 'resolved', :state, 'resolved', :by, :via, :comment)"
        ),
        {"id": row.id, "now": now, "state": row.state, "comment": comment, **ACTOR},
    )
    channels = conn.execute(
        text("SELECT channel FROM alert_channels WHERE alert_id = :id ORDER BY channel"), {"id": row.id}
    ).scalars()
    payload = json.dumps(
        {"actor": {**ACTOR, "comment": comment}, "alert": snapshot(row, now), "previous_severity": None},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    for channel in list(channels):
        conn.execute(
            text(
                "INSERT INTO notification_outbox (alert_id, channel, seq, kind, payload, status, attempts, "
                "next_attempt_at, created_at, updated_at) "
                "VALUES (:id, :channel, :seq, 'resolved', :payload, 'pending', 0, :now, :now, :now)"
            ),
            {"id": row.id, "channel": channel, "seq": seq, "payload": payload, "now": now},
        )


def snapshot(row: Any, now: float) -> dict[str, Any]:
    """The resolved alert as an outbox row carries it (`alerting.gateway.records.snapshot` at this revision)."""

    def iso(seconds: float | None) -> str | None:
        return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")

    return {
        "id": row.id,
        "fingerprint": row.fingerprint,
        "alertname": row.alertname,
        "labels": json.loads(row.labels),
        "annotations": json.loads(row.annotations),
        "severity": row.severity,
        "state": "resolved",
        "starts_at": iso(row.starts_at),
        "acknowledged_by": row.acknowledged_by,
        "acknowledged_at": iso(row.acknowledged_at),
        "resolved_at": iso(now),
        "silenced": None,
        "source": row.source,
        "generator_url": row.generator_url or "",
        "group_key": row.group_key or "",
        "truncated_alerts": int(row.truncated_alerts or 0),
    }


def merge_pushed_alerts(conn: Any, now: float) -> None:
    """`alertmanager_alerts`: the kept level re-keyed by family, the others kept as ended earlier levels."""
    rows = conn.execute(
        text(
            "SELECT fingerprint, alertname, labels FROM alertmanager_alerts "
            f"WHERE ends_at IS NULL AND alertname IN ({_NAMES}) ORDER BY starts_at, fingerprint"
        )
    ).all()
    for family, members in families(rows).items():
        kept = kept_row(family, members)
        for row in members:
            if row is kept:
                continue
            # `alerting.push.sink.level_key` at this revision: the row key of an earlier level of `family`.
            key = "L" + hashlib.sha256(f"{family}:{row.alertname}".encode()).hexdigest()[:24]
            conn.execute(text("DELETE FROM alertmanager_alerts WHERE fingerprint = :key"), {"key": key})
            conn.execute(
                text(
                    "UPDATE alertmanager_alerts SET fingerprint = :key, ends_at = :now, updated_at = :now "
                    "WHERE fingerprint = :fp"
                ),
                {"key": key, "now": now, "fp": row.fingerprint},
            )
        if kept.fingerprint != family:
            # A row of an earlier occurrence may hold the key, ended: the open one takes its place.
            conn.execute(text("DELETE FROM alertmanager_alerts WHERE fingerprint = :fp"), {"fp": family})
            conn.execute(
                text("UPDATE alertmanager_alerts SET fingerprint = :family WHERE fingerprint = :fp"),
                {"family": family, "fp": kept.fingerprint},
            )


def downgrade() -> None:
    pass
