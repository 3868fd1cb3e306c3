"""The gateway's configuration: `notifications:` (channels, routes) and the gateway keys of `alerting:`.

Both are validated by `validate_notifications` and `validate_alerting` (with `check_silences` over the
whole file), which the application's config table runs with every other section, so `llmcost check-config`
lists every problem of the file at once; they are parsed again into the typed settings of
`alerting.gateway.settings` when the gateway starts.

```yaml
notifications:
  slack:     {token: ..., channel: "#llm-cost", api_url: https://slack.com/api/, signing_secret: ...}
  email:     {smtp_host: ..., smtp_port: 587, starttls: true, username: ..., password: ..., from: ..., to: [...]}
             # implicit_tls: true (default on smtp_port 465): TLS from the first byte instead of STARTTLS
  pagerduty: {routing_key: ..., events_url: https://events.pagerduty.com/v2/enqueue, webhook_secret: ...}
  routes:    {info: [], warning: [slack, email], critical: [slack, email, pagerduty]}
  # any channel may also say `group: false` (never grouped) and `max_per_minute: N` (rate limit)
alerting:
  repeat_interval: 4h          # remind while firing and unacknowledged
  group_threshold: 3           # one budget's due notifications sent as one message (0: never; a pass's spikes: from 2)
  group_wait: 0s               # hold instance notifications so a group can form
  tick_interval: 30s           # how often a gateway with workers checks for due repeats (0: only the scheduler)
  max_body_bytes: 1048576      # webhook request bodies
  receipt_retention: 7d        # webhook delivery ids remembered for dedup; older PagerDuty events are replays
  outbox: {max_attempts: 10, initial_backoff: 2s, max_backoff: 5m, lease: 60s, concurrency: 4,
           poll_interval: 1s, retention: 30d}
  alertmanager: {url: http://alertmanager:9093,   # default: every replica of the top-level alertmanager.urls
                 silence_on_ack: false, silence_duration: 24h,
                 resolve_after: 5m,   # an alert held by a silence resolves once gone this long
                 follow_silences: true}   # alerts silenced in Alertmanager are marked so: no reminders
```
Any secret (`token`, `signing_secret`, `password`, `routing_key`, `webhook_secret`) may be given as
`<key>_file` or `<key>_env` instead. `webhook_secret` may be a list (several during a secret rotation).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alerting.gateway.grouping import GroupingSettings
from alerting.gateway.settings import (
    CHANNELS,
    DEFAULT_ROUTES,
    GatewaySettings,
    OutboxSettings,
    SilenceSettings,
    parse_duration,
)
from alerting.installation import parse_external_labels
from alerting.model import SEVERITIES, Severity
from alerting.notify.mail import entry_addresses, implicit_tls, split_addresses
from exporter.config import (
    UNREAD_SECRET,
    Config,
    ConfigError,
    empty_secret_problem,
    http_url_problem,
    resolve_secret,
)

_SECRETS = {
    "slack": ("token", "signing_secret"),
    "email": ("password",),
    "pagerduty": ("routing_key", "webhook_secret"),
}
_FLOW_KEYS = {"group", "max_per_minute"}

ALERTING_KEYS = frozenset(
    {
        "repeat_interval",
        "tick_interval",
        "max_body_bytes",
        "receipt_retention",
        "outbox",
        "group_wait",
        "group_threshold",
        "alertmanager",
    }
)
"""The keys of the `alerting:` section the gateway reads (`parse_settings`)."""
"""Per-channel keys of the grouping stage (`alerting.gateway.grouping`), not passed to notifiers' checks."""
_PLAIN_KEYS = {
    "slack": {"channel", "api_url", "timeout_seconds", *_FLOW_KEYS},
    "email": {
        "smtp_host",
        "smtp_port",
        "starttls",
        "username",
        "from",
        "to",
        "timeout_seconds",
        "allow_insecure_auth",
        "implicit_tls",
        *_FLOW_KEYS,
    },
    "pagerduty": {"events_url", "timeout_seconds", "source", *_FLOW_KEYS},
}
ROUTING_KEY_LENGTH = 32
"""Characters of a PagerDuty Events API v2 integration (routing) key: PagerDuty refuses any other length."""
_REQUIRED = {"slack": ("token", "channel"), "email": ("smtp_host", "from", "to"), "pagerduty": ("routing_key",)}

