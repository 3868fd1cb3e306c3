"""Slack: one living message per alert, posted when it fires and updated as it is acknowledged or resolved.

The first notification posts a Block Kit message with an Acknowledge button (`action_id` `llmcost_ack`,
`value` = the alert id) and returns `{"channel": <channel id>, "ts": <message ts>}` as the reference. Every
later notification carrying that reference updates the same message (`chat.update`); reminders (repeat,
escalated, unacknowledged) also reply in the message's thread, because an edit alone notifies nobody.
An alert listed in a grouped message has no message of its own: its reminder, (un)acknowledgement and
resolve reply in the grouped message's thread (`GROUP_THREAD_KINDS`), the reminder and the
unacknowledgement also shown in the channel.

Slack has no idempotency key, and a post whose answer was lost (a timeout, a dropped connection, a
gateway killed before it recorded the `ts`) may have been posted all the same. Every new message
therefore carries message metadata naming its outbox row (`event_type` `llmcost_notification`); before
posting again for a row an earlier attempt may have delivered, the notifier looks for that message among
the channel's latest `HISTORY_LOOKBACK` messages (`conversations.history`, with the channel's id from
`conversations.list` when the config names it `#name`) and adopts it instead of posting a second one.
Thread replies carry the same metadata and are looked for in their thread (`conversations.replies`).
That lookup needs the `channels:read` and `channels:history` scopes (`groups:*` for a private channel;
`channels:read` is not needed when `channel` is given as its id, `C…`); without them the message is
posted again and a warning says so.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import math
import re
import socket
import urllib.error
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from alerting.model import DeliveryResult, Notification, NotificationKind
from alerting.notify.base import content_kind, one_line, parse_retry_after, redact
from alerting.notify.digest import ACK_DIGEST_ACTION_ID, GROUP_THREAD_KINDS, Digest
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
    visible,
    web_url,
)

log = logging.getLogger(__name__)


def _below_warning(record: logging.LogRecord) -> bool:
    return record.levelno < logging.WARNING


_SDK_LOG = logging.getLogger(f"{__name__}.sdk")
"""slack_sdk's own log. Every failure it logs at ERROR (an answer that is not JSON, quoting up to 100
characters of Slack's HTML error page; a failed connection) is also raised to the notifier, whose result
the outbox logs as one line per attempt: its copy, repeated on every retry, is dropped. Its DEBUG trace of
each request is kept, for `--log-level DEBUG`."""
_SDK_LOG.addFilter(_below_warning)

DEFAULT_API_URL = "https://slack.com/api/"
METADATA_EVENT_TYPE = "llmcost_notification"
"""Message metadata `event_type` of every new message; its `event_payload` names the outbox row and the
alert (`{"outbox_id": 7, "fingerprint": "…"}`): row numbers alone could match another llmcost's messages
in a shared channel."""
HISTORY_LOOKBACK = 200
"""Latest channel messages searched for an earlier attempt's post (an alert channel's last minutes)."""
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")

ACK_ACTION_ID = "llmcost_ack"
UNACK_ACTION_ID = "llmcost_unack"
RUNBOOK_ACTION_ID = "llmcost_runbook"  # link buttons: Slack still sends an interaction, which can be ignored
SOURCE_ACTION_ID = "llmcost_source"
DASHBOARD_ACTION_ID = "llmcost_dashboard"

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


def _actions(
    notification: Notification,
    runbook_url: str,
    generator_url: str,
    *,
    acknowledge: bool = True,
    dashboard_url: str = "",
) -> list[dict[str, Any]]:
    alert_id = None if not acknowledge else notification.alert.id
    buttons = []
    if alert_id is not None and notification.kind is NotificationKind.ACKNOWLEDGED:
        buttons.append(_button("Unacknowledge", UNACK_ACTION_ID, value=str(alert_id)))
    elif alert_id is not None and notification.kind is not NotificationKind.RESOLVED:
        buttons.append(_button("Acknowledge", ACK_ACTION_ID, value=str(alert_id), style="primary"))
    if runbook_url:
        buttons.append(_button("Runbook", RUNBOOK_ACTION_ID, url=runbook_url))
    if generator_url:
        buttons.append(_button("Source", SOURCE_ACTION_ID, url=generator_url))
    if dashboard_url:
        buttons.append(_button("Dashboard", DASHBOARD_ACTION_ID, url=dashboard_url))
    return buttons


def build_message(notification: Notification, *, acknowledge: bool = True) -> dict[str, Any]:
    """Build the `text` and `blocks` of the message showing this notification, within Slack's limits.

    `acknowledge`: with the Acknowledge / Unacknowledge button (only when llmcost can verify the clicks).
    """
    ctx = context(notification)
    title = truncate(render("slack.title", notification), SLACK_HEADER_TEXT_MAX)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
        {"type": "section", "text": _mrkdwn(render("slack.body", notification))},
        *_label_sections(ctx["labels"]),
        *_annotation_blocks(ctx["other_annotations"]),
        {"type": "context", "elements": [_mrkdwn(render("slack.status", notification))]},
    ]
    buttons = _actions(
        notification,
        ctx["runbook_url"],
        ctx["generator_url"],
        acknowledge=acknowledge,
        dashboard_url=ctx["dashboard_url"],
    )
    if buttons:
        blocks.append({"type": "actions", "block_id": "llmcost_actions", "elements": buttons})
    assert len(blocks) <= SLACK_BLOCKS_MAX, "bounded by MAX_LABEL_FIELDS and MAX_ANNOTATION_SECTIONS"
    text = truncate_mrkdwn(render("slack.text", notification), SLACK_MESSAGE_TEXT_MAX)
    return {"text": text, "blocks": blocks}


def build_digest_message(digest: Digest, *, acknowledge: bool = True) -> dict[str, Any]:
    """The `text` and `blocks` of one message listing a digest's notifications (see `alerting.notify.digest`)."""
    listed, hidden = digest.lines()
    items = "\n".join(f"• {escape_mrkdwn(item)}" for item in listed)
    title = truncate(visible(digest.title()), SLACK_HEADER_TEXT_MAX)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": title}}]
    reason = digest.reason()
    if reason:  # why they all ended (a period, a reset), as each alert's own message says it
        blocks.append({"type": "section", "text": _mrkdwn(escape_mrkdwn(reason))})
    blocks.append({"type": "section", "text": _mrkdwn(items)})
    if hidden:
        blocks.append({"type": "context", "elements": [_mrkdwn(f"_and {hidden} more_")]})
    if digest.acknowledgeable and acknowledge:
        button = _button("Acknowledge all", ACK_DIGEST_ACTION_ID, value=digest.key, style="primary")
        blocks.append({"type": "actions", "block_id": "llmcost_actions", "elements": [button]})
    text = digest.title() + (f"\n{reason}" if reason else "")  # what the push notification shows
    return {"text": truncate_mrkdwn(escape_mrkdwn(text), SLACK_MESSAGE_TEXT_MAX), "blocks": blocks}


