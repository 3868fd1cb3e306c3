"""The YAML configuration: parsed into typed sections, with every problem reported at once.

This module parses the sections the exporter owns. Sections owned by the code that uses the exporter
(the application's `budgets`, `detection`, `notifications`, …) are kept as raw data in `Config.raw`
and validated by the validators the caller passes in (`ExtraSections`), so that one `parse_config`
lists every problem of the whole file in one run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from exporter.redaction import redact
from exporter.retention import RetentionConfig, parse_retention

DEFAULT_DB_URL = "sqlite:///llmcost.db"
DEFAULT_LISTEN = "127.0.0.1:9800"


class ConfigError(ValueError):
    """A configuration with problems; `problems` lists each as `path: message`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class ListenError(ValueError):
    """The listen address is malformed or not allowed (raised by `exporter.server`)."""


ENDPOINT_GROUPS = {"ingest": "ingest_tokens", "admin": "admin_tokens", "webhook": "webhook_tokens"}
"""The endpoint groups that must have tokens (or be listed in `auth.open`) on a non-loopback listen."""
OPENABLE = (*ENDPOINT_GROUPS, "metrics")


@dataclass
class AuthConfig:
    """Bearer tokens; an empty list leaves its endpoints open (loopback only, unless listed in `open`)."""

    ingest_tokens: list[str] = field(default_factory=list)
    admin_tokens: list[str] = field(default_factory=list)
    webhook_tokens: list[str] = field(default_factory=list)
    metrics_tokens: list[str] = field(default_factory=list)
    # Endpoint groups deliberately left without tokens on a non-loopback listen (logged loudly).
    open: list[str] = field(default_factory=list)

    def unguarded(self) -> list[str]:
        """The endpoint groups of ENDPOINT_GROUPS without tokens."""
        return [group for group, attr in ENDPOINT_GROUPS.items() if not getattr(self, attr)]

    @property
    def any_configured(self) -> bool:
        """True when at least one token list guards its endpoints."""
        return bool(self.ingest_tokens or self.admin_tokens or self.webhook_tokens)


@dataclass
class IngestConfig:
    """Limits that keep one request from taking the process down."""

    max_body_bytes: int = 64 * 1024 * 1024
    max_batch_events: int = 100_000
    max_future_skew_seconds: float = 300.0
    max_metadata_bytes: int = 16 * 1024
    # JSON values (objects, arrays, strings, numbers) one body may hold: what the parser would build.
    max_json_values: int = 2_000_000
    # How long a request waits for its commit before asking whether the store answers at all: a busy one
    # is waited for again, a silent one (paused, partitioned, host gone without a FIN) is answered 503 +
    # Retry-After within 2 s more (exporter/commit_queue.py). 6 + 2 stays below the Python client's 10 s
    # timeout, so the client sees the 503 rather than its own timeout.
    commit_timeout_seconds: float = 6.0


@dataclass
class HttpConfig:
    """Limits on connections, so that slow or idle clients cannot hold the server's sockets."""

    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 60.0
    keep_alive_seconds: float = 5.0
    max_connections: int = 1000


STORE_SERIES = ("every_process", "leader")
"""Values of `metrics.store_series` (docs/deployment.md#prometheus-and-several-processes)."""


@dataclass
class MetricsConfig:
    """Opt-in labels for the usage metrics and the cardinality cap that folds the rest."""

    extra_labels: list[str] = field(default_factory=list)
    max_series_per_label: int = 1000
    rank_refresh_seconds: float = 60.0
    """How long the kept values of a folded label last; every process on a store switches at once."""
    store_series: str = "every_process"
    """Which processes expose the series read from the store: `every_process`, or only the scheduler `leader`."""


@dataclass
class OtlpConfig:
    """`POST /v1/traces`: which span or resource attributes name an event's `service` and `project`.

    For each, the names are tried in order, on the span's attributes first and then on its resource's;
    the first one present wins. None present leaves the field empty.
    """

    service_attributes: list[str] = field(default_factory=lambda: ["service.name"])
    project_attributes: list[str] = field(default_factory=lambda: ["llmcost.project"])


