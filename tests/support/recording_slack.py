"""A loopback stand-in for the Slack Web API (`chat.postMessage`, `chat.update`), for tests."""

from __future__ import annotations

import itertools

from tests.support.recording_base import RecordedRequest, RecordingServer, Response


class SlackAPIServer(RecordingServer):
    """Answers like `https://slack.com/api/`: give `url + "api/"` as the client's base URL (or `api_url`).

    `chat.postMessage` returns a new `ts` each time (`1700000000.000100`, `…000200`, …) in channel `C123`
    (or the channel id asked for); `chat.update` echoes the channel and ts. With `token` set, requests
    without `Authorization: Bearer <token>` get `invalid_auth` as Slack would.
    """

    def __init__(self, token: str | None = None, channel_id: str = "C123") -> None:
        super().__init__()
        self.token = token
        self.channel_id = channel_id
        self._ts = itertools.count(1)

    @property
    def api_url(self) -> str:
        return self.url + "api/"

    def calls(self, method: str) -> list[RecordedRequest]:
        """The requests made to one API method, e.g. `chat.update`."""
        return [r for r in self.requests if r.path.rsplit("/", 1)[-1] == method]

    def default_response(self, request: RecordedRequest) -> Response:
        if self.token is not None and request.header("authorization") != f"Bearer {self.token}":
            return Response(200, {}, {"ok": False, "error": "invalid_auth"})
        method = request.path.rsplit("/", 1)[-1]
        args = request.payload
        channel = str(args.get("channel") or "")
        channel = channel if channel[:1] in ("C", "G", "D") else self.channel_id
        message = {"type": "message", "text": args.get("text", ""), "blocks": args.get("blocks", [])}
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts) * 100:06d}"
            message.update({"subtype": "bot_message", "bot_id": "B123", "ts": ts})
            if args.get("thread_ts"):
                message["thread_ts"] = args["thread_ts"]
            return Response(200, {}, {"ok": True, "channel": channel, "ts": ts, "message": message})
        if method == "chat.update":
            ts = str(args.get("ts", ""))
            body = {"ok": True, "channel": channel, "ts": ts, "text": message["text"], "message": message}
            return Response(200, {}, body)
        return Response(200, {}, {"ok": True})
