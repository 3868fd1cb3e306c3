"""Planning a config apply: what a config file's `budgets:` would create, change, keep or delete.

The model (docs/budgets.md): every stored definition has an origin, `config` (with the config file
that made it), `api` or `cli`. Applying a config file touches only `config` budgets: it never deletes
or overwrites a budget made through the API or the CLI (a name clash is reported as a conflict), and it
deletes a `config` budget the file no longer declares only when asked to prune, and then only one this
same file made (`serve` always, `llmcost budgets apply` with `--prune`): a file never deletes another
file's budgets. "This same file" is its `budget_set` when it declares one, else its absolute path
(alerting/budgets/origin.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from alerting.budgets.definition import Budget
from alerting.budgets.origin import ConfigOrigin


class Prune(StrEnum):
    """Which `config` budgets a config apply may delete when the file no longer declares them."""

    NONE = "none"
    """Delete nothing (listed as kept)."""
    OWN = "own"
    """Only those this same config file made (`serve`, and `llmcost budgets apply --prune`)."""


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
    kept: list[str] = field(default_factory=list)  # this file's config budgets it lacks, not pruned
    conflicts: list[str] = field(default_factory=list)  # declared names owned by the API or the CLI
    applied_from: dict[str, str] = field(default_factory=dict)  # updated names another file applied
    adopted: dict[str, str] = field(default_factory=dict)  # own names recorded under the file's path, now its set
    untouched: list[str] = field(default_factory=list)  # other files' config budgets: never this file's business
    other_files: int = 0  # how many files `untouched` came from
    no_file: int = 0  # how many of `untouched` were applied before origins were recorded: no file's

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
                fields.append(f"taken over from {self.applied_from[new.name]}")
            elif new.name in self.adopted:
                fields.append(f"now recorded under this file's budget_set (was {self.adopted[new.name]})")
            out.append(f"~ update {new.name}: {', '.join(fields) or 'stored form rewritten'}")
        out += [f"- delete {name}" for name in self.delete]
        out += [
            f"  keep {name}: this file made it and no longer declares it (pass --prune to delete it)"
            for name in self.kept
        ]
        if self.untouched:
            # Other files' budgets are not this file's to change or delete: one line, not one per budget.
            out.append(self._untouched_line())
        out += [
            f"! conflict {name}: made through the API or the CLI; not changed (delete or rename it there first)"
            for name in self.conflicts
        ]
        return out

    def _untouched_line(self) -> str:
        # Budgets from before origins were recorded belong to no file (docs/budgets.md): not one more
        # "other file", which readers would look for.
        of_files = len(self.untouched) - self.no_file
        files = f"{self.other_files} other file{'' if self.other_files == 1 else 's'}"
        no_file = "no file (applied before llmcost recorded origins)"
        if not self.no_file:
            return f"  {of_files} budget{'' if of_files == 1 else 's'} of {files} untouched"
        if not of_files:
            return f"  {self.no_file} budget{'' if self.no_file == 1 else 's'} of {no_file} untouched"
        return f"  {len(self.untouched)} budgets untouched: {of_files} of {files}, {self.no_file} of {no_file}"

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON."""
        return {
            "create": [b.name for b in self.create],
            "update": [b.name for _old, b in self.update],
            "unchanged": self.unchanged,
            "delete": self.delete,
            "kept": self.kept,
            "conflicts": self.conflicts,
            "untouched": self.untouched,
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
    """What applying `declared` (from the config file of `origin_ref`) does to the `stored` definitions."""
    plan = ApplyPlan()
    me = ConfigOrigin.parse(origin_ref)
    by_name = {row.name: row for row in stored}
    names = {b.name for b in declared}
    for budget in declared:
        row = by_name.get(budget.name)
        if row is None:
            plan.create.append(budget)
            continue
        if row.origin != "config":
            plan.conflicts.append(budget.name)
            continue
        theirs = ConfigOrigin.parse(row.origin_ref)
        # A set's budget applied from another checkout path is unchanged: only the identity is compared.
        recorded_as_mine = theirs.identity == me.identity
        if row.definition == definition_json(budget) and recorded_as_mine:
            plan.unchanged.append(budget.name)
            continue
        plan.update.append((json.loads(row.definition), budget))
        if not me.owns(theirs):
            plan.applied_from[budget.name] = theirs.describe()
        elif not recorded_as_mine:  # this file's, made at its path before it declared its budget_set
            plan.adopted[budget.name] = theirs.describe()
    other_files: set[str | None] = set()
    for row in stored:
        if row.origin != "config" or row.name in names:
            continue
        theirs = ConfigOrigin.parse(row.origin_ref)
        if not me.owns(theirs):
            plan.untouched.append(row.name)
            if theirs.identity is None:
                plan.no_file += 1
            else:
                other_files.add(theirs.identity)
        elif prune is Prune.OWN:
            plan.delete.append(row.name)
        else:
            plan.kept.append(row.name)
    plan.other_files = len(other_files)
    return plan
