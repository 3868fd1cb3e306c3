"""Budget definitions: parsing and validation (config file and API alike) and state from a ratio."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alerting.periods import Period
from exporter.collector import OTHER
from exporter.events import LABEL_MAX_LEN
from exporter.http.errors import shown
from exporter.local_time import zone

SCOPES = ("global", "project", "user", "service", "model")
UNITS = ("usd", "tokens", "requests")
MODES = ("track", "soft", "hard")
PERIODS = tuple(p.value for p in Period)
STATES = ("ok", "info", "warning", "critical", "exceeded")
DEFAULT_THRESHOLDS = {"info": 0.5, "warning": 0.8, "critical": 0.95}
ALERT_FOR_STATE = {
    "info": "LLMBudgetInfo",
    "warning": "LLMBudgetWarning",
    "critical": "LLMBudgetCritical",
    "exceeded": "LLMBudgetExceeded",
}
"""The alert name of each level. A budget instance has one alert, named after the highest level reached
(the gateway fingerprints these names as one family, so it keeps one thread per channel)."""
FORECAST_ALERT = "LLMBudgetForecastOverrun"
"""Projected spend at period end over the limit. Also a level of the instance's one alert, between info and
warning: the forecast is the earliest notice of the problem a crossing confirms, so it is the same thread."""
SEVERITY_FOR_ALERT = {
    "LLMBudgetInfo": "info",
    FORECAST_ALERT: "warning",
    "LLMBudgetWarning": "warning",
    "LLMBudgetCritical": "critical",
    "LLMBudgetExceeded": "critical",
}
"""The severity of each alert of a budget instance's one alert (`alerting.model.ESCALATING_ALERTS`)."""
REQUEST_CAP_ALERT = "LLMBudgetRequestCapExceeded"
"""Warning: an ingested call cost more than a budget's `max_cost_per_request` (or tokens); one per period."""
_FIELDS = {
    "name",
    "scope",
    "key",
    "period",
    "limit",
    "unit",
    "thresholds",
    "mode",
    "timezone",
    "description",
    "max_cost_per_request",
    "max_tokens_per_request",
    "fallback_model",
    "max_instances",
}
DEFAULT_MAX_INSTANCES = 1000
"""Instances a `key: "*"` budget tracks per period; further values share one `__other__` instance."""
OTHER_INSTANCE = OTHER  # the same fold as the metrics' label values past their cap
COUNTING_FIELDS = ("scope", "key", "period", "timezone", "max_instances")
"""What decides which calls a budget's spend counts and how it is keyed (`budget_spend` holds cost, tokens
and requests alike, so the unit is not among them)."""


@dataclass(frozen=True)
class Budget:
    """One budget as declared; `key="*"` means one budget per value of the scope's label."""

    name: str
    scope: str
    key: str
    period: str
    limit: float
    unit: str = "usd"
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    mode: str = "track"
    timezone: str = "UTC"
    description: str = ""
    max_cost_per_request: float | None = None
    """USD; a check estimating more is refused by a hard budget, an ingested call above it alerts."""
    max_tokens_per_request: int | None = None
    """Tokens; as `max_cost_per_request`."""
    fallback_model: str = ""
    """Suggested in check answers when this budget is over its limit (or refuses the call)."""
    max_instances: int = DEFAULT_MAX_INSTANCES

    @property
    def label(self) -> str | None:
        """The usage label the scope filters on (None for global)."""
        return None if self.scope == "global" else self.scope

    def matches(self, labels: dict[str, str]) -> str | None:
        """The budget key a label set counts under, or None when it is outside the budget."""
        if self.label is None:
            return ""
        value = labels.get(self.label, "")
        if self.key == "*":
            return value
        return value if value == self.key else None

    def state(self, ratio: float) -> str:
        """Ok / info / warning / critical / exceeded for a spent/limit ratio."""
        if ratio >= 1.0:
            return "exceeded"
        for name in ("critical", "warning", "info"):
            if ratio >= self.thresholds[name]:
                return name
        return "ok"

    def to_json(self) -> dict[str, Any]:
        """The definition as the API returns and stores it (the optional per-request keys only when set)."""
        out: dict[str, Any] = {
            "name": self.name,
            "scope": self.scope,
            "key": self.key,
            "period": self.period,
            "limit": self.limit,
            "unit": self.unit,
            "thresholds": dict(self.thresholds),
            "mode": self.mode,
            "timezone": self.timezone,
            "description": self.description,
            **({"max_instances": self.max_instances} if self.key == "*" else {}),
        }
        # Left out when unset, so definitions stored before these keys existed still compare equal.
        if self.max_cost_per_request is not None:
            out["max_cost_per_request"] = self.max_cost_per_request
        if self.max_tokens_per_request is not None:
            out["max_tokens_per_request"] = self.max_tokens_per_request
        if self.fallback_model:
            out["fallback_model"] = self.fallback_model
        return out


