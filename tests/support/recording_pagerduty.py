"""A loopback stand-in for the PagerDuty Events API v2, refusing invalid events as PagerDuty does, for tests."""

from __future__ import annotations

from typing import Any

from tests.support.recording_base import RecordedRequest, RecordingServer, Response


class PagerDutyEventsServer(RecordingServer):
    """Answers like `https://events.pagerduty.com/v2/enqueue`, including its 400 for invalid events."""

    @property
    def events_url(self) -> str:
        return self.url + "v2/enqueue"

    @property
    def events(self) -> list[dict[str, Any]]:
        """The JSON bodies received, in order."""
        return [r.json for r in self.requests if isinstance(r.json, dict)]

    def default_response(self, request: RecordedRequest) -> Response:
        event = request.json if isinstance(request.json, dict) else None
        errors = _event_errors(event)
        if errors:
            body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
            return Response(400, {}, body)
        assert event is not None
        dedup_key = event.get("dedup_key") or f"generated-{len(self.requests)}"
        return Response(202, {}, {"status": "success", "message": "Event processed", "dedup_key": dedup_key})


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