@dataclass
class Config:
    """The whole configuration; unknown sections are kept in `raw` for the modules that own them."""

    listen: str = DEFAULT_LISTEN
    database_url: str = DEFAULT_DB_URL
    auth: AuthConfig = field(default_factory=AuthConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    otlp: OtlpConfig = field(default_factory=OtlpConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    price_overrides_file: str | None = None
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    grafana_url: str | None = None
    """Where the console links for the Grafana dashboards (top-level `grafana_url`; no link when unset)."""
    external_url: str | None = None
    """llmcost's own public URL (links in alerts, runbook URLs); None: derived from `listen`."""
    raw: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None


Problems = list[str]
SectionValidator = Callable[[Any, Problems, Path], None]
"""Validates one section owned outside the exporter: (raw section, problems, base dir) → appends problems."""
WholeConfigCheck = Callable[[dict[str, Any], Problems], None]
"""A check needing the whole raw config (one section's setting depending on another's); appends problems."""

OWN_SECTIONS = frozenset(
    "listen external_url database auth ingest metrics otlp http pricing retention grafana_url".split()  # noqa: SIM905
)
"""The top-level sections the exporter parses itself."""


@dataclass(frozen=True)
class ExtraSections:
    """Sections owned by the code using the exporter, validated in the same run as the exporter's own.

    `validators` run in their order, each only when its section is present; `checks` run after them,
    always. A section absent from both `OWN_SECTIONS` and `validators` is reported as unknown.
    """

    validators: Mapping[str, SectionValidator] = field(default_factory=dict)
    checks: Sequence[WholeConfigCheck] = ()


NO_EXTRA_SECTIONS = ExtraSections()


# A file or variable named for tokens was meant to hold some: read as "no tokens", it would leave the
# endpoints open on loopback, where a config without that key is the way to say so.
_EMPTY_TOKENS = " (no tokens would leave those endpoints open: set them, or remove the key)"


UNREAD_SECRET = "secret-not-read-by-this-command"  # noqa: S105 (a placeholder, never sent: no command that reads it delivers)
"""What a secret stands for in a command that does not use it (see `secrets_not_needed`)."""

_SECRETS_NOT_NEEDED: ContextVar[bool] = ContextVar("secrets_not_needed", default=False)


@contextmanager
def secrets_not_needed() -> Iterator[None]:
    """Load configs for a command that neither listens nor notifies (`report`, `budgets apply`, `alerts ack`, …).

    Such a command runs in an operator's shell, where the variables and files holding the server's tokens and
    channel secrets (`token_env: SLACK_BOT_TOKEN`) are usually absent: a secret it cannot read stands for
    `UNREAD_SECRET` instead of being a problem, so the channels stay configured (a resolve it causes is still
    queued for them, and the server delivers it). The store's URL (`database.url_env`) is still required.
    """
    reset = _SECRETS_NOT_NEEDED.set(True)
    try:
        yield
    finally:
        _SECRETS_NOT_NEEDED.reset(reset)


def _unread(key: str, path: str) -> Any:
    """`UNREAD_SECRET` in the shape `key` takes, when this command does not need it; else None."""
    if not _SECRETS_NOT_NEEDED.get() or path == "database":
        return None
    return [UNREAD_SECRET] if key.endswith("tokens") else UNREAD_SECRET


def resolve_secret(section: dict[str, Any], key: str, problems: Problems, path: str, base: Path) -> Any:
    """The value of `key`, or of `key_file` (a path) or `key_env` (a variable name) instead.

    `path` is the section's own path (`database`, `notifications.slack`): problems name `path.key_file`.
    For a key ending in `tokens`, a file holds one token a line (see `read_token_file`).
    """
    given = _given_forms(section, key)
    if len(given) > 1:
        problems.append(f"{path}: give only one of {', '.join(given)}")
        return None
    if f"{key}_file" in given:
        secret_path = _secret_path(section[f"{key}_file"], base)
        try:
            content = secret_path.read_text(encoding="utf-8")
        except OSError as exc:
            if (unread := _unread(key, path)) is not None:
                return unread
            problems.append(f"{path}.{key}_file: cannot read {secret_path}: {exc.strerror}")
            return None
        except UnicodeDecodeError as exc:
            problems.append(f"{path}.{key}_file: {secret_path} is not UTF-8 text (byte {exc.start})")
            return None
        if not content.strip() and (unread := _unread(key, path)) is not None:
            return unread  # an empty file is as unread as a missing one to a command that does not need it
        if not key.endswith("tokens"):
            return content.strip()
        tokens = read_token_file(content)
        if not tokens:
            problems.append(f"{path}.{key}_file: {secret_path} holds no token{_EMPTY_TOKENS}")
            return None
        return tokens
    if f"{key}_env" in given:
        name = str(section[f"{key}_env"])
        if name not in os.environ:
            if (unread := _unread(key, path)) is not None:
                return unread
            problems.append(f"{path}.{key}_env: environment variable {name} is not set")
            return None
        value = os.environ[name]
        # `export SLACK_BOT_TOKEN=` (an env file's blank line sourced) in an operator's shell stopped
        # `llmcost report` as a secret it never uses: blank stands for unset to a command that does not need it.
        if not value.strip() and (unread := _unread(key, path)) is not None:
            return unread
        if not key.endswith("tokens"):
            # Stripped as a `*_file` value is: a Kubernetes Secret made `--from-file` hands the file's final
            # newline to the variable, and the same secret was accepted from the file and refused from here.
            return value.strip()
        tokens = [t for t in value.replace(",", " ").split() if t]
        if not tokens:
            problems.append(f"{path}.{key}_env: environment variable {name} is empty{_EMPTY_TOKENS}")
            return None
        return tokens
    return section.get(key)


def empty_secret_problem(section: Mapping[str, Any], key: str, path: str, base: Path) -> str:
    """The problem of a required `key` that has no value, named by the form it was given in, if any.

    A `key_env` naming an empty variable, or a `key_file` that is empty, is named as such: a problem on
    `key` itself (`notifications.slack.token: required`, `database.url: is not a database URL`) sent the
    reader to write into the config a value it means to take from elsewhere.
    """
    given = _given_forms(section, key)
    if not given:
        return f"{path}.{key}: required"
    form = given[0]
    if form.endswith("_env"):
        return f"{path}.{form}: environment variable {section[form]} is empty"
    if form.endswith("_file"):
        return f"{path}.{form}: {_secret_path(section[form], base)} is empty"
    return f"{path}.{key}: must not be empty"


def _given_forms(section: Mapping[str, Any], key: str) -> list[str]:
    """Which of `key`, `key_file` and `key_env` the section gives."""
    return [form for form in (key, f"{key}_file", f"{key}_env") if section.get(form) is not None]


def _secret_path(value: Any, base: Path) -> Path:
    """A `*_file` setting's path, relative ones taken from the config file's directory (`base`)."""
    path = Path(str(value))
    return path if path.is_absolute() else base / path


def read_token_file(content: str) -> list[str]:
    """The tokens of a token file: one a line, surrounding whitespace stripped; blank lines and `#` comments skipped.

    A stray space or a comment must never become a token that a client would have to send.
    """
    tokens = (line.strip() for line in content.splitlines())
    return [token for token in tokens if token and not token.startswith("#")]


def _expect(value: Any, kind: type | tuple[type, ...], path: str, problems: Problems) -> bool:
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        problems.append(f"{path}: must be a number, got a boolean")
        return False
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        problems.append(f"{path}: must be {names}, got {type(value).__name__}")
        return False
    return True


def _section(raw: dict[str, Any], name: str, problems: Problems) -> dict[str, Any]:
    value = raw.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{name}: must be a mapping, got {type(value).__name__}")
        return {}
    return value


def _unknown_keys(section: dict[str, Any], allowed: set[str], path: str, problems: Problems) -> None:
    for key in section:
        if key not in allowed:
            problems.append(f"{path}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _parse_auth(raw: dict[str, Any], problems: Problems, base: Path) -> AuthConfig:
    section = _section(raw, "auth", problems)
    names = ("ingest_tokens", "admin_tokens", "webhook_tokens", "metrics_tokens")
    _unknown_keys(section, {f"{n}{s}" for n in names for s in ("", "_file", "_env")} | {"open"}, "auth", problems)
    auth = AuthConfig()
    opened = section.get("open", [])
    if _expect(opened, list, "auth.open", problems):
        for i, group in enumerate(opened):
            if group not in OPENABLE:
                problems.append(f"auth.open[{i}]: unknown endpoint group {group!r} (known: {', '.join(OPENABLE)})")
        auth.open = [str(g) for g in opened if g in OPENABLE]
    for name in names:
        value = resolve_secret(section, name, problems, "auth", base)
        if value is None:
            continue
        if not isinstance(value, list):
            problems.append(f"auth.{name}: must be a list of tokens, got {type(value).__name__}")
            continue
        bad = [i for i, t in enumerate(value) if not isinstance(t, str) or not t.strip()]
        if bad:
            problems.append(f"auth.{name}: entries {bad} are not tokens (each must be a non-empty string)")
            continue
        # .env.example's values ("change-me-…") would otherwise pass as tokens when a stack is
        # started before they were replaced: refused by name, whatever their length.
        placeholders = [i for i, t in enumerate(value) if is_placeholder(t)]
        if placeholders:
            problems.append(
                f"auth.{name}: entries {placeholders} are still the placeholder from .env.example; "
                "replace them (e.g. with `openssl rand -hex 32`)"
            )
            continue
        short = [i for i, t in enumerate(value) if len(t) < 16]
        if short:
            problems.append(f"auth.{name}: tokens must be at least 16 characters (entries {short})")
            continue
        setattr(auth, name, value)
    return auth


def _parse_ingest(raw: dict[str, Any], problems: Problems) -> IngestConfig:
    section = _section(raw, "ingest", problems)
    cfg = IngestConfig()
    _unknown_keys(section, set(cfg.__dataclass_fields__), "ingest", problems)
    for name, kind in (
        ("max_body_bytes", int),
        ("max_batch_events", int),
        ("max_future_skew_seconds", (int, float)),
        ("max_metadata_bytes", int),
        ("max_json_values", int),
        ("commit_timeout_seconds", (int, float)),
    ):
        if name in section and _expect(section[name], kind, f"ingest.{name}", problems):
            if section[name] <= 0:
                problems.append(f"ingest.{name}: must be > 0")
            else:
                setattr(cfg, name, section[name])
    return cfg


def _parse_http(raw: dict[str, Any], problems: Problems) -> HttpConfig:
    section = _section(raw, "http", problems)
    cfg = HttpConfig()
    _unknown_keys(section, set(cfg.__dataclass_fields__), "http", problems)
    for name, kind in (
        ("header_timeout_seconds", (int, float)),
        ("body_timeout_seconds", (int, float)),
        ("keep_alive_seconds", (int, float)),
        ("max_connections", int),
    ):
        if name in section and _expect(section[name], kind, f"http.{name}", problems):
            if section[name] <= 0:
                problems.append(f"http.{name}: must be > 0")
            else:
                setattr(cfg, name, section[name])
    return cfg


def _parse_metrics(raw: dict[str, Any], problems: Problems) -> MetricsConfig:
    section = _section(raw, "metrics", problems)
    cfg = MetricsConfig()
    _unknown_keys(
        section, {"extra_labels", "max_series_per_label", "rank_refresh_seconds", "store_series"}, "metrics", problems
    )
    extra = section.get("extra_labels", [])
    if _expect(extra, list, "metrics.extra_labels", problems):
        for i, label in enumerate(extra):
            if label != "user":
                problems.append(f"metrics.extra_labels[{i}]: only 'user' can be added, got {label!r}")
        cfg.extra_labels = [str(x) for x in extra if x == "user"]
    cap = section.get("max_series_per_label", cfg.max_series_per_label)
    if _expect(cap, int, "metrics.max_series_per_label", problems):
        if cap < 1:
            problems.append("metrics.max_series_per_label: must be >= 1")
        else:
            cfg.max_series_per_label = cap
    refresh = section.get("rank_refresh_seconds", cfg.rank_refresh_seconds)
    if _expect(refresh, (int, float), "metrics.rank_refresh_seconds", problems):
        if not math.isfinite(refresh) or refresh <= 0:  # epochs are floor(now / refresh)
            problems.append("metrics.rank_refresh_seconds: must be a finite number > 0")
        else:
            cfg.rank_refresh_seconds = float(refresh)
    store_series = section.get("store_series", cfg.store_series)
    if store_series not in STORE_SERIES:
        problems.append(f"metrics.store_series: must be one of {', '.join(STORE_SERIES)}, got {store_series!r}")
    else:
        cfg.store_series = store_series
    return cfg


def _parse_otlp(raw: dict[str, Any], problems: Problems) -> OtlpConfig:
    section = _section(raw, "otlp", problems)
    cfg = OtlpConfig()
    _unknown_keys(section, set(cfg.__dataclass_fields__), "otlp", problems)
    for name in cfg.__dataclass_fields__:
        if name not in section:
            continue
        value = section[name]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            problems.append(f"otlp.{name}: must be a non-empty list of attribute names")
            continue
        setattr(cfg, name, list(value))
    return cfg


SUPPORTED_BACKENDS = ("sqlite", "postgresql")
"""The database backends a store can live on (`postgres://` is read as `postgresql://`)."""
_SUPPORTED_DRIVERS = frozenset(("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg"))


def http_url_problem(value: Any) -> str | None:
    """Why `value` is not a usable absolute http(s) URL (None when it is): the one check of every URL setting.

    A prefix test alone let through what fails only when the URL is first used, after the server started:
    a number (`events_url: 5`), an unbalanced IPv6 bracket (`http://[::1`), no host (`http://`), a port
    that is not a number. Every send then failed and dead-lettered; now `check-config` and the server's
    config load name the field. The URL is echoed redacted, broken or not: `https://llmcost:pw@am:9O93`
    printed its password in `check-config`'s output, and one with `?token=` its token.
    """
    if not isinstance(value, str):
        return f"must be an http(s) URL, got {type(value).__name__}"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- parsing the port is what raises on `host:abc` or `host:99999`
    except ValueError as exc:
        return f"must be an http(s) URL, got {redact(value)!r} ({exc})"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return f"must be an http(s) URL, got {redact(value)!r}"
    return None


PLACEHOLDER_PREFIX = "change-me"
"""How every value of `.env.example` starts (`change-me-postgres`, `change-me-ingest`, …)."""


def is_placeholder(value: str) -> bool:
    """Whether `value` is still one of `.env.example`'s placeholders, which anyone can read."""
    return value.lower().startswith(PLACEHOLDER_PREFIX)


def database_url_warnings(url: str) -> list[str]:
    """What `check-config` warns about in a usable store URL, never echoing the URL or its password.

    docker-compose.yml builds `database.url` from `POSTGRES_PASSWORD`: a stack started with `.env.example`
    copied unchanged runs its store with a password published in this repository. Tokens left as
    placeholders are refused outright; the store's password is a warning, since the database was created
    with it and changing it takes an `ALTER ROLE` as well.
    """
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except (ValueError, TypeError):
        return []
    if password is None or not is_placeholder(str(password)):
        return []
    return [
        "database.url: its password is still the POSTGRES_PASSWORD placeholder from .env.example, which anyone "
        "can read: set POSTGRES_PASSWORD in .env to a secret (`openssl rand -hex 32`), change the role's "
        "password to match (ALTER ROLE llmcost PASSWORD …) and recreate llmcost (docs/monitoring.md)"
    ]


def database_url_problem(url: str) -> str | None:
    """Why `url` cannot name a store (None when it can), without echoing it (it may hold a password).

    Checked before any store is opened: SQLAlchemy would fail with a traceback (an unparseable URL, or a
    backend whose driver is not installed, such as `mysql://`).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "is not a database URL such as sqlite:///llmcost.db or postgresql+psycopg://…"
    if parsed.drivername not in _SUPPORTED_DRIVERS:
        return (
            f"unsupported database backend {parsed.drivername!r} (supported: {', '.join(SUPPORTED_BACKENDS)}; "
            "e.g. sqlite:///llmcost.db or postgresql+psycopg://user@host/db)"
        )
    if parsed.get_backend_name() == "postgresql":
        return _unknown_libpq_option(parsed.query)
    return None


def _unknown_libpq_option(query: Mapping[str, Any]) -> str | None:
    """A query parameter libpq does not know (a typo such as `sslmod`), which psycopg refuses at connect.

    The URL's query is passed to libpq as connection options (`sslmode`, `connect_timeout`, `options`, …):
    an unknown one failed the first connection with a ProgrammingError traceback (`serve`) or read as a
    database without a store (the reading commands).
    """
    if not query:
        return None
    import psycopg

    known = {option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults()}
    unknown = sorted(name for name in query if name not in known)
    if not unknown:
        return None
    return (
        f"unknown connection option {unknown[0]!r} in the URL's query (libpq options such as sslmode, "
        "sslrootcert, connect_timeout, application_name, options; see docs/configuration.md)"
    )


def listen_problem(listen: str) -> str | None:
    """Why `listen` is not a usable `HOST:PORT` address (None when it is), e.g. `port must be 1-65535, got 99999`."""
    host, sep, port = listen.rpartition(":")
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not sep or not (port.isascii() and port.isdigit()) or not host.strip("[]"):
        return f"must be HOST:PORT (IPv6 as [::1]:9800), got {listen!r}"
    if not 1 <= int(port) <= 65535:
        return f"port must be 1-65535, got {int(port)}"
    return None


def split_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:9800`) into its parts; `ListenError` when malformed or the port is out of range."""
    problem = listen_problem(listen)
    if problem:
        raise ListenError(f"listen address {problem}")
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def _overrides_problems(path: Path) -> list[str]:
    """Every problem of a price overrides file, so that no command starts with one it would crash on."""
    from exporter.pricing.overrides import PriceOverrideError, load_overrides

    try:
        load_overrides(path)
    except PriceOverrideError as exc:
        return [f"pricing.overrides_file: {path}: {problem}" for problem in exc.problems]
    except UnicodeDecodeError as exc:
        return [f"pricing.overrides_file: {path}: not UTF-8 text (byte {exc.start})"]
    return []


def parse_config(
    raw: Any,
    *,
    base: Path | None = None,
    source: Path | None = None,
    sections: ExtraSections = NO_EXTRA_SECTIONS,
) -> Config:
    """Build a `Config` from parsed YAML, raising `ConfigError` with every problem found.

    `sections`: the validators of the sections the exporter does not own (see `ExtraSections`).
    """
    base = base or Path.cwd()
    problems: Problems = []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"the top level must be a mapping, got {type(raw).__name__}"])
    known = OWN_SECTIONS | set(sections.validators)
    for key in raw:
        if key not in known:
            problems.append(f"{key}: unknown section (known: {', '.join(sorted(known))})")
    cfg = Config(raw=raw, source=source)
    if "listen" in raw and _expect(raw["listen"], str, "listen", problems):
        problem = listen_problem(raw["listen"])
        if problem:
            problems.append(f"listen: {problem}")
        else:
            cfg.listen = raw["listen"]
    if raw.get("grafana_url") is not None and _expect(raw["grafana_url"], str, "grafana_url", problems):
        if problem := http_url_problem(raw["grafana_url"]):
            problems.append(f"grafana_url: {problem}")
        elif "@" in urlsplit(raw["grafana_url"]).netloc:
            # The URL is shown on the console (no token needed) and in every alert's Dashboard link.
            problems.append("grafana_url: must not carry a user or password (it is shown on the console and in alerts)")
        else:
            cfg.grafana_url = raw["grafana_url"]
    if "external_url" in raw and _expect(raw["external_url"], str, "external_url", problems):
        if problem := http_url_problem(raw["external_url"]):
            # Echoed (redacted) as every URL setting is: `llmcost.example.com`, scheme left out, was refused
            # without the value, so the reader could not see what was wrong with it.
            problems.append(f"external_url: {problem} (an absolute URL, such as https://llmcost.example.com)")
        elif "#" in raw["external_url"]:
            problems.append(f"external_url: must have no fragment (#…), got {redact(raw['external_url'])!r}")
        else:
            cfg.external_url = raw["external_url"].rstrip("/")
    database = _section(raw, "database", problems)
    _unknown_keys(database, {"url", "url_file", "url_env"}, "database", problems)
    url = resolve_secret(database, "url", problems, "database", base)
    if isinstance(url, str) and not url.strip():
        problems.append(empty_secret_problem(database, "url", "database", base))
    elif url is not None and _expect(url, str, "database.url", problems):
        problem = database_url_problem(url)
        if problem:
            problems.append(f"database.url: {problem}")
        else:
            cfg.database_url = url
    cfg.auth = _parse_auth(raw, problems, base)
    cfg.ingest = _parse_ingest(raw, problems)
    cfg.metrics = _parse_metrics(raw, problems)
    cfg.otlp = _parse_otlp(raw, problems)
    cfg.http = _parse_http(raw, problems)
    pricing = _section(raw, "pricing", problems)
    _unknown_keys(pricing, {"overrides_file"}, "pricing", problems)
    if pricing.get("overrides_file") is not None:
        overrides = Path(str(pricing["overrides_file"]))
        overrides = overrides if overrides.is_absolute() else base / overrides
        if overrides.is_dir():
            problems.append(f"pricing.overrides_file: {overrides} is a directory")
        elif not overrides.is_file():
            problems.append(f"pricing.overrides_file: {overrides} does not exist")
        else:
            problems += _overrides_problems(overrides)
        cfg.price_overrides_file = str(overrides)
    cfg.retention = parse_retention(raw.get("retention"), problems)
    for name, validate in sections.validators.items():
        if name in raw:
            validate(raw[name], problems, base)
    for check in sections.checks:
        check(raw, problems)
    if problems:
        raise ConfigError(problems)
    return cfg


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong with a YAML text and where (line, column), without quoting the text.

    PyYAML's own message quotes the offending line, and in a config that line may hold a password or a
    token (`password: "s3cret" x`): the message is printed by `check-config` and logged by `serve`.
    """
    if not isinstance(exc, yaml.MarkedYAMLError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    where = exc.problem_mark or exc.context_mark
    text = exc.problem or exc.context or "malformed"
    if where is not None:
        text = f"line {where.line + 1}, column {where.column + 1}: {text}"
    if exc.context and exc.problem and exc.context_mark is not None:
        text += f" ({exc.context} at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
    return text


def load_config(path: str | Path | None, *, sections: ExtraSections = NO_EXTRA_SECTIONS) -> Config:
    """Read a YAML file (or return defaults for None); relative paths inside resolve against its folder.

    `sections`: as for `parse_config`.
    """
    if path is None:
        return Config()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise ConfigError([f"{file}: is a directory, not a config file"]) from None
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{file}: not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x})"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}: not valid YAML: {yaml_problem(exc)}"]) from None
    return parse_config(raw, base=file.resolve().parent, source=file, sections=sections)
