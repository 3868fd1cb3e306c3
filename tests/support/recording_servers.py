"""Loopback stand-ins for the Slack Web API, the PagerDuty Events API and an SMTP relay, for tests.

Each server listens on 127.0.0.1 on a free port, records every request it gets and answers like the real
service, unless a test scripted other answers first:

    with SlackAPIServer() as slack:
        slack.enqueue(429, {"Retry-After": "7"}, {"ok": False, "error": "ratelimited"})
        notifier = SlackNotifier(token="xoxb-test", channel="#llm-cost", api_url=slack.url)
        ...
        assert slack.requests[0].path == "/api/chat.postMessage"

Scripted answers are used first, in order; then the server's default answer applies. Use them as
context managers (or `start()`/`stop()`): stopping closes every socket and joins every thread.

This module gathers them: the HTTP base is in `tests/support/recording_base.py`, one module per service
beside it (`recording_slack.py`, `recording_pagerduty.py`, `recording_smtp.py`).
"""

from tests.support.recording_base import Body, RecordedRequest, RecordingServer, Response, unused_port
from tests.support.recording_pagerduty import PagerDutyEventsServer
from tests.support.recording_slack import SlackAPIServer
from tests.support.recording_smtp import ReceivedMail, SMTPServer

__all__ = [
    "Body",
    "PagerDutyEventsServer",
    "ReceivedMail",
    "RecordedRequest",
    "RecordingServer",
    "Response",
    "SMTPServer",
    "SlackAPIServer",
    "unused_port",
]
