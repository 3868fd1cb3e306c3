"""Planning a config apply: what a config file's `budgets:` would create, change, keep or delete.

The model (docs/budgets.md): every stored definition has an origin, `config` (with the config file
that made it), `api` or `cli`. Applying a config file touches only `config` budgets: it never deletes
or overwrites a budget made through the API or the CLI (a name clash is reported as a conflict), and it
deletes a `config` budget the file no longer declares only when asked to prune: `serve` prunes only the
budgets its own file made, `llmcost budgets apply --prune` prunes every `config` budget the file lacks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from alerting.budgets.definition import Budget


class Prune(StrEnum):
    """Which `config` budgets a config apply may delete when the file no longer declares them."""

    NONE = "none"
    """Delete nothing (listed as kept)."""
    OWN = "own"
    """Only those this same config file made (`serve`, on start and on SIGHUP)."""
    CONFIG = "config"
    """Every `config` budget the file lacks (`llmcost budgets apply --prune`); never api/cli ones."""


@dataclass(frozen=True)
class StoredDefinition:
    """A stored definition row: the budget, its origin and the config file that made it."""

    name: str
    definition: str
    origin: str
    origin_ref: str | None


@dataclass
class ApplyPlan:
    """The difference between the store and a config file, and what an apply does about it."""

    create: list[Budget] = field(default_factory=list)
    update: list[tuple[dict[str, Any], Budget]] = field(default_factory=list)  # (stored JSON, new)
    unchanged: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # config budgets the file lacks, not pruned
    conflicts: list[str] = field(default_factory=list)  # declared names owned by the API or the CLI
    applied_from: dict[str, str | None] = field(default_factory=dict)  # updated names another file applied

    @property
    def changes(self) -> bool:
        """True when applying writes anything."""
        return bool(self.create or self.update or self.delete)

    def lines(self) -> list[str]:
        """The diff in words, one line per budget (what `llmcost budgets apply` prints)."""
        out = [f"+ create {b.name}: {_summary(b.to_json())}" for b in self.create]
        for old, new in self.update:
            fields = [f"{k} {old.get(k)!r} -> {v!r}" for k, v in new.to_json().items() if old.get(k) != v]
            if new.name in self.applied_from:
                # Two files declaring one name undo each other on every apply: the reviewer must see it.
                fields.append(f"taken over from {self.applied_from[new.name] or 'a config file of unknown path'}")
            out.append(f"~ update {new.name}: {', '.join(fields) or 'stored form rewritten'}")
        out += [f"- delete {name}" for name in self.delete]
        out += [f"  keep {name}: declared by no budget in this file (pass --prune to delete it)" for name in self.kept]
        out += [
            f"! conflict {name}: made through the API or the CLI; not changed (delete or rename it there first)"
            for name in self.conflicts
        ]
        return out

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON."""
        return {
            "create": [b.name for b in self.create],
            "update": [b.name for _old, b in self.update],
            "unchanged": self.unchanged,
            "delete": self.delete,
            "kept": self.kept,
            "conflicts": self.conflicts,
        }


def _summary(definition: dict[str, Any]) -> str:
    key = "" if definition["scope"] == "global" else f" {definition['key']}"
    return (
        f"{definition['scope']}{key}, {definition['period']}, limit {definition['limit']:g} {definition['unit']}, "
        f"{definition['mode']}"
    )


def definition_json(budget: Budget) -> str:
    """The stored form of a definition (stable, so an unchanged budget compares equal)."""
    return json.dumps(budget.to_json(), sort_keys=True)


def plan_apply(
    stored: list[StoredDefinition], declared: tuple[Budget, ...], *, origin_ref: str, prune: Prune
) -> ApplyPlan:
    """What applying `declared` (from the config file `origin_ref`) does to the `stored` definitions."""
    plan = ApplyPlan()
    by_name = {row.name: row for row in stored}
    names = {b.name for b in declared}
    for budget in declared:
        row = by_name.get(budget.name)
        if row is None:
            plan.create.append(budget)
        elif row.origin != "config":
            plan.conflicts.append(budget.name)
        elif row.definition != definition_json(budget) or row.origin_ref != origin_ref:
            plan.update.append((json.loads(row.definition), budget))
            if row.origin_ref != origin_ref:
                plan.applied_from[budget.name] = row.origin_ref
        else:
            plan.unchanged.append(budget.name)
    for row in stored:
        if row.origin != "config" or row.name in names:
            continue
        if prune is Prune.CONFIG or (prune is Prune.OWN and row.origin_ref == origin_ref):
            plan.delete.append(row.name)
        else:
            plan.kept.append(row.name)
    return plan
