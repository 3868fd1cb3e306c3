"""The top-level `alertmanager:` section: where llmcost pushes its own alerts.

```yaml
alertmanager:
  url: http://alertmanager:9093        # or urls: [http://am-0:9093, http://am-1:9093] (every replica)
  resend_interval: 1m                  # firing alerts are re-sent this often; endsAt = now + 4 x this (>= 3m)
  resolved_resend: 15m                 # resolved alerts are re-sent this long (a replica that was down hears it)
  timeout: 10s                         # per request
  retries: 2                           # extra attempts per replica and push, with a short backoff
  external_labels: {cluster: team-a}   # added to every alert pushed: which installation it is (default none)
```
Without the section llmcost sends its alerts to its gateway directly, as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from alerting.gateway.settings import parse_duration
from alerting.installation import parse_external_labels
from exporter.config import Config, ConfigError, http_url_problem
from exporter.redaction import REDACTED

PATH = "alertmanager"
_KEYS = {"url", "urls", "resend_interval", "resolved_resend", "timeout", "retries", "external_labels"}


@dataclass(frozen=True)
class PushSettings:
    """Where and how often llmcost's alerts are pushed; `urls` empty means the direct path."""

    urls: tuple[str, ...] = ()
    resend_interval: float = 60.0
    resolved_resend: float = 15 * 60.0
    timeout: float = 10.0
    retries: int = 2
    replicas: dict[str, str] = field(default_factory=dict)
    """Replica id (a short hash of its URL, used in stored counters) → its URL as shown (`shown_url`)."""
    external_labels: dict[str, str] = field(default_factory=dict)
    """Added to every pushed alert, naming this installation (`alerting.installation`)."""

    @property
    def enabled(self) -> bool:
        """True when at least one Alertmanager is configured."""
        return bool(self.urls)


def safe_url(url: str) -> str:
    """A replica URL without user info, query or fragment (fit for logs and metric labels)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, _netloc(url), parts.path.rstrip("/"), "", ""))


def _netloc(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    return netloc if parts.port is None else f"{netloc}:{parts.port}"


def replica_id(url: str) -> str:
    """A short stable id for a replica (stored counter names are at most 64 characters).

    Its identity, never shown: a hash of the URL with its path (two replicas behind one proxy differ
    only there), so the stored counters of a replica go on whatever its shown form (`shown_url`).
    """
    return hashlib.sha256(safe_url(url).encode()).hexdigest()[:12]


def shown_url(url: str) -> str:
    """A replica URL as logs and the `alertmanager` label of `/metrics` show it: scheme, host and port.

    A path is hidden whole, as a Slack webhook's is (`exporter.redaction`): an Alertmanager reached
    through a proxy may carry the proxy's token there (`https://am.example/api/TOKEN123`), and no rule
    tells a route prefix from a token.
    """
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{_netloc(url)}"
    return f"{origin}/{REDACTED}" if parts.path.strip("/") else origin


def _shown_replicas(urls: list[str]) -> dict[str, str]:
    """Replica id → shown URL; shown URLs alike (two paths behind one proxy) get their place in `urls`."""
    shown = [shown_url(u) for u in urls]
    return {
        replica_id(u): f"{s} ({PATH}.urls[{i}])" if shown.count(s) > 1 else s
        for i, (u, s) in enumerate(zip(urls, shown, strict=True))
    }


def _seconds(section: Mapping[str, Any], key: str, default: float, problems: list[str]) -> float:
    if key not in section:
        return default
    try:
        value = parse_duration(section[key])
    except ValueError as exc:
        problems.append(f"{PATH}.{key}: {exc}")
        return default
    if value <= 0:
        problems.append(f"{PATH}.{key}: must be > 0")
        return default
    return value


def parse_push_section(section: Any, problems: list[str]) -> PushSettings:
    """Parse the `alertmanager:` section, appending every problem."""
    if section is None:
        return PushSettings()
    if not isinstance(section, dict):
        problems.append(f"{PATH}: must be a mapping, got {type(section).__name__}")
        return PushSettings()
    for key in section:
        if key not in _KEYS:
            problems.append(f"{PATH}.{key}: unknown key (allowed: {', '.join(sorted(_KEYS))})")
    if "url" in section and "urls" in section:
        problems.append(f"{PATH}: give url or urls, not both")
    single = "url" in section and "urls" not in section
    urls = [section["url"]] if single else section.get("urls", [])
    if not isinstance(urls, list) or not urls:
        problems.append(f"{PATH}.urls: must be a non-empty list of URLs")
        urls = []
    good: list[str] = []
    for i, url in enumerate(urls):
        if problem := http_url_problem(url):
            # Name the key as written: `url:` given alone is not a list the person would look for.
            problems.append(f"{PATH}.{'url' if single else f'urls[{i}]'}: {problem}")
        elif url.rstrip("/") not in good:
            good.append(url.rstrip("/"))
    retries = section.get("retries", PushSettings.retries)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        problems.append(f"{PATH}.retries: must be an integer from 0 to 10")
        retries = PushSettings.retries
    return PushSettings(
        urls=tuple(good),
        resend_interval=_seconds(section, "resend_interval", PushSettings.resend_interval, problems),
        resolved_resend=_seconds(section, "resolved_resend", PushSettings.resolved_resend, problems),
        timeout=_seconds(section, "timeout", PushSettings.timeout, problems),
        retries=retries,
        replicas=_shown_replicas(good),
        external_labels=parse_external_labels(section.get("external_labels"), problems),
    )


def push_settings(config: Config) -> PushSettings:
    """Typed settings from a loaded config (raises `ConfigError` listing every problem)."""
    problems: list[str] = []
    settings = parse_push_section(config.raw.get(PATH), problems)
    if problems:
        raise ConfigError(problems)
    return settings


def validate_push_section(section: Any, problems: list[str], _base: Path) -> None:
    """Append the problems of an `alertmanager:` section."""
    parse_push_section(section, problems)
