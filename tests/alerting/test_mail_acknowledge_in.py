"""Where a mail tells people to acknowledge: a channel the alert's severity is routed to, whose acks llmcost verifies.

Every mail said "Acknowledge in Slack or PagerDuty": a warning's, which opened no incident, and one of an
installation without `webhook_secret`, whose PagerDuty acknowledgements llmcost refuses unseen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alerting.gateway.config import parse_settings

EMAIL = {"smtp_host": "127.0.0.1", "from": "llmcost@example.com", "to": ["oncall@example.com"]}
SLACK = {"token": "xoxb-test", "channel": "#llm-cost"}
PAGERDUTY = {"routing_key": "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32"}


def places(notifications: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    problems: list[str] = []
    settings = parse_settings({"notifications": notifications}, Path.cwd(), problems)
    assert problems == []
    return settings.channels["email"]["acknowledge_in"]


def test_each_severity_names_the_routed_channels_whose_acknowledgements_are_verified() -> None:
    verified = {
        "email": EMAIL,
        "slack": {**SLACK, "signing_secret": "s" * 20},
        "pagerduty": {**PAGERDUTY, "webhook_secret": "w" * 20},
    }
    assert places(verified) == {"info": (), "warning": ("Slack",), "critical": ("Slack", "PagerDuty")}


def test_a_channel_without_its_secret_is_not_named() -> None:
    # No signing_secret: Slack's messages carry no button; no webhook_secret: PagerDuty's webhooks are refused.
    unverified = {"email": EMAIL, "slack": SLACK, "pagerduty": PAGERDUTY}
    assert places(unverified) == {"info": (), "warning": (), "critical": ()}