Problems = list[str]


def _mapping(value: Any, path: str, problems: Problems) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(f"{path}: must be a mapping, got {type(value).__name__}")
        return None
    return value


def _unknown(section: Mapping[str, Any], allowed: set[str], path: str, problems: Problems) -> None:
    for key in section:
        if key not in allowed:
            problems.append(f"{path}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _channel(name: str, section: dict[str, Any], problems: Problems, base: Path) -> dict[str, Any] | None:
    path = f"notifications.{name}"
    secrets = _SECRETS[name]
    allowed = _PLAIN_KEYS[name] | {f"{k}{s}" for k in secrets for s in ("", "_file", "_env")}
    _unknown(section, allowed, path, problems)
    resolved: dict[str, Any] = {k: v for k, v in section.items() if k in _PLAIN_KEYS[name]}
    named: set[str] = set()  # secrets whose `_env` or `_file` already has a problem of its own
    for key in secrets:
        count = len(problems)
        value = resolve_secret(section, key, problems, path, base)
        if len(problems) > count:
            named.add(key)
        if value is not None:
            resolved[key] = value
    before = len(problems)
    for key in _REQUIRED[name]:
        # Blank counts as empty: a routing key of spaces from `routing_key_env` passed check-config, and the
        # channel was found unusable only when its first alert could not be delivered.
        value = resolved.get(key)
        if key not in named and (not value or (isinstance(value, str) and not value.strip())):
            missing = empty_secret_problem(section, key, path, base)
            problems.append(f"{missing} ({path} is empty; leave it out to use no {name})" if not section else missing)
    for key in ("token", "channel", "smtp_host", "from", "username", "password", "routing_key"):
        if key in resolved and resolved[key] is not None and not isinstance(resolved[key], str):
            problems.append(f"{path}.{key}: must be a string, got {type(resolved[key]).__name__}")
    routing_key = resolved.get("routing_key")
    # `UNREAD_SECRET`: a command that sends nothing (`report`) did not read the key, so there is nothing to judge.
    routing_key = routing_key if isinstance(routing_key, str) and routing_key != UNREAD_SECRET else ""
    if routing_key.strip() and len(routing_key) != ROUTING_KEY_LENGTH:
        # PagerDuty answers 400 to every event with such a key: a slip here dead-lettered every page, found
        # only when the first alert could not be delivered. Named by the form it was given in, never shown.
        form = next(f for f in ("routing_key", "routing_key_file", "routing_key_env") if section.get(f) is not None)
        problems.append(
            f"{path}.{form}: a PagerDuty Events API v2 integration key is {ROUTING_KEY_LENGTH} characters, "
            f"this one is {len(routing_key)} (PagerDuty refuses every event sent with it)"
        )
    for key in ("api_url", "events_url"):
        if key in resolved and (problem := http_url_problem(resolved[key])):
            problems.append(f"{path}.{key}: {problem}")
    if name == "email":
        to = resolved.get("to")
        # Problems name the entry as written: `to` for one string, `to[i]` for the YAML list's item i,
        # whatever number of addresses the entries before it held.
        entries = [("to", to)] if isinstance(to, str) else list(_indexed("to", to)) if isinstance(to, list) else []
        if entries and all(isinstance(entry, str) and entry for _, entry in entries):
            resolved["to"] = []
            for key, entry in entries:
                if problem := _control_character(entry):
                    problems.append(f"{path}.{key}: {problem}")
                    continue
                addresses, wrong = entry_addresses(entry)
                resolved["to"] += addresses
                problems.extend(
                    f"{path}.{key}: {part!r}{f' (address {n} of the entry)' if n else ''} is not a mail address"
                    for n, part in wrong
                )
        elif to is not None:
            problems.append(f"{path}.to: must be an address or a non-empty list of addresses")
        sender = resolved.get("from")
        if isinstance(sender, str) and sender:
            senders, bad = split_addresses([sender])
            if bad:
                problems.append(f"{path}.from: {sender!r} is not a mail address")
            elif len(senders) != 1:
                problems.append(f"{path}.from: must be one address, got {len(senders)}")
        port = resolved.get("smtp_port", 587)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            problems.append(f"{path}.smtp_port: must be a port number")
        if not isinstance(resolved.get("starttls", True), bool):
            problems.append(f"{path}.starttls: must be true or false")
        if not isinstance(resolved.get("implicit_tls", False), bool):
            problems.append(f"{path}.implicit_tls: must be true or false")
        if not isinstance(resolved.get("allow_insecure_auth", False), bool):
            problems.append(f"{path}.allow_insecure_auth: must be true or false")
        elif (
            resolved.get("username")
            and resolved.get("starttls", True) is False
            and not implicit_tls(resolved)
            and not resolved.get("allow_insecure_auth")
        ):
            problems.append(
                f"{path}.starttls: false with a username would send the SMTP password in clear; "
                "set starttls: true, or allow_insecure_auth: true for a relay on a trusted network"
            )
    if "timeout_seconds" in resolved:
        timeout = resolved["timeout_seconds"]
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            problems.append(f"{path}.timeout_seconds: must be a number > 0")
    if not isinstance(resolved.get("group", True), bool):
        problems.append(f"{path}.group: must be true or false")
    limit = resolved.get("max_per_minute", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        problems.append(f"{path}.max_per_minute: must be an integer >= 0 (0: no limit)")
    if name == "pagerduty" and "webhook_secret" in resolved:
        secret = resolved["webhook_secret"]
        if isinstance(secret, str):
            resolved["webhook_secret"] = [line.strip() for line in secret.splitlines() if line.strip()]
        elif not (isinstance(secret, list) and all(isinstance(s, str) and s for s in secret)):
            problems.append(f"{path}.webhook_secret: must be a string or a list of strings")
    if name == "slack" and "signing_secret" in resolved and not isinstance(resolved["signing_secret"], str):
        problems.append(f"{path}.signing_secret: must be a string")
    problems.extend(_control_characters(resolved, path))  # after webhook_secret's lines became a list
    return resolved if len(problems) == before else None


_NAMES = ("token", "channel", "signing_secret", "smtp_host", "username", "password", "from", "routing_key", "source")


def _control_characters(resolved: Mapping[str, Any], path: str) -> Problems:
    """A problem per name, secret or address holding a control character, naming where (never the value).

    A NUL or a line break in a token, channel, user name or routing key passed the check and failed each
    send: an HTTP header or SMTP command cannot carry it (Slack's every message raised), or the receiver
    refused it. A secret read from a `_file` is stripped of its final newline before this.
    """
    found: Problems = []
    values = [(key, resolved.get(key)) for key in _NAMES]
    secrets = resolved.get("webhook_secret")  # `to` is checked entry by entry as written, before its split
    if isinstance(secrets, list):
        values += _indexed("webhook_secret", secrets)
    for key, value in values:
        if isinstance(value, str) and (problem := _control_character(value)):  # other types: type checks
            found.append(f"{path}.{key}: {problem}")
    return found


def _indexed(key: str, entries: list[Any]) -> list[tuple[str, Any]]:
    return [(f"{key}[{i}]", entry) for i, entry in enumerate(entries)]


def _control_character(value: str) -> str | None:
    bad = next((i for i, c in enumerate(value) if _is_control(c)), None)
    if bad is None:
        return None
    return f"must not contain control characters (U+{ord(value[bad]):04X} at character {bad + 1})"


def _is_control(char: str) -> bool:
    return char < " " or "\x7f" <= char <= "\x9f"


def _routes(value: Any, configured: set[str], problems: Problems) -> dict[Severity, tuple[str, ...]]:
    """The severity routes, defaults for the severities not given.

    A route the config writes naming a channel it does not configure is a problem: its alerts would be
    sent nowhere, silently (a critical routed to `pagerduty` without `notifications.pagerduty` would
    never page). The default routes name every channel and keep the ones configured, so a config
    with Slack alone (or none, as the demo) still starts.
    """
    routes = dict(DEFAULT_ROUTES)
    section = _mapping(value, "notifications.routes", problems)
    if section is None:
        return routes
    _unknown(section, set(SEVERITIES), "notifications.routes", problems)
    for severity in SEVERITIES:
        if severity not in section:
            continue
        channels = section[severity]
        if channels is None:
            channels = []
        if not isinstance(channels, list):
            problems.append(f"notifications.routes.{severity}: must be a list of channels")
            continue
        bad = [c for c in channels if c not in CHANNELS]
        if bad:
            problems.append(f"notifications.routes.{severity}: unknown channel(s) {bad} (known: {', '.join(CHANNELS)})")
            continue
        for index, channel in enumerate(channels):
            if channel not in configured:
                problems.append(
                    f"notifications.routes.{severity}[{index}]: channel {channel!r} is not configured, so "
                    f"{severity} alerts would not reach it: add a notifications.{channel} section "
                    f"or remove {channel!r} from the route"
                )
        routes[severity] = tuple(dict.fromkeys(channels))
    return routes


_ZERO_ALLOWED = frozenset({"group_wait", "tick_interval", "receipt_retention", "retention"})
"""Durations for which 0 means something (no wait, no ticker, keep nothing); every other must be > 0."""


def _duration(section: Mapping[str, Any], key: str, path: str, default: float, problems: Problems) -> float:
    """`section[key]` in seconds (`default` when absent or wrong, with the problem appended).

    Zero is refused except for `_ZERO_ALLOWED`: it parsed, then failed at run time (a `silence_duration`
    of 0s makes a silence Alertmanager rejects on every ack; a `lease` or `poll_interval` of 0 spins).
    """
    if key not in section:
        return default
    try:
        seconds = parse_duration(section[key])
    except ValueError as exc:
        problems.append(f"{path}.{key}: {exc}")
        return default
    if seconds <= 0 and key not in _ZERO_ALLOWED:
        problems.append(f"{path}.{key}: must be > 0, got {section[key]!r}")
        return default
    return seconds


def _positive_int(section: Mapping[str, Any], key: str, path: str, default: int, problems: Problems) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f"{path}.{key}: must be an integer >= 1")
        return default
    return value


def _outbox(value: Any, problems: Problems) -> OutboxSettings:
    path = "alerting.outbox"
    section = _mapping(value, path, problems) or {}
    defaults = OutboxSettings()
    durations = ("initial_backoff", "max_backoff", "lease", "poll_interval", "retention")
    _unknown(section, {"max_attempts", "concurrency", *durations}, path, problems)
    values: dict[str, Any] = {
        "max_attempts": _positive_int(section, "max_attempts", path, defaults.max_attempts, problems),
        "concurrency": _positive_int(section, "concurrency", path, defaults.concurrency, problems),
    }
    for key in durations:
        values[key] = _duration(section, key, path, getattr(defaults, key), problems)
    return OutboxSettings(**values)


def _grouping(alerting: Mapping[str, Any], channels: Mapping[str, Any], problems: Problems) -> GroupingSettings:
    """`alerting.group_wait`, `alerting.group_threshold` and the channels' `group` and `max_per_minute`."""
    defaults = GroupingSettings()
    wait = _duration(alerting, "group_wait", "alerting", defaults.group_wait, problems)
    threshold = alerting.get("group_threshold", defaults.group_threshold)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0 or threshold == 1:
        problems.append("alerting.group_threshold: must be an integer >= 2 (0: never group)")
        threshold = defaults.group_threshold
    return GroupingSettings(
        group_wait=wait if threshold else 0.0,
        group_threshold=threshold,
        ungrouped=frozenset(name for name, section in channels.items() if section.get("group") is False),
        max_per_minute={
            name: int(section["max_per_minute"])
            for name, section in channels.items()
            if isinstance(section.get("max_per_minute"), int) and section["max_per_minute"] > 0
        },
    )


def alertmanager_urls(raw: Mapping[str, Any]) -> list[str]:
    """The http(s) replicas of the top-level `alertmanager:` section (`url` or `urls`), in order."""
    section = raw.get("alertmanager")
    if not isinstance(section, dict):
        return []
    urls = section.get("urls") or [section.get("url")]
    if not isinstance(urls, list):
        return []
    found: list[str] = []
    for url in urls:
        if isinstance(url, str) and url.startswith(("http://", "https://")) and url.rstrip("/") not in found:
            found.append(url.rstrip("/"))
    return found


def first_alertmanager_url(raw: Mapping[str, Any]) -> str:
    """The first replica of the top-level `alertmanager:` section (`url` or `urls`), or ""."""
    urls = alertmanager_urls(raw)
    return urls[0] if urls else ""


def external_labels(raw: Mapping[str, Any]) -> dict[str, str]:
    """The installation's `alertmanager.external_labels` (problems are the `alertmanager:` section's to list)."""
    section = raw.get("alertmanager")
    return parse_external_labels(section.get("external_labels"), []) if isinstance(section, dict) else {}


def _silences(value: Any, problems: Problems, fallback_urls: list[str] | None) -> SilenceSettings:
    """Silence settings; `fallback_urls` are the top-level `alertmanager:` replicas, used without a url here.

    `fallback_urls` is None when the caller sees only the `alerting:` section (a missing url is not judged).
    """
    path = "alerting.alertmanager"
    section = _mapping(value, path, problems) or {}
    _unknown(section, {"url", "silence_on_ack", "follow_silences", "silence_duration", "resolve_after"}, path, problems)
    url = section.get("url", "")
    if url != "" and (problem := http_url_problem(url)):
        problems.append(f"{path}.url: {problem}")
        url = ""
    enabled = section.get("silence_on_ack", False)
    if not isinstance(enabled, bool):
        problems.append(f"{path}.silence_on_ack: must be true or false")
        enabled = False
    follow = section.get("follow_silences", True)
    if not isinstance(follow, bool):
        problems.append(f"{path}.follow_silences: must be true or false")
        follow = True
    # A url here is the one Alertmanager asked; without it every top-level replica is (silences made on
    # one replica reach the others only by gossip, which a replica that is down misses).
    replicas = (url,) if url else tuple(fallback_urls or ())
    url = url or (replicas[0] if replicas else "")
    if enabled and not url and fallback_urls is not None:
        problems.append(f"{path}.silence_on_ack: needs {path}.url (or the top-level alertmanager.url)")
    duration = _duration(section, "silence_duration", path, SilenceSettings.duration, problems)
    resolve_after = _duration(section, "resolve_after", path, SilenceSettings.resolve_after, problems)
    return SilenceSettings(
        url=url,
        replicas=replicas,
        silence_on_ack=enabled,
        follow_silences=follow,
        duration=duration,
        resolve_after=resolve_after,
    )


def parse_settings(raw: Mapping[str, Any], base: Path, problems: Problems, *, whole: bool = True) -> GatewaySettings:
    """Parse the `notifications` and `alerting` sections of a raw config, appending every problem.

    `whole` is False when `raw` holds only the section being validated (cross-section checks are skipped).
    """
    notifications = _mapping(raw.get("notifications"), "notifications", problems) or {}
    _unknown(notifications, {*CHANNELS, "routes"}, "notifications", problems)
    channels: dict[str, dict[str, Any]] = {}
    # A channel's key written at all configures it: `pagerduty: {}`, or `pagerduty:` with its keys commented
    # out, is a section missing its required keys, not a channel left out (routes would silently skip it).
    written = [name for name in CHANNELS if name in notifications]
    for name in written:
        value = notifications[name]
        section = {} if value is None else _mapping(value, f"notifications.{name}", problems)
        if section is None:
            continue
        resolved = _channel(name, section, problems, base)
        if resolved is not None:
            channels[name] = resolved
    if "email" in channels and isinstance(raw.get("external_url"), str):
        # The mail notifier's fallback for its Message-IDs' domain (`alerting.notify.mail.message_id_domain`).
        channels["email"]["external_url"] = raw["external_url"]
    # A channel whose section has problems of its own still counts as configured here: one problem each.
    configured = set(written)
    routes = _routes(notifications.get("routes"), configured, problems)

    alerting = _mapping(raw.get("alerting"), "alerting", problems) or {}
    path = "alerting"
    repeat = _duration(alerting, "repeat_interval", path, GatewaySettings.repeat_interval, problems)
    max_body = _positive_int(alerting, "max_body_bytes", path, GatewaySettings.max_body_bytes, problems)
    settings = GatewaySettings(
        channels=channels,
        routes=routes,
        slack_signing_secret=str(channels.get("slack", {}).get("signing_secret") or ""),
        pagerduty_webhook_secrets=tuple(channels.get("pagerduty", {}).get("webhook_secret") or ()),
        repeat_interval=repeat,
        tick_interval=_duration(alerting, "tick_interval", path, GatewaySettings.tick_interval, problems),
        max_body_bytes=max_body,
        receipt_retention=_duration(alerting, "receipt_retention", path, GatewaySettings.receipt_retention, problems),
        outbox=_outbox(alerting.get("outbox"), problems),
        grouping=_grouping(alerting, channels, problems),
        silences=_silences(alerting.get("alertmanager"), problems, alertmanager_urls(raw) if whole else None),
        external_labels=external_labels(raw),
    )
    if "email" in channels:
        channels["email"]["acknowledge_in"] = acknowledge_in(settings)
    return settings


def acknowledge_in(settings: GatewaySettings) -> dict[str, tuple[str, ...]]:
    """Per severity, where the mails may tell people to acknowledge: a channel routed that llmcost hears from.

    Every mail said "Acknowledge in Slack or PagerDuty": a warning's, which never reached PagerDuty, too, and
    with no `webhook_secret` llmcost refuses PagerDuty's webhooks, so an ack given there went unseen.
    """
    verified = {
        "slack": ("Slack", settings.slack_signing_secret),
        "pagerduty": ("PagerDuty", settings.pagerduty_webhook_secrets),
    }
    return {
        severity: tuple(verified[c][0] for c in settings.channels_for(severity) if c in verified and verified[c][1])
        for severity in SEVERITIES
    }


def settings_from_config(config: Config) -> GatewaySettings:
    """Typed settings from a loaded `Config` (raises `ConfigError` listing every problem)."""
    problems: Problems = []
    base = config.source.resolve().parent if config.source is not None else Path.cwd()
    settings = parse_settings(config.raw, base, problems)
    if problems:
        raise ConfigError(problems)
    return settings


def validate_notifications(section: Any, problems: Problems, base: Path) -> None:
    """Append the problems of a `notifications:` section."""
    parse_settings({"notifications": section}, base, problems, whole=False)


def validate_alerting(section: Any, problems: Problems, base: Path) -> None:
    """Append the problems of the gateway's keys of an `alerting:` section."""
    # Only the gateway's keys are checked: other parts of llmcost may keep settings in `alerting:` too.
    parse_settings({"alerting": section}, base, problems, whole=False)


def check_silences(raw: dict[str, Any], problems: Problems) -> None:
    """`alerting.alertmanager.silence_on_ack` needs a url there or in the top-level `alertmanager:` section."""
    alerting = raw.get("alerting")
    section = alerting.get("alertmanager") if isinstance(alerting, dict) else None
    enabled = isinstance(section, dict) and section.get("silence_on_ack") is True
    if enabled and not section.get("url") and not first_alertmanager_url(raw):  # type: ignore[union-attr]
        path = "alerting.alertmanager"
        problems.append(f"{path}.silence_on_ack: needs {path}.url (or the top-level alertmanager.url)")
