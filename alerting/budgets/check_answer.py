"""The pre-call check: the request it accepts and the answer that explains itself.

Pure functions over the matching budget instances (no I/O): `parse_check_request` validates the body
(unknown fields are refused, so a typo such as `projectt` cannot silently mean "no budget applies"),
and `decide` answers `allowed`, a `state` that never contradicts it, a `reason` in plain words naming
the budget that decided, one entry per budget (`spent`, `estimate`, `limit`, `state_after`, `decided`)
and the `fallback_model` a gateway may switch to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from alerting.budgets.amounts import amount, usd_apart
from alerting.budgets.definition import STATES, Budget
from exporter.http.errors import shown

LABEL_FIELDS = ("project", "user", "service", "model")
ESTIMATE_FIELDS = ("estimated_cost_usd", "estimated_tokens", "estimated_requests")
CHECK_FIELDS = (*LABEL_FIELDS, *ESTIMATE_FIELDS)


class CheckInstance(Protocol):
    """What `decide` needs of a budget instance (instances.Instance)."""

    @property
    def budget(self) -> Budget:
        """The definition."""

    @property
    def key(self) -> str:
        """The value of the scope's label."""

    @property
    def spent(self) -> float:
        """Spent in the current period, in the budget's unit."""

    def to_json(self) -> dict[str, Any]:
        """The status object."""


@dataclass(frozen=True)
class CheckRequest:
    """A validated check: the call's labels and its estimates (requests default to 1: this call)."""

    labels: dict[str, str]
    cost_usd: float = 0.0
    tokens: int = 0
    requests: int = 1

    def estimate(self, unit: str) -> float:
        """The call's estimate in a budget's unit."""
        return {"usd": self.cost_usd, "tokens": float(self.tokens), "requests": float(self.requests)}[unit]


