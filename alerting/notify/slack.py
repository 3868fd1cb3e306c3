"""Slack: one living message per alert, posted when it fires and updated as it is acknowledged or resolved.

The first notification posts a Block Kit message with an Acknowledge button (`action_id` `llmcost_ack`,
`value` = the alert id) and returns `{"channel": <channel id>, "ts": <message ts>}` as the reference. Every
later notification carrying that reference updates the same message (`chat.update`); reminders (repeat,
escalated, unacknowledged) also reply in the message's thread, because an edit alone notifies nobody.
"""

from __future__ import annotations

import http.client
import math
from collections.abc import Mapping
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from alerting.model import DeliveryResult, Notification, NotificationKind
from alerting.notify.base import one_line, parse_retry_after, redact
from alerting.notify.digest import ACK_DIGEST_ACTION_ID, Digest
from alerting.notify.templating import context, render
from alerting.notify.text_limits import (
    SLACK_BLOCKS_MAX,
    SLACK_BUTTON_TEXT_MAX,
    SLACK_FIELD_TEXT_MAX,
    SLACK_FIELDS_PER_SECTION,
    SLACK_HEADER_TEXT_MAX,
    SLACK_MESSAGE_TEXT_MAX,
    SLACK_SECTION_TEXT_MAX,
    escape_mrkdwn,
    more_note,
    split_overflow,
    truncate,
    truncate_mrkdwn,
    web_url,
)

DEFAULT_API_URL = "https://slack.com/api/"

ACK_ACTION_ID = "llmcost_ack"
UNACK_ACTION_ID = "llmcost_unack"
RUNBOOK_ACTION_ID = "llmcost_runbook"  # link buttons: Slack still sends an interaction, which can be ignored
SOURCE_ACTION_ID = "llmcost_source"

MAX_LABEL_FIELDS = 2 * SLACK_FIELDS_PER_SECTION
MAX_ANNOTATION_SECTIONS = 5

# Reminders: the living message is edited, and a thread reply makes the edit noticed.
_REMINDERS = frozenset({NotificationKind.REPEAT, NotificationKind.ESCALATED, NotificationKind.UNACKNOWLEDGED})
# chat.update errors meaning the living message is gone: post a new one instead.
_MESSAGE_GONE = frozenset({"message_not_found", "cant_update_message"})
# ok:false errors that are Slack's trouble, not ours.
_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def _mrkdwn(text: str, limit: int = SLACK_SECTION_TEXT_MAX) -> dict[str, Any]:
    # verbatim: no automatic linking of URLs, channel names or mentions in text we did not write.
    return {"type": "mrkdwn", "text": truncate_mrkdwn(text, limit), "verbatim": True}


def _key_value(key: str, value: str, limit: int) -> dict[str, Any]:
    url = web_url(value)
    # verbatim turns off automatic linking, so web links are made links explicitly.
    shown = f"<{escape_mrkdwn(url)}>" if url else escape_mrkdwn(value)
    return _mrkdwn(f"*{escape_mrkdwn(key)}*\n{shown}", limit)


def _label_sections(labels: list[tuple[str, str]]) -> list[dict[str, Any]]:
    shown, hidden = split_overflow(labels, MAX_LABEL_FIELDS)
    fields = [_key_value(key, value, SLACK_FIELD_TEXT_MAX) for key, value in shown]
    if hidden:
        fields.append(_mrkdwn(f"_{more_note(hidden, 'labels')}_"))
    return [
        {"type": "section", "fields": fields[i : i + SLACK_FIELDS_PER_SECTION]}
        for i in range(0, len(fields), SLACK_FIELDS_PER_SECTION)
    ]


def _annotation_blocks(annotations: list[tuple[str, str]]) -> list[dict[str, Any]]:
    shown, hidden = split_overflow(annotations, MAX_ANNOTATION_SECTIONS)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _key_value(key, value, SLACK_SECTION_TEXT_MAX)} for key, value in shown
    ]
    if hidden:
        blocks.append({"type": "context", "elements": [_mrkdwn(f"_{more_note(hidden, 'annotations')}_")]})
    return blocks