def _group_thread(notification: Notification) -> tuple[str, str] | None:
    """The grouped message's (channel, ts) where an alert's reminder, resolve or acknowledgement is told, if any.

    The message is the one the alert is listed in (`alerting.gateway.grouping`). An escalation of a
    listed alert (`GROUP_THREAD_KINDS` leaves it out) is posted to the channel.
    """
    if notification.kind not in GROUP_THREAD_KINDS:
        return None
    digest = (notification.reference or {}).get("digest")
    return _living_message(digest) if isinstance(digest, Mapping) else None


def _shared_group_thread(digest: Digest) -> tuple[str, str] | None:
    """The one grouped message every alert of a reminder (resolve, (un)acknowledgement) digest is listed in, if any."""
    if digest.kind not in GROUP_THREAD_KINDS or not digest.group:
        return None
    threads = {_group_thread(n) for n in digest.notifications}
    return threads.pop() if len(threads) == 1 and None not in threads else None


def _broadcast(kind: NotificationKind | None) -> bool:
    """True for a reminder or an unacknowledgement told in a grouped message's thread: also shown in the channel.

    A thread reply notifies only the thread's followers, and nobody follows an alert nobody acknowledged
    (the only ones reminded): the reminder was a channel post before it moved into the thread, and must
    reach as many people there. An unacknowledgement re-opens a problem people stopped watching, and was
    a channel post too. Resolves and acknowledgements stay quiet replies, as for one alert.
    """
    return kind in _BROADCAST_KINDS


