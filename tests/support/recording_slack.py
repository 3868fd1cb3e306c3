"""A loopback stand-in for the Slack Web API (`chat.postMessage`, `chat.update`, the channel's history), for tests."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from tests.support.recording_base import RecordedRequest, RecordingServer, Response


class SlackAPIServer(RecordingServer):
    """Answers like `https://slack.com/api/`: give `url + "api/"` as the client's base URL (or `api_url`).

    `chat.postMessage` returns a new `ts` each time (`1700000000.000100`, `…000200`, …) in channel `C123`
    (or the channel id asked for); `chat.update` echoes the channel and ts. With `token` set, requests
    without `Authorization: Bearer <token>` get `invalid_auth` as Slack would.

    Top-level messages are kept (`posted`, newest last, with their `metadata`; thread replies in `replies`)
    and listed by `conversations.history` (newest first) and `conversations.replies` (the parent, then its
    replies), metadata only with `include_all_metadata`;
    `conversations.list` lists the one channel, `#channel_name` with id `channel_id`. `answer_late(s)`
    makes the next call take effect at once but answered only after `s` seconds, as when Slack posted
    a message and the reply was lost to a client timeout.
    """

    def __init__(self, token: str | None = None, channel_id: str = "C123", channel_name: str = "llm-cost") -> None:
        super().__init__()
        self.token = token
        self.channel_id = channel_id
        self.channel_name = channel_name
        self.posted: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []
        self._ts = itertools.count(1)
        self._late: deque[float] = deque()

    @property
    def api_url(self) -> str:
        return self.url + "api/"

    def calls(self, method: str) -> list[RecordedRequest]:
        """The requests made to one API method, e.g. `chat.update`."""
        return [r for r in self.requests if r.path.rsplit("/", 1)[-1] == method]

    def answer_late(self, seconds: float) -> None:
        """Carry out the next call (after scripted answers) but answer it only after `seconds`."""
        self._late.append(seconds)

    def default_response(self, request: RecordedRequest) -> Response:
        response = self._answer(request)
        if self._late:
            return Response(response.status, response.headers, response.body, delay=self._late.popleft())
        return response

    def _answer(self, request: RecordedRequest) -> Response:
        if self.token is not None and request.header("authorization") != f"Bearer {self.token}":
            return Response(200, {}, {"ok": False, "error": "invalid_auth"})
        method = request.path.rsplit("/", 1)[-1]
        args = {**{k: v[-1] for k, v in request.query.items()}, **request.payload}
        channel = str(args.get("channel") or "")
        channel = channel if channel[:1] in ("C", "G", "D") else self.channel_id
        message = {"type": "message", "text": args.get("text", ""), "blocks": args.get("blocks", [])}
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts) * 100:06d}"
            message.update({"subtype": "bot_message", "bot_id": "B123", "ts": ts})
            if args.get("thread_ts"):
                message["thread_ts"] = args["thread_ts"]
                self.replies.append({**message, "metadata": args.get("metadata")})
            else:
                self.posted.append({**message, "metadata": args.get("metadata")})
            return Response(200, {}, {"ok": True, "channel": channel, "ts": ts, "message": message})
        if method == "chat.update":
            ts = str(args.get("ts", ""))
            body = {"ok": True, "channel": channel, "ts": ts, "text": message["text"], "message": message}
            return Response(200, {}, body)
        if method == "conversations.list":
            return Response(200, {}, {"ok": True, "channels": [{"id": self.channel_id, "name": self.channel_name}]})
        if method == "conversations.history":
            return Response(200, {}, self._listing(list(reversed(self.posted)), args))
        if method == "conversations.replies":
            thread = str(args.get("ts", ""))
            parent = [m for m in self.posted if m["ts"] == thread]
            return Response(
                200, {}, self._listing(parent + [m for m in self.replies if m["thread_ts"] == thread], args)
            )
        return Response(200, {}, {"ok": True})

    @staticmethod
    def _listing(messages: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        limit = int(args.get("limit") or 100)
        shown = [
            {k: v for k, v in m.items() if k != "metadata" or (with_metadata and v is not None)}
            for m in messages[:limit]
        ]
        return {"ok": True, "messages": shown, "has_more": len(messages) > limit}