def _button(text: str, action_id: str, **extra: str) -> dict[str, Any]:
    label = truncate(text, SLACK_BUTTON_TEXT_MAX)
    return {"type": "button", "text": {"type": "plain_text", "text": label}, "action_id": action_id, **extra}


def _actions(notification: Notification, runbook_url: str, generator_url: str) -> list[dict[str, Any]]:
    alert_id = notification.alert.id
    buttons = []
    if alert_id is not None and notification.kind is NotificationKind.ACKNOWLEDGED:
        buttons.append(_button("Unacknowledge", UNACK_ACTION_ID, value=str(alert_id)))
    elif alert_id is not None and notification.kind is not NotificationKind.RESOLVED:
        buttons.append(_button("Acknowledge", ACK_ACTION_ID, value=str(alert_id), style="primary"))
    if runbook_url:
        buttons.append(_button("Runbook", RUNBOOK_ACTION_ID, url=runbook_url))
    if generator_url:
        buttons.append(_button("Source", SOURCE_ACTION_ID, url=generator_url))
    return buttons


def build_message(notification: Notification) -> dict[str, Any]:
    """Build the `text` and `blocks` of the message showing this notification, within Slack's limits."""
    ctx = context(notification)
    title = truncate(render("slack.title", notification), SLACK_HEADER_TEXT_MAX)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
        {"type": "section", "text": _mrkdwn(render("slack.body", notification))},
        *_label_sections(ctx["labels"]),
        *_annotation_blocks(ctx["other_annotations"]),
        {"type": "context", "elements": [_mrkdwn(render("slack.status", notification))]},
    ]
    buttons = _actions(notification, ctx["runbook_url"], ctx["generator_url"])
    if buttons:
        blocks.append({"type": "actions", "block_id": "llmcost_actions", "elements": buttons})
    assert len(blocks) <= SLACK_BLOCKS_MAX, "bounded by MAX_LABEL_FIELDS and MAX_ANNOTATION_SECTIONS"
    text = truncate_mrkdwn(render("slack.text", notification), SLACK_MESSAGE_TEXT_MAX)
    return {"text": text, "blocks": blocks}


def build_digest_message(digest: Digest) -> dict[str, Any]:
    """The `text` and `blocks` of one message listing a digest's notifications (see `alerting.notify.digest`)."""
    listed, hidden = digest.lines()
    items = "\n".join(f"• {escape_mrkdwn(item)}" for item in listed)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": truncate(digest.title(), SLACK_HEADER_TEXT_MAX)}},
        {"type": "section", "text": _mrkdwn(items)},
    ]
    if hidden:
        blocks.append({"type": "context", "elements": [_mrkdwn(f"_and {hidden} more_")]})
    if digest.acknowledgeable:
        button = _button("Acknowledge all", ACK_DIGEST_ACTION_ID, value=digest.key, style="primary")
        blocks.append({"type": "actions", "block_id": "llmcost_actions", "elements": [button]})
    return {"text": truncate_mrkdwn(escape_mrkdwn(digest.title()), SLACK_MESSAGE_TEXT_MAX), "blocks": blocks}


def _living_message(reference: Mapping[str, Any] | None) -> tuple[str, str] | None:
    if not reference:
        return None
    channel, ts = reference.get("channel"), reference.get("ts")
    if isinstance(channel, str) and isinstance(ts, str) and channel and ts:
        return channel, ts
    return None


def _api_error_code(error: SlackApiError) -> str:
    data = error.response.data
    code = data.get("error") if isinstance(data, dict) else None
    return str(code) if code else f"HTTP {error.response.status_code}"