_BROADCAST_KINDS = frozenset({NotificationKind.REPEAT, NotificationKind.UNACKNOWLEDGED})


def _living_message(reference: Mapping[str, Any] | None) -> tuple[str, str] | None:
    if not reference:
        return None
    channel, ts = reference.get("channel"), reference.get("ts")
    if isinstance(channel, str) and isinstance(ts, str) and channel and ts:
        return channel, ts
    return None


def _never_connected(error: BaseException) -> bool:
    """True when the request cannot have reached Slack (connection refused, name not resolved).

    A timeout or a reset may come after Slack took the request in. urllib wraps the cause in `URLError`.
    """
    cause = error.reason if isinstance(error, urllib.error.URLError) else error
    return isinstance(cause, (ConnectionRefusedError, socket.gaierror))


def _maybe_processed(error: SlackApiError) -> bool:
    """Whether Slack may have carried out a call it answered with this error.

    Slack documents `internal_error` and `fatal_error` as possibly done in part; a 500, 502 or 504 comes
    from behind the edge, after the request went in. A 429 or 503 means it was not looked at.
    """
    return error.response.status_code in (500, 502, 504) or _api_error_code(error) in ("internal_error", "fatal_error")


def _api_error_code(error: SlackApiError) -> str:
    """Slack's error code, or what the answer was when it was not the API's JSON (never its body)."""
    kind = content_kind(error.response.headers or {})
    if kind and kind != "application/json" and not kind.endswith("+json"):
        # Slack's edge (or a proxy) answers an outage with an HTML page, which slack_sdk quotes as the
        # `error`: a log line per retry full of markup. What it was is enough.
        what = "an HTML page" if kind == "text/html" else f"a {one_line(kind, 60)} answer"
        return f"{what}, not the API's JSON"
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
        acknowledge_buttons: bool = True,
    ) -> None:
        """`acknowledge_buttons`: show Acknowledge buttons (needs the signing secret to verify their clicks)."""
        self.slack_channel = channel
        self.acknowledge_buttons = acknowledge_buttons
        self._token = token
        self._channel_id = channel if _CHANNEL_ID.fullmatch(channel) else ""
        """The channel's id (conversations.history takes no `#name`): configured, or learnt from a post."""
        base_url = api_url if api_url.endswith("/") else api_url + "/"
        # No retry handlers: a 429 or an outage must reach the outbox, which honours Retry-After durably.
        # slack_sdk takes the timeout in whole seconds.
        self._client = WebClient(
            token=token, base_url=base_url, timeout=max(1, math.ceil(timeout)), retry_handlers=[], logger=_SDK_LOG
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SlackNotifier:
        """Build from the `notifications.slack` config (secrets resolved).

        Without a `signing_secret` the messages have no Acknowledge buttons: `POST /v1/slack/interactions`
        refuses every click it cannot verify, so the buttons would never work.
        """
        missing = [key for key in ("token", "channel") if not config.get(key)]
        if missing:
            raise ValueError(f"notifications.slack: missing {', '.join(missing)}")
        return cls(
            token=str(config["token"]),
            channel=str(config["channel"]),
            api_url=str(config.get("api_url") or DEFAULT_API_URL),
            timeout=float(config.get("timeout_seconds", 10.0)),
            acknowledge_buttons=bool(config.get("signing_secret")),
        )

    def send(self, notification: Notification) -> DeliveryResult:
        """Post or update the alert's message; see the module docstring."""
        method = "chat.postMessage"
        try:
            message = build_message(notification, acknowledge=self.acknowledge_buttons)
            living = _living_message(notification.reference)
            if living is not None:
                method = "chat.update"
                updated = self._update(living, message)
                if updated is None:  # the message was deleted: start a new living one
                    method = "chat.postMessage"
                    where = self._post_once(message, notification)
                else:
                    where = (str(updated["channel"]), str(updated["ts"]))
                if updated is not None and notification.kind in _REMINDERS:
                    method = "chat.postMessage (thread reply)"
                    self._reply_once(living, notification)
            elif (thread := _group_thread(notification)) is not None:
                # Listed in a grouped message: what happens to it next is told in that message's thread
                # (one problem, one thread), naming the alert; it keeps its place in the group.
                method = "chat.postMessage (thread reply)"
                self._reply_once(
                    thread, notification, text=str(message["text"]), broadcast=_broadcast(notification.kind)
                )
                return DeliveryResult.sent(dict(notification.reference or {}))
            elif notification.kind is NotificationKind.UPDATED:
                # New figures of an alert with no message of its own (listed in a grouped one): a new
                # top-level post would be a second thread for one problem; its resolve says them.
                return DeliveryResult.skip(dict(notification.reference or {}))
            else:
                where = self._post_once(message, notification)
        except SlackApiError as error:
            result = self._api_failure(method, error)
            if method.startswith("chat.postMessage") and result.retryable and _maybe_processed(error):
                return replace(result, maybe_delivered=True)
            return result
        except (OSError, http.client.HTTPException) as error:  # timeouts, refused or reset connections
            text = self._redact(f"slack {method}: {type(error).__name__}: {error}")
            lost = method.startswith("chat.postMessage") and not _never_connected(error)
            return DeliveryResult.retry(text, maybe_delivered=lost)
        except SlackClientError as error:  # bad arguments or configuration: retrying will not help
            return DeliveryResult.fail(self._redact(f"slack {method}: {type(error).__name__}: {error}"))
        return DeliveryResult.sent({"channel": where[0], "ts": where[1]})

    def send_digest(self, digest: Digest) -> DeliveryResult:
        """Post one new message listing the digest's notifications; its reference is that message.

        Like an alert's first message, it is looked for before being posted again when an earlier attempt
        may have posted it; it is recognised only with exactly the same rows, so a digest that gained
        rows meanwhile is posted anew (shown twice rather than leaving the new rows unshown).
        """
        method = "chat.postMessage"
        rows = sorted(n.outbox_id for n in digest.notifications if n.outbox_id is not None)
        mark = {"digest": digest.key, "rows": hashlib.sha256(repr(rows).encode()).hexdigest()[:16]}
        try:
            message = build_digest_message(digest, acknowledge=self.acknowledge_buttons)
            thread = _shared_group_thread(digest)
            maybe = any(n.maybe_delivered for n in digest.notifications)
            if (
                thread is not None
            ):  # reminded, resolved or acknowledged together: told in their grouped message's thread
                method = "chat.postMessage (thread reply)"
                metadata = {"event_type": METADATA_EVENT_TYPE, "event_payload": mark}
                if not (maybe and self._earlier_post(mark, thread=thread) is not None):
                    self._client.chat_postMessage(
                        channel=thread[0],
                        thread_ts=thread[1],
                        reply_broadcast=_broadcast(digest.kind),
                        unfurl_links=False,
                        unfurl_media=False,
                        metadata=metadata,
                        **message,
                    )
                return DeliveryResult.sent({"channel": thread[0], "ts": thread[1]})
            where = self._earlier_post(mark) if maybe else None
            if where is None:
                response = self._post(message, {"event_type": METADATA_EVENT_TYPE, "event_payload": mark})
                where = (str(response["channel"]), str(response["ts"]))
        except SlackApiError as error:
            result = self._api_failure(method, error)
            return replace(result, maybe_delivered=True) if result.retryable and _maybe_processed(error) else result
        except (OSError, http.client.HTTPException) as error:
            text = self._redact(f"slack {method}: {type(error).__name__}: {error}")
            return DeliveryResult.retry(text, maybe_delivered=not _never_connected(error))
        except SlackClientError as error:
            return DeliveryResult.fail(self._redact(f"slack {method}: {type(error).__name__}: {error}"))
        return DeliveryResult.sent({"channel": where[0], "ts": where[1]})

    def _post(self, message: dict[str, Any], metadata: dict[str, Any] | None = None) -> SlackResponse:
        response = self._client.chat_postMessage(
            channel=self.slack_channel, unfurl_links=False, unfurl_media=False, metadata=metadata, **message
        )
        if not self._channel_id and isinstance(response.get("channel"), str):
            self._channel_id = str(response["channel"])
        return response

    def _post_once(self, message: dict[str, Any], notification: Notification) -> tuple[str, str]:
        """Post a new message, unless an earlier attempt at the same outbox row already posted it: its (channel, ts)."""
        row = notification.outbox_id
        metadata = None
        if row is not None:
            mark = {"outbox_id": row, "fingerprint": notification.alert.fingerprint}
            if notification.maybe_delivered:
                earlier = self._earlier_post(mark)
                if earlier is not None:
                    return earlier
            metadata = {"event_type": METADATA_EVENT_TYPE, "event_payload": mark}
        response = self._post(message, metadata)
        return str(response["channel"]), str(response["ts"])

    def _reply_once(
        self, living: tuple[str, str], notification: Notification, text: str | None = None, *, broadcast: bool = False
    ) -> None:
        """Reply in the living message's thread, unless an earlier attempt at the same row already did.

        The reply says `text`, by default what happened (`slack.reply`); `broadcast`: also shown in the channel.
        """
        row = notification.outbox_id
        metadata = None
        if row is not None:
            mark = {"outbox_id": row, "fingerprint": notification.alert.fingerprint}
            if notification.maybe_delivered and self._earlier_post(mark, thread=living) is not None:
                return
            metadata = {"event_type": METADATA_EVENT_TYPE, "event_payload": mark}
        self._client.chat_postMessage(
            channel=living[0],
            thread_ts=living[1],
            reply_broadcast=broadcast,
            text=render("slack.reply", notification) if text is None else text,
            unfurl_links=False,
            unfurl_media=False,
            metadata=metadata,
        )

    def _earlier_post(self, mark: Mapping[str, Any], thread: tuple[str, str] | None = None) -> tuple[str, str] | None:
        """The (channel, ts) of the message an earlier attempt posted with metadata payload `mark`, if any.

        Looks among the channel's latest messages, or in `thread` (channel, ts) for a reply. Slack's rate
        limits and outages propagate (the attempt is retried later, rather than risking a duplicate); a
        lookup Slack refuses (a missing scope) is logged and the message posted again.
        """
        try:
            if thread is not None:
                channel = thread[0]
                history = self._client.conversations_replies(
                    channel=channel, ts=thread[1], limit=HISTORY_LOOKBACK, include_all_metadata=True
                )
            else:
                channel = self._channel_id or self._find_channel_id()
                if not channel:
                    log.warning("slack: channel %s not found by conversations.list; posting again", self.slack_channel)
                    return None
                history = self._client.conversations_history(
                    channel=channel, limit=HISTORY_LOOKBACK, include_all_metadata=True
                )
        except SlackApiError as error:
            code = _api_error_code(error)
            if error.response.status_code == 429 or error.response.status_code >= 500 or code in _TRANSIENT_ERRORS:
                raise
            log.warning(
                "slack: cannot check whether an interrupted attempt already posted the message (%s): %s; posting "
                "again, which may show it twice (grant the channels:read and channels:history scopes)",
                ", ".join(f"{k}={v}" for k, v in mark.items()),
                self._redact(one_line(code, 200)),
            )
            return None
        for message in history.get("messages") or []:
            metadata = message.get("metadata") if isinstance(message, dict) else None
            if not isinstance(metadata, dict) or metadata.get("event_type") != METADATA_EVENT_TYPE:
                continue
            payload = metadata.get("event_payload")
            if (
                isinstance(payload, dict)
                and message.get("ts")
                and all(str(payload.get(k)) == str(v) for k, v in mark.items())
            ):
                return channel, str(message["ts"])
        return None

    def _find_channel_id(self) -> str:
        """The id of the configured `#name` channel, from conversations.list ("" when not listed)."""
        try:
            return self._list_channels("public_channel,private_channel")
        except SlackApiError as error:
            if _api_error_code(error) != "missing_scope":
                raise
            # Slack refuses the whole listing when one type's scope (groups:read) is missing.
            return self._list_channels("public_channel")

    def _list_channels(self, types: str) -> str:
        name = self.slack_channel.lstrip("#")
        cursor = None
        for _ in range(100):  # 100 pages of 1000 channels
            page = self._client.conversations_list(types=types, exclude_archived=True, limit=1000, cursor=cursor)
            for channel in page.get("channels") or []:
                if isinstance(channel, dict) and channel.get("name") == name and isinstance(channel.get("id"), str):
                    self._channel_id = str(channel["id"])
                    return self._channel_id
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return ""

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
