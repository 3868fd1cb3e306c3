"""A loopback stand-in for the PagerDuty Events API v2, refusing invalid events as PagerDuty does, for tests.

It also keeps PagerDuty's incidents, as PagerDuty documents them (support.pagerduty.com "Incidents"; the
Events API's `trigger`/`acknowledge`/`resolve`):

- a `trigger` with a `dedup_key` that has no open (triggered or acknowledged) incident opens a new
  incident, which pages the on-call;
- a `trigger` on an open incident is only appended to its log: nobody is paged, and an acknowledged
  incident stays acknowledged (a resolved incident cannot be triggered again; a new one is opened);
- `acknowledge` and `resolve` change the open incident, and are ignored when there is none.

Every change of an incident is also kept as the webhook v3 body PagerDuty would send about it
(`webhooks`), so a test can deliver it to llmcost as PagerDuty would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.support.recording_base import RecordedRequest, RecordingServer, Response


@dataclass
class Incident:
    """One PagerDuty incident: opened by a trigger, then acknowledged or resolved."""

    number: int
    dedup_key: str
    created_at: float
    severity: str
    summary: str
    status: str = "triggered"  # triggered | acknowledged | resolved
    log: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"PINC{self.number:04d}"

    @property
    def open(self) -> bool:
        return self.status != "resolved"


class PagerDutyEventsServer(RecordingServer):
    """Answers like `https://events.pagerduty.com/v2/enqueue`, including its 400 for invalid events."""

    def __init__(self, *, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        """PagerDuty's own clock: an incident's `created_at`."""
        self.incidents: list[Incident] = []
        self.webhooks: list[dict[str, Any]] = []
        """The webhook v3 bodies PagerDuty would send about its incidents' changes, in order."""
        self._state = threading.Lock()
        self._failures: list[tuple[str, int]] = []

    @property
    def events_url(self) -> str:
        return self.url + "v2/enqueue"

    @property
    def events(self) -> list[dict[str, Any]]:
        """The JSON bodies received, in order."""
        return [r.json for r in self.requests if isinstance(r.json, dict)]

    @property
    def pages(self) -> list[Incident]:
        """The incidents that paged someone: every incident opened (a trigger on an open one pages nobody)."""
        return list(self.incidents)

    def open_incident(self, dedup_key: str) -> Incident | None:
        """The triggered or acknowledged incident with this key, if there is one."""
        return next((i for i in reversed(self.incidents) if i.dedup_key == dedup_key and i.open), None)

    def acknowledge_in_pagerduty(self, dedup_key: str, *, by: str = "Bob Oncall") -> dict[str, Any]:
        """A responder acknowledges the open incident in PagerDuty; returns the webhook PagerDuty sends."""
        with self._state:
            incident = self.open_incident(dedup_key)
            assert incident is not None, f"no open incident for {dedup_key}"
            return self._change(incident, "acknowledged", by, f"acknowledged by {by}")

    def fail_next(self, action: str, status: int = 500) -> None:
        """Refuse the next event with this `event_action` with `status`, changing no incident."""
        with self._state:
            self._failures.append((action, status))

    def default_response(self, request: RecordedRequest) -> Response:
        event = request.json if isinstance(request.json, dict) else None
        errors = _event_errors(event)
        if errors:
            body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
            return Response(400, {}, body)
        assert event is not None
        dedup_key = event.get("dedup_key") or f"generated-{len(self.requests)}"
        with self._state:
            failure = next((f for f in self._failures if f[0] == event["event_action"]), None)
            if failure is not None:
                self._failures.remove(failure)
                return Response(failure[1], {}, {"status": "error", "message": "try again later"})
            self._apply(event, dedup_key)
        return Response(202, {}, {"status": "success", "message": "Event processed", "dedup_key": dedup_key})

    def _apply(self, event: dict[str, Any], dedup_key: str) -> None:
        action = event["event_action"]
        incident = self.open_incident(dedup_key)
        if action == "trigger":
            payload = event["payload"]
            if incident is not None:  # deduplicated: logged, nobody paged, the status stays
                incident.log.append(f"trigger appended ({payload['severity']}): {payload['summary']}")
                return
            incident = Incident(
                len(self.incidents) + 1, dedup_key, self.clock(), payload["severity"], payload["summary"]
            )
            incident.log.append(f"triggered ({payload['severity']}): {payload['summary']}")
            self.incidents.append(incident)
            self.webhooks.append(self._webhook(incident, "incident.triggered", "llmcost"))
        elif incident is None:
            return  # acknowledge or resolve with no open incident: ignored
        elif action == "acknowledge" and incident.status == "triggered":
            self._change(incident, "acknowledged", "llmcost", "acknowledged through the Events API")
        elif action == "resolve":
            self._change(incident, "resolved", "llmcost", "resolved through the Events API")

    def _change(self, incident: Incident, status: str, agent: str, note: str) -> dict[str, Any]:
        incident.status = status
        incident.log.append(note)
        webhook = self._webhook(incident, f"incident.{status}", agent)
        self.webhooks.append(webhook)
        return webhook

    def _webhook(self, incident: Incident, event_type: str, agent: str) -> dict[str, Any]:
        def iso(seconds: float) -> str:
            return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")

        return {
            "event": {
                "id": f"EV{len(self.webhooks) + 1:04d}",
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": iso(self.clock()),
                "agent": {"id": "PAGENT1", "summary": agent, "type": "user_reference"},
                "data": {
                    "id": incident.id,
                    "type": "incident",
                    "number": incident.number,
                    "status": incident.status,
                    "incident_key": incident.dedup_key,
                    "created_at": iso(incident.created_at),
                    "title": incident.summary,
                },
            }
        }


def _event_errors(event: dict[str, Any] | None) -> list[str]:
    if event is None:
        return ["Event must be a JSON object"]
    errors = []
    if len(str(event.get("routing_key", ""))) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    if action in ("acknowledge", "resolve") and not event.get("dedup_key"):
        errors.append("'dedup_key' is required for acknowledge and resolve events")
    if action == "trigger":
        payload = event.get("payload") or {}
        for key in ("summary", "source", "severity"):
            if not payload.get(key):
                errors.append(f"'payload.{key}' is missing or blank")
        if len(str(payload.get("summary", ""))) > 1024:
            errors.append("'payload.summary' is too long (max 1024 characters)")
        if payload.get("severity") not in (None, "critical", "error", "warning", "info"):
            errors.append("'payload.severity' is invalid")
    return errors