class SlackNotifier:
    """Posts and updates alert messages through the Slack Web API."""

    channel = "slack"

    def __init__(
        self,
        *,
        token: str,
        channel: str,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 10.0,
    ) -> None:
        self.slack_channel = channel
        self._token = token
        base_url = api_url if api_url.endswith("/") else api_url + "/"
        # No retry handlers: a 429 or an outage must reach the outbox, which honours Retry-After durably.
        # slack_sdk takes the timeout in whole seconds.
        self._client = WebClient(token=token, base_url=base_url, timeout=max(1, math.ceil(timeout)), retry_handlers=[])

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SlackNotifier:
        """Build from the `notifications.slack` config (secrets resolved); ignores `signing_secret`."""
        missing = [key for key in ("token", "channel") if not config.get(key)]
        if missing:
            raise ValueError(f"notifications.slack: missing {', '.join(missing)}")
        return cls(
            token=str(config["token"]),
            channel=str(config["channel"]),
            api_url=str(config.get("api_url") or DEFAULT_API_URL),
            timeout=float(config.get("timeout_seconds", 10.0)),
        )

    def send(self, notification: Notification) -> DeliveryResult:
        """Post or update the alert's message; see the module docstring."""
        method = "chat.postMessage"
        try:
            message = build_message(notification)
            living = _living_message(notification.reference)
            if living is not None:
                method = "chat.update"
                response = self._update(living, message)
                if response is None:  # the message was deleted: start a new living one
                    method = "chat.postMessage"
                    response = self._post(message)
                elif notification.kind in _REMINDERS:
                    method = "chat.postMessage (thread reply)"
                    self._client.chat_postMessage(
                        channel=living[0],
                        thread_ts=living[1],
                        text=render("slack.reply", notification),
                        unfurl_links=False,
                        unfurl_media=False,
                    )
            else:
                response = self._post(message)
        except SlackApiError as error:
            return self._api_failure(method, error)
        except (OSError, http.client.HTTPException) as error:  # timeouts, refused or reset connections
            return DeliveryResult.retry(self._redact(f"slack {method}: {type(error).__name__}: {error}"))
        except SlackClientError as error:  # bad arguments or configuration: retrying will not help
            return DeliveryResult.fail(self._redact(f"slack {method}: {type(error).__name__}: {error}"))
        return DeliveryResult.sent({"channel": str(response["channel"]), "ts": str(response["ts"])})

    def send_digest(self, digest: Digest) -> DeliveryResult:
        """Post one new message listing the digest's notifications; its reference is that message."""
        try:
            response = self._post(build_digest_message(digest))
        except SlackApiError as error:
            return self._api_failure("chat.postMessage", error)
        except (OSError, http.client.HTTPException) as error:
            return DeliveryResult.retry(self._redact(f"slack chat.postMessage: {type(error).__name__}: {error}"))
        except SlackClientError as error:
            return DeliveryResult.fail(self._redact(f"slack chat.postMessage: {type(error).__name__}: {error}"))
        return DeliveryResult.sent({"channel": str(response["channel"]), "ts": str(response["ts"])})

    def _post(self, message: dict[str, Any]) -> SlackResponse:
        return self._client.chat_postMessage(
            channel=self.slack_channel, unfurl_links=False, unfurl_media=False, **message
        )

    def _update(self, living: tuple[str, str], message: dict[str, Any]) -> SlackResponse | None:
        try:
            return self._client.chat_update(channel=living[0], ts=living[1], **message)
        except SlackApiError as error:
            if _api_error_code(error) in _MESSAGE_GONE:
                return None
            raise

    def _api_failure(self, method: str, error: SlackApiError) -> DeliveryResult:
        status = error.response.status_code
        code = _api_error_code(error)
        text = self._redact(f"slack {method}: {one_line(code, 200)} (HTTP {status})")
        if status == 429 or code == "ratelimited":
            return DeliveryResult.retry(text, retry_after=parse_retry_after(error.response.headers or {}))
        if status >= 500 or code in _TRANSIENT_ERRORS:
            return DeliveryResult.retry(text)
        return DeliveryResult.fail(text)

    def _redact(self, text: str) -> str:
        return redact(text, [self._token])