class CheckRequestError(ValueError):
    """The body is not a valid check; `problems` name every bad field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_check_request(raw: Any) -> CheckRequest:
    """Validate a check body; raises CheckRequestError listing every problem (unknown fields first)."""
    if not isinstance(raw, dict):
        raise CheckRequestError([f"the body must be an object with {', '.join(CHECK_FIELDS)}"])
    problems = [
        f"{shown(name)}: unknown field (allowed: {', '.join(CHECK_FIELDS)})"
        for name in sorted(set(raw) - set(CHECK_FIELDS))
    ]
    labels = {}
    for name in LABEL_FIELDS:
        value = raw.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            problems.append(f"{name}: must be a string")
        labels[name] = value if isinstance(value, str) else ""
    cost = raw.get("estimated_cost_usd", 0.0)
    cost = 0.0 if cost is None else cost
    if isinstance(cost, bool) or not isinstance(cost, int | float) or not 0 <= cost < 1e9:
        problems.append("estimated_cost_usd: must be a number >= 0")
        cost = 0.0
    counts = {}
    for name, default in (("estimated_tokens", 0), ("estimated_requests", 1)):
        value = raw.get(name, default)
        value = default if value is None else value
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**15:
            problems.append(f"{name}: must be an integer >= 0")
            value = default
        counts[name] = value
    if problems:
        raise CheckRequestError(problems)
    return CheckRequest(labels, float(cost), counts["estimated_tokens"], counts["estimated_requests"])


def _amount(budget: Budget, value: float) -> str:
    return amount(budget.unit, value)


def _of(budget: Budget, value: float, limit: float) -> str:
    """E.g. "$1.00 of $1.00", "$4,999.996 of $5,000.000" (short of the limit: not "$5,000.00 of $5,000.00")."""
    if budget.unit == "usd":
        spent, of = usd_apart(value, limit)
        return f"{spent} of {of}"
    return f"{value:,.0f} of {_amount(budget, limit)}"


def _describe(instance: CheckInstance) -> str:
    """E.g. "project search daily budget search-daily" (calls without the label: project "")."""
    b = instance.budget
    scope = "global" if b.scope == "global" else f"{b.scope} {instance.key or chr(34) * 2}"
    period = "" if b.period == "total" else f"{b.period} "
    return f"{scope} {period}budget {b.name}"


@dataclass(frozen=True)
class _Verdict:
    instance: CheckInstance
    estimate: float
    after: float
    state_after: str
    refuses: bool
    over_cap: str  # why a per-request cap is exceeded, or ""
    over: bool  # over its limit after this call (or already at it, with no estimate in its unit)


def _verdict(instance: CheckInstance, request: CheckRequest) -> _Verdict:
    budget = instance.budget
    estimate = request.estimate(budget.unit)
    after = instance.spent + estimate
    over_cap = ""
    if budget.max_cost_per_request is not None and request.cost_usd > budget.max_cost_per_request:
        estimated, cap = usd_apart(request.cost_usd, budget.max_cost_per_request)
        over_cap = f"this call's estimated {estimated} exceeds its per-request cap of {cap}"
    elif budget.max_tokens_per_request is not None and request.tokens > budget.max_tokens_per_request:
        over_cap = (
            f"this call's estimated {request.tokens:,} tokens exceed its per-request cap of "
            f"{budget.max_tokens_per_request:,} tokens"
        )
    # Without an estimate in its unit, a budget already at its limit still refuses. Landing exactly on
    # the limit is allowed (a 2-request budget allows 2 requests); rounding to nano-units keeps float
    # sums such as $0.70 + $0.30 from overshooting $1.00.
    over = round(after, 9) > budget.limit or (estimate == 0 and instance.spent >= budget.limit)
    refuses = budget.mode == "hard" and (over or bool(over_cap))
    state_after = "exceeded" if over else budget.state(after / budget.limit)
    return _Verdict(instance, estimate, after, state_after, refuses, over_cap, over)


def decide(instances: list[CheckInstance], request: CheckRequest) -> dict[str, Any]:
    """The check answer for the matching instances (see the module docstring)."""
    verdicts = [_verdict(i, request) for i in instances]
    refusing = [v for v in verdicts if v.refuses]
    if refusing:
        # The budget overshot most (relative to its limit) decides; a cap breach counts as overshooting.
        decider: _Verdict | None = max(refusing, key=lambda v: (bool(v.over_cap), v.after / v.instance.budget.limit))
    else:
        decider = max(verdicts, key=lambda v: v.after / v.instance.budget.limit, default=None)
    allowed = not refusing
    # A refusal is always "exceeded", and only a refusal is: an allowed call gets the worst state the
    # budgets are in now, at most "critical", so `state` never contradicts `allowed` (a soft or track
    # budget past its limit still says "exceeded" in its own entry; `state_after` tells where this call
    # would take each one).
    now = (v.instance.budget.state(v.instance.spent / v.instance.budget.limit) for v in verdicts)
    worst = max(now, key=STATES.index, default="ok")
    state = "exceeded" if not allowed else min(worst, "critical", key=STATES.index)
    reason = _reason(decider, allowed, request)
    fallback = ""
    for v in ([decider] if decider is not None else []) + verdicts:
        # Not when the call lands exactly on the limit: it fits; the next call is the one over it.
        if v.instance.budget.fallback_model and (v.refuses or v.over or v.over_cap):
            fallback = v.instance.budget.fallback_model
            break
    answer: dict[str, Any] = {
        "allowed": allowed,
        "state": state,
        "reason": reason,
        "budgets": [
            {
                **v.instance.to_json(),
                "estimate": round(v.estimate, 9),
                "state_after": v.state_after,
                "decided": v is decider,
            }
            for v in verdicts
        ],
    }
    if fallback:
        answer["fallback_model"] = fallback
    return answer


def _reason(decider: _Verdict | None, allowed: bool, request: CheckRequest) -> str:
    if decider is None:
        labels = ", ".join(f"{k} {v}" for k, v in request.labels.items() if v) or "these labels"
        return f"no budget applies to {labels}"
    budget = decider.instance.budget
    spent = f"{_amount(budget, decider.instance.spent)} of {_amount(budget, budget.limit)} spent"
    what = _describe(decider.instance)
    if decider.over_cap and not allowed:
        return f"{what}: {decider.over_cap}"
    if not allowed:
        if decider.estimate == 0 and decider.instance.spent >= budget.limit:
            return f"{what}: {spent}, nothing is left for this call"
        return f"{what}: {spent}, this call's {_amount(budget, decider.estimate)} would exceed it"
    if decider.over and decider.estimate == 0:
        return f"allowed: {what} ({budget.mode}) is over its limit ({spent}), but only hard budgets refuse"
    after = f"{_amount(budget, decider.after)} after this call's {_amount(budget, decider.estimate)}"
    if decider.over:
        return (
            f"allowed: {what} ({budget.mode}) will be over its limit after this call ({spent}, {after}), "
            "but only hard budgets refuse"
        )
    if decider.estimate > 0 and round(decider.after, 9) == budget.limit:
        then = "the next call will be refused" if budget.mode == "hard" else "the next call will be over it"
        return (
            f"allowed: {what} ({budget.mode}) reaches its limit exactly with this call "
            f"({_of(budget, decider.after, budget.limit)} after it); {then}"
        )
    return (
        f"allowed: closest is {what}: {spent}, {_amount(budget, decider.after)} "
        f"({decider.after / budget.limit:.0%}) after this call"
    )
