"""What goes where: the effective route of each severity, and what a default route leaves out.

`notifications.routes` sends each severity to channels. A route the config writes may name only channels it
configures (`alerting.gateway.config` refuses another). A severity whose route is not written takes its
default (`DEFAULT_ROUTES`), which names every channel that should hear of it and keeps those configured, so
a Slack-only config, or the demo's with none, starts as it is. That made a critical alert, whose default
route pages, go to Slack only without a word when `notifications.pagerduty` was missing. Not an error (the
config is valid, and a team may well have no PagerDuty), but something the operator must be told:
`llmcost check-config` prints the effective routing and a notice per default route missing a channel, and
`serve` logs the notices once at start. Writing the severity's route says "this is on purpose" and ends it.

PagerDuty without `webhook_secret` is the same kind of silence the other way: llmcost refuses every webhook
it cannot verify, so an incident acknowledged (or resolved) in PagerDuty stays firing here, reminded in Slack
and mail every `repeat_interval` although on-call took it. A notice says so and names the key to set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alerting.gateway.settings import CHANNELS, DEFAULT_ROUTES
from alerting.model import SEVERITIES, Severity

RECORDED_ONLY = "nobody: they are recorded only (GET /v1/alerts, the console)"
"""Where alerts of a severity routed to no configured channel end up."""
_MISSING = {
    "pagerduty": "page nobody",
    "email": "are mailed to nobody",
    "slack": "are posted to no Slack channel",
}


@dataclass(frozen=True)
class Route:
    """One severity's effective route."""

    severity: Severity
    channels: tuple[str, ...]
    """The configured channels its alerts go to."""
    written: bool
    """True when `notifications.routes` writes it; False for the default route."""
    missing: tuple[str, ...] = ()
    """Channels its default route names that the config does not configure (always empty when written)."""


def effective_routes(raw: Mapping[str, Any]) -> list[Route]:
    """The route of each severity of a valid config's raw mapping, `info` first."""
    notifications = raw.get("notifications")
    notifications = notifications if isinstance(notifications, Mapping) else {}
    configured = {name for name in CHANNELS if notifications.get(name)}
    written = notifications.get("routes")
    written = written if isinstance(written, Mapping) else {}
    routes = []
    for severity in SEVERITIES:
        if severity in written:
            named = tuple(dict.fromkeys(written[severity] or ()))
            routes.append(Route(severity, tuple(c for c in named if c in configured), written=True))
        else:
            default = DEFAULT_ROUTES[severity]
            channels = tuple(c for c in default if c in configured)
            missing = tuple(c for c in default if c not in channels)
            routes.append(Route(severity, channels, written=False, missing=missing))
    return routes


def routing_lines(routes: list[Route]) -> list[str]:
    """One line per severity: `critical: slack (default route: slack, email, pagerduty)`."""
    lines = []
    for route in routes:
        where = ", ".join(route.channels) or "nobody"
        if route.written:
            how = f"notifications.routes.{route.severity}"
        elif route.missing:
            how = f"default route: {', '.join(DEFAULT_ROUTES[route.severity])}"
        else:
            how = "default route"
        lines.append(f"{route.severity}: {where} ({how})")
    return lines


def config_routing(raw: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The routing lines and the notices of a valid config's raw mapping (`check-config`, `serve`)."""
    routes = effective_routes(raw)
    return routing_lines(routes), routing_notices(routes) + pagerduty_ack_notices(raw, routes)


PAGERDUTY_ACKS_UNSEEN = (
    "acknowledgements given in PagerDuty are not seen by llmcost: notifications.pagerduty.webhook_secret is "
    "not configured, so every PagerDuty webhook is refused (401) and an incident acknowledged or resolved there "
    "stays firing here, reminded on its other channels every alerting.repeat_interval (set "
    "notifications.pagerduty.webhook_secret to the signing secret of a PagerDuty webhook v3 subscription to "
    "POST /v1/pagerduty/webhook, or acknowledge in llmcost: Slack, the console, llmcost alerts ack)"
)
"""The notice of a config that pages through PagerDuty but cannot verify its webhooks."""


def pagerduty_ack_notices(raw: Mapping[str, Any], routes: list[Route]) -> list[str]:
    """[PAGERDUTY_ACKS_UNSEEN] when some route pages through PagerDuty and no `webhook_secret` is given."""
    if not any("pagerduty" in route.channels for route in routes):
        return []
    notifications = raw.get("notifications")
    pagerduty = notifications.get("pagerduty") if isinstance(notifications, Mapping) else None
    if not isinstance(pagerduty, Mapping):
        return []
    # `_env`/`_file` count as given: check-config and serve refuse the config when they do not resolve.
    if any(pagerduty.get(key) for key in ("webhook_secret", "webhook_secret_env", "webhook_secret_file")):
        return []
    return [PAGERDUTY_ACKS_UNSEEN]


def routing_notices(routes: list[Route]) -> list[str]:
    """What the default routes leave out, most severe first; [] when they reach every channel they name.

    `critical alerts page nobody: notifications.pagerduty is not configured; they go to slack only (…)`.
    With no channel configured at all, one notice says so.
    """
    short = [r for r in reversed(routes) if r.missing]
    if not short:
        return []
    if all(not r.channels for r in routes) and not any(r.written for r in routes):
        severities = " and ".join(r.severity for r in reversed(short))
        return [
            f"no notification channel is configured (notifications.slack, notifications.email, "
            f"notifications.pagerduty): {severities} alerts reach {RECORDED_ONLY}"
        ]
    notices = []
    for route in short:
        goes = f"they go to {' and '.join(route.channels)} only" if route.channels else f"they reach {RECORDED_ONLY}"
        on_purpose = f"notifications.routes.{route.severity}: [{', '.join(route.channels)}]"
        for channel in reversed(route.missing):  # PagerDuty first: a page missed is the worst
            notices.append(
                f"{route.severity} alerts {_MISSING[channel]}: notifications.{channel} is not configured; {goes} "
                f"(configure notifications.{channel}, or write {on_purpose} if that is what you want)"
            )
    return notices
