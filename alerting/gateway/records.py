"""Conversions between stored rows, `alerting.model.Alert`, JSON snapshots and the API's JSON shape."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from alerting.model import Actor, Alert, Reopened, Silence

API_FIELDS = (
    "id",
    "fingerprint",
    "alertname",
    "labels",
    "annotations",
    "severity",
    "state",
    "starts_at",
    "acknowledged_by",
    "acknowledged_at",
    "resolved_at",
    "silenced",
)
"""The fields of an alert in `GET /v1/alerts` (docs/http-api.md), in order."""


def dumps(value: Any) -> str:
    """Compact JSON text with sorted keys (stable for digests and diffs)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def loads(text: str | bytes | None) -> Any:
    """Parse JSON text; None stays None."""
    return None if text is None else orjson.loads(text)


def to_datetime(seconds: float | None) -> datetime | None:
    """An aware UTC datetime from epoch seconds."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def rfc3339(seconds: float | None) -> str | None:
    """RFC 3339 text (`2026-11-23T10:00:00Z`, microseconds when there are any) from epoch seconds."""
    value = to_datetime(seconds)
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    """Epoch seconds from an RFC 3339 timestamp with an explicit offset; ValueError otherwise."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None or "T" not in text.upper():
        raise ValueError(f"not an RFC 3339 timestamp with a time zone: {text!r}")
    return value.timestamp()


def alert_from_row(row: Any) -> Alert:
    """The `Alert` a row of the `alerts` table describes."""
    m = row._mapping
    return Alert(
        id=int(m["id"]),
        fingerprint=m["fingerprint"],
        alertname=m["alertname"],
        labels=dict(loads(m["labels"])),
        annotations=dict(loads(m["annotations"])),
        severity=m["severity"],
        state=m["state"],
        source=m["source"],
        starts_at=datetime.fromtimestamp(m["starts_at"], UTC),
        acknowledged_by=m["acknowledged_by"],
        acknowledged_at=to_datetime(m["acknowledged_at"]),
        resolved_at=to_datetime(m["resolved_at"]),
        generator_url=m["generator_url"] or "",
        group_key=m["group_key"] or "",
        truncated_alerts=int(m["truncated_alerts"] or 0),
        silence=Silence(m["silence_id"]) if m.get("silence_id") else None,
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def api_alert(alert: Alert) -> dict[str, Any]:
    """The alert as `GET /v1/alerts` shows it: exactly the fields docs/http-api.md lists, times in RFC 3339."""
    return {
        "id": alert.id,
        "fingerprint": alert.fingerprint,
        "alertname": alert.alertname,
        "labels": dict(sorted(alert.labels.items())),
        "annotations": dict(sorted(alert.annotations.items())),
        "severity": alert.severity,
        "state": alert.state,
        "starts_at": _iso(alert.starts_at),
        "acknowledged_by": alert.acknowledged_by,
        "acknowledged_at": _iso(alert.acknowledged_at),
        "resolved_at": _iso(alert.resolved_at),
        "silenced": silence_json(alert.silence),
    }


def silence_json(silence: Silence | None) -> dict[str, Any] | None:
    """The Alertmanager silence holding an alert, as the API shows it (None when none does)."""
    if silence is None:
        return None
    return {"silence_id": silence.id, "by": silence.by, "comment": silence.comment, "ends_at": _iso(silence.ends_at)}


def silence_from_json(data: Mapping[str, Any] | None) -> Silence | None:
    """The `Silence` `silence_json` shows."""
    if not data:
        return None
    return Silence(data["silence_id"], data.get("by", ""), data.get("comment", ""), _parse_dt(data.get("ends_at")))


def snapshot(alert: Alert) -> dict[str, Any]:
    """Everything about an alert a notification needs, as JSON (stored with each outbox row)."""
    return {
        **api_alert(alert),
        "source": alert.source,
        "generator_url": alert.generator_url,
        "group_key": alert.group_key,
        "truncated_alerts": alert.truncated_alerts,
    }


def _parse_dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


def alert_from_snapshot(data: Mapping[str, Any]) -> Alert:
    """Rebuild the `Alert` a snapshot was taken of."""
    starts_at = _parse_dt(data["starts_at"])
    assert starts_at is not None
    return Alert(
        id=data["id"],
        fingerprint=data["fingerprint"],
        alertname=data["alertname"],
        labels=dict(data["labels"]),
        annotations=dict(data["annotations"]),
        severity=data["severity"],
        state=data["state"],
        source=data["source"],
        starts_at=starts_at,
        acknowledged_by=data["acknowledged_by"],
        acknowledged_at=_parse_dt(data["acknowledged_at"]),
        resolved_at=_parse_dt(data["resolved_at"]),
        generator_url=data.get("generator_url", ""),
        group_key=data.get("group_key", ""),
        truncated_alerts=int(data.get("truncated_alerts", 0)),
        silence=silence_from_json(data.get("silenced")),
    )


def actor_json(actor: Actor | None) -> dict[str, str] | None:
    """An `Actor` as JSON."""
    return None if actor is None else {"by": actor.by, "via": actor.via, "comment": actor.comment}


def actor_from_json(data: Mapping[str, Any] | None) -> Actor | None:
    """The `Actor` stored by `actor_json`."""
    return None if not data else Actor(by=data["by"], via=data["via"], comment=data.get("comment", ""))


def reopened_json(reopened: Reopened | None) -> dict[str, str] | None:
    """A `Reopened` as JSON."""
    if reopened is None:
        return None
    return {"by": reopened.by, "via": reopened.via, "alertname": reopened.alertname, "severity": reopened.severity}


def reopened_from_json(data: Mapping[str, Any] | None) -> Reopened | None:
    """The `Reopened` stored by `reopened_json`."""
    return None if not data else Reopened(**{k: str(data[k]) for k in ("by", "via", "alertname", "severity")})