def _got(value: Any) -> str:
    """A refused value as a problem echoes it: its repr (non-printable characters escaped), cut at 64."""
    return shown(repr(value))


def _optional_positive(raw: dict[str, Any], name: str, path: str, problems: list[str], *, integer: bool) -> Any:
    value = raw.get(name)
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or value <= 0:
        problems.append(f"{path}.{name}: must be {'an integer' if integer else 'a number'} > 0, got {_got(value)}")
        return None
    return int(value) if integer else float(value)


def parse_budget(
    raw: Any, path: str, problems: list[str], *, name: str | None = None, stored: bool = False
) -> Budget | None:
    """Validate one budget mapping; append every problem (prefixed by `path`) and return None if any.

    `stored`: a definition read back from the store, which skips the checks added after it may have been
    written (a key no call can carry, a NUL in the description), so an upgrade never drops a budget.
    """
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a mapping, got {type(raw).__name__}")
        return None
    before = len(problems)
    for key in raw:
        if key not in _FIELDS:
            problems.append(f"{path}.{shown(key)}: unknown field (allowed: {', '.join(sorted(_FIELDS))})")
    budget_name = name if name is not None else raw.get("name")
    if not isinstance(budget_name, str) or not budget_name or len(budget_name) > 128 or not budget_name.isprintable():
        problems.append(f"{path}.name: required, a printable string of at most 128 characters")
    elif name is not None and raw.get("name") not in (None, name):
        problems.append(f"{path}.name: {_got(raw.get('name'))} differs from the budget's name {name!r}")
    scope = raw.get("scope", "global")
    if scope not in SCOPES:
        problems.append(f"{path}.scope: must be one of {', '.join(SCOPES)}, got {_got(scope)}")
    key = raw.get("key", "" if scope == "global" else None)
    if scope == "global":
        # A key on a global budget used to be dropped, quietly making a budget over all spend; "" and
        # null stay accepted (stored global definitions carry `key: ""`).
        if key not in (None, ""):
            problems.append(f"{path}.key: given but scope is global (set scope, e.g. project)")
        key = ""
    elif not isinstance(key, str) or not key:
        # An unknown scope is named once, above: echoed here too, a 3,000-character one came back twice.
        which = f" for scope {scope!r}" if scope in SCOPES else ""
        problems.append(f'{path}.key: required{which}: a value, or "*" for each value separately')
    elif not stored and (len(key) > LABEL_MAX_LEN or not key.isprintable()):
        # A label value is printable and at most LABEL_MAX_LEN long (exporter.events), so another key could
        # never match a call; and a NUL in it failed the write on PostgreSQL with a 500.
        problems.append(
            f"{path}.key: must be a label value (a printable string of at most {LABEL_MAX_LEN} characters), "
            f"got {key[:64]!r}"
        )
    period = raw.get("period")
    if period not in PERIODS:
        problems.append(f"{path}.period: must be one of {', '.join(PERIODS)}, got {_got(period)}")
    limit = raw.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not math.isfinite(limit) or limit <= 0:
        problems.append(f"{path}.limit: must be a number > 0, got {_got(limit)}")
    unit = raw.get("unit", "usd")
    if unit not in UNITS:
        problems.append(f"{path}.unit: must be one of {', '.join(UNITS)}, got {_got(unit)}")
    mode = raw.get("mode", "track")
    if mode not in MODES:
        problems.append(f"{path}.mode: must be one of {', '.join(MODES)}, got {_got(mode)}")
    tz = raw.get("timezone", "UTC")
    try:
        zone(str(tz))
    except ValueError:
        problems.append(f"{path}.timezone: unknown IANA timezone {str(tz)[:64]!r}")
    thresholds = dict(DEFAULT_THRESHOLDS)
    given = raw.get("thresholds") or {}
    if not isinstance(given, dict):
        problems.append(f"{path}.thresholds: must be a mapping of info/warning/critical to ratios")
        given = {}
    for level, value in given.items():
        if level not in DEFAULT_THRESHOLDS:
            problems.append(
                f"{path}.thresholds.{level}: unknown level (info, warning, critical; exceeded is always 1.0)"
            )
        elif isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            problems.append(f"{path}.thresholds.{level}: must be a ratio between 0 and 1, got {value!r}")
        else:
            thresholds[level] = float(value)
    if not thresholds["info"] <= thresholds["warning"] <= thresholds["critical"]:
        got = ", ".join(f"{level} {thresholds[level]:g}" for level in ("info", "warning", "critical"))
        problems.append(f"{path}.thresholds: must rise from info to warning to critical, got {got}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{path}.description: must be a string")
    elif not stored and "\x00" in description:
        problems.append(f"{path}.description: must not contain a NUL character")
    max_cost = _optional_positive(raw, "max_cost_per_request", path, problems, integer=False)
    max_tokens = _optional_positive(raw, "max_tokens_per_request", path, problems, integer=True)
    fallback = raw.get("fallback_model") or ""
    if not isinstance(fallback, str) or len(fallback) > 256 or not fallback.isprintable():
        problems.append(f"{path}.fallback_model: must be a model name (a printable string of at most 256 characters)")
    max_instances = raw.get("max_instances", DEFAULT_MAX_INSTANCES)
    if isinstance(max_instances, bool) or not isinstance(max_instances, int) or max_instances < 1:
        problems.append(f"{path}.max_instances: must be an integer >= 1, got {max_instances!r}")
    elif "max_instances" in raw and key != "*":
        problems.append(f'{path}.max_instances: only applies to key: "*"')
    if len(problems) > before:
        return None
    return Budget(
        name=str(budget_name),
        scope=str(scope),
        key=str(key),
        period=str(period),
        limit=float(limit),  # type: ignore[arg-type]
        unit=str(unit),
        thresholds=thresholds,
        mode=str(mode),
        timezone=str(tz),
        description=str(description),
        max_cost_per_request=max_cost,
        max_tokens_per_request=max_tokens,
        fallback_model=str(fallback),
        max_instances=int(max_instances),
    )


