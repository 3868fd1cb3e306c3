"""Render the notification templates in `alerting/templates/`, each with the escaping its output needs.

Templates are named by receiver and purpose (`slack.title`, `email.html`, `pagerduty.summary`) and live in
`<name>.j2` files. Every variable a template prints is escaped for where the text ends up: Slack mrkdwn
(`&<>` as entities), HTML (autoescape) or nothing (plain text, Slack `plain_text`, mail headers, which
are sanitised separately). Undefined variables are errors (`StrictUndefined`), never silent blanks.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jinja2

from alerting.model import SPIKE_PASS_ANNOTATION, Alert, Notification, alert_family
from alerting.notify.text_limits import escape_mrkdwn, visible, web_url


class Escaping(enum.Enum):
    """How the variables a template prints are escaped."""

    PLAIN = "plain"
    MRKDWN = "mrkdwn"
    HTML = "html"


TEMPLATES: dict[str, Escaping] = {
    "slack.title": Escaping.PLAIN,  # a header block: plain_text, shown verbatim by Slack
    "slack.text": Escaping.MRKDWN,  # the message's fallback text (push notifications, screen readers)
    "slack.body": Escaping.MRKDWN,
    "slack.status": Escaping.MRKDWN,
    "slack.reply": Escaping.MRKDWN,
    "email.subject": Escaping.PLAIN,
    "email.txt": Escaping.PLAIN,
    "email.html": Escaping.HTML,
    "pagerduty.summary": Escaping.PLAIN,
}
"""Every template and its escaping; rendering a name not listed here is an error."""

# Annotations shown in their own place rather than in the list of other annotations (`detection_pass` only
# groups a pass's spikes: the message already says when the alert started).
WELL_KNOWN_ANNOTATIONS = ("summary", "description", "runbook_url", "dashboard_url", SPIKE_PASS_ANNOTATION)
DASHBOARD_LEAD = 3600
"""Seconds of a dashboard link's time range before the alert started (the spend that led to it)."""


def _utc(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


EPOCH_LABELS = frozenset({"period_start"})
"""Labels whose value is epoch seconds (`LLMBudgetRequestCapExceeded`'s `period_start`)."""


def shown_labels(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """The labels as messages show them (mail subject and body, Slack fields), sorted, without `alertname`.

    An epoch label is shown as the budget annotations show times ("2026-12-08 00:00 UTC"): a subject
    reading `period_start=1796601600` told a person nothing. Only the display changes: the label's value
    is part of the fingerprint, and PagerDuty's `custom_details` (read by machines) keep it as it is.
    """
    shown = []
    for key, value in sorted(labels.items()):
        if key == "alertname":
            continue
        if key in EPOCH_LABELS and value.isdigit():
            value = _utc(datetime.fromtimestamp(int(value), UTC))
        shown.append((key, value))
    return shown


def dashboard_link(alert: Alert) -> str:
    """The alert's `dashboard_url` with a time range around it ("" without one).

    From an hour before its start to an hour after its resolve, or to now while it is open, so the link
    opened the next morning still shows the alert. Grafana reads `from`/`to` in milliseconds.
    """
    url = web_url(alert.annotations.get("dashboard_url", ""))
    if not url:
        return ""
    start = int(alert.starts_at.timestamp() - DASHBOARD_LEAD) * 1000
    end = str(int(alert.resolved_at.timestamp() + DASHBOARD_LEAD) * 1000) if alert.resolved_at else "now"
    return web_url(f"{url}{'&' if '?' in url else '?'}from={start}&to={end}")


def _mrkdwn_finalize(value: Any) -> Any:
    return escape_mrkdwn(value) if isinstance(value, str) else value


def _visible_finalize(value: Any) -> Any:
    # Before autoescaping (HTML) or as is (plain text): what a person reads shows every character.
    return visible(value) if isinstance(value, str) else value


@functools.cache
def _environment(escaping: Escaping) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("alerting", "templates"),
        undefined=jinja2.StrictUndefined,
        # Plain-text outputs (mail text, headers, PagerDuty) must not carry HTML entities.
        autoescape=escaping is Escaping.HTML,  # noqa: S701
        finalize=_mrkdwn_finalize if escaping is Escaping.MRKDWN else _visible_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the package; no stat() of the file on every render
    )
    env.filters["utc"] = _utc
    env.filters["epoch"] = _epoch
    return env


def context(notification: Notification) -> dict[str, Any]:
    """Collect the variables every template sees; presentation choices stay in the templates."""
    alert = notification.alert
    annotations = alert.annotations
    return {
        "alert": alert,
        "kind": notification.kind.value,
        "actor": notification.actor,
        "previous_severity": notification.previous_severity or "",
        "reopened": notification.reopened,
        "family": alert_family(alert.alertname) or "",
        "summary": annotations.get("summary") or alert.alertname,
        "description": annotations.get("description", ""),
        "runbook_url": web_url(annotations.get("runbook_url", "")),
        "generator_url": web_url(alert.generator_url),
        "dashboard_url": dashboard_link(alert),
        "labels": shown_labels(alert.labels),
        "other_annotations": sorted((k, v) for k, v in annotations.items() if k not in WELL_KNOWN_ANNOTATIONS),
    }


def render(name: str, notification: Notification, **extra: Any) -> str:
    """Render template `name` (e.g. `email.html`) for `notification`; `extra` adds variables of its channel."""
    try:
        escaping = TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown template {name!r}; known: {', '.join(TEMPLATES)}") from None
    template = _environment(escaping).get_template(f"{name}.j2")
    return template.render({**context(notification), **extra}).strip()
