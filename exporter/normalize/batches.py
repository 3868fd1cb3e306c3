"""Batch API result lines: OpenAI's Batch API output file and Anthropic's Message Batches results.

Batch calls cost half the standard price, and the result files are where their usage is: one JSON
line per request, which users feed to `llmcost ingest` as they download them.

- OpenAI (`/v1/batches` output file): `{"id": "batch_req_…", "custom_id": …, "response": {"status_code":
  200, "request_id": …, "body": <a Chat Completions or Responses object>}, "error": null}`. The body
  says `service_tier: "default"`: the batch is known only from the line's shape, so the event is
  marked `service_tier: batch`.
- Anthropic (`/v1/messages/batches/{id}/results`): `{"custom_id": …, "result": {"type": "succeeded",
  "message": <a Message>}}`; its usage already says `service_tier: "batch"`.

The body is read as the response it is (`responses.event_from_response`: its id is the request id, so
a file ingested twice counts once; its content is dropped). The `custom_id` is kept in metadata. A
request that failed, expired or was canceled is not billed and has no usage: it is rejected, saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.events import InvalidEvent
from exporter.normalize.responses import event_from_response, response_kind


def is_batch_result(raw: Mapping[str, Any]) -> bool:
    """Tell whether `raw` is one line of an OpenAI or Anthropic batch results file."""
    return "custom_id" in raw and (isinstance(raw.get("response"), Mapping) or isinstance(raw.get("result"), Mapping))


def batch_result_of(usage: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The batch result line an event's `usage` is, if it is one: the whole line, or an OpenAI line's `response`.

    `{"status_code", "request_id", "body"}` is the `response` of an OpenAI batch output line and
    nothing else's: given alone, it is read as the line it came from (without its `custom_id`).
    """
    if is_batch_result(usage):
        return usage
    if isinstance(usage.get("body"), Mapping) and "status_code" in usage:
        return {"custom_id": None, "response": usage, "error": None}
    return None


def event_from_batch_result(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The event (with its provider `usage`, for `event_from_usage`) of one batch result line."""
    if isinstance(raw.get("result"), Mapping):
        result = raw["result"]
        if result.get("type") != "succeeded":
            raise InvalidEvent(
                "result.type", f"is {result.get('type')!r}: a request that did not succeed is not billed"
            )
        body, where = result.get("message"), "result.message"
    else:
        response = raw["response"]
        status = response.get("status_code")
        if raw.get("error") is not None or (isinstance(status, int) and status >= 400):
            raise InvalidEvent("response.status_code", f"is {status!r}: a failed batch request is not billed")
        body, where = response.get("body"), "response.body"
    kind = response_kind(body) if isinstance(body, Mapping) else None
    if kind is None or not isinstance(body, Mapping) or not isinstance(body.get("usage"), Mapping):
        raise InvalidEvent(where, "must be a Chat Completions, Responses or Messages object with its usage")
    out = event_from_response(body, kind)
    out["service_tier"] = "batch"
    custom_id = raw.get("custom_id")
    if isinstance(custom_id, str) and isinstance(out.get("metadata"), dict):
        out["metadata"] = {**out["metadata"], "batch_custom_id": custom_id}
    return out