@dataclass(frozen=True)
class BudgetsConfig:
    """The `budgets:` section: a list, or a mapping with `fail_mode` and `items`."""

    items: tuple[Budget, ...] = ()
    fail_mode: str = "open"
    evaluate_seconds: float = 30.0


def parse_budgets_section(raw: Any, problems: list[str]) -> BudgetsConfig:
    """Parse `budgets:` — either a list of budgets or `{fail_mode, evaluate_seconds, items: [...]}`."""
    fail_mode = "open"
    evaluate_seconds = 30.0
    items_raw: Any = raw
    if raw is None:
        return BudgetsConfig()
    if isinstance(raw, dict):
        for key in raw:
            if key not in ("items", "fail_mode", "evaluate_seconds"):
                problems.append(f"budgets.{key}: unknown key (allowed: items, fail_mode, evaluate_seconds)")
        fail_mode = raw.get("fail_mode", "open")
        if fail_mode not in ("open", "closed"):
            problems.append(f"budgets.fail_mode: must be 'open' or 'closed', got {fail_mode!r}")
        evaluate_seconds = raw.get("evaluate_seconds", 30.0)
        if isinstance(evaluate_seconds, bool) or not isinstance(evaluate_seconds, int | float) or evaluate_seconds <= 0:
            problems.append("budgets.evaluate_seconds: must be a number > 0")
            evaluate_seconds = 30.0
        items_raw = raw.get("items", [])
    if not isinstance(items_raw, list):
        problems.append(f"budgets: must be a list of budgets (or a mapping with items), got {type(items_raw).__name__}")
        return BudgetsConfig()
    items: list[Budget] = []
    seen: set[str] = set()
    for i, entry in enumerate(items_raw):
        budget = parse_budget(entry, f"budgets[{i}]", problems)
        if budget is None:
            continue
        if budget.name in seen:
            problems.append(f"budgets[{i}].name: {budget.name!r} is declared twice")
            continue
        seen.add(budget.name)
        items.append(budget)
    return BudgetsConfig(tuple(items), str(fail_mode), float(evaluate_seconds))


def counts_alike(stored: Mapping[str, Any], budget: Budget) -> bool:
    """True when `budget` counts exactly what the stored definition (its JSON) counted.

    Then a change (limit, thresholds, mode, caps, …) keeps the spend counted on ingest rather than rebuilding
    it from the rollups: a rebuild cannot split an hour the pruner folded, and a yearly period in a timezone
    off the whole hour (Asia/Kolkata: 18:30 UTC) starts inside one once `retention.rollups_days` < 366.
    """
    new = budget.to_json()
    return all(stored.get(name) == new.get(name) for name in COUNTING_FIELDS)
