"""Which config file a `config` budget belongs to: the file's `budget_set`, else its absolute path.

A config file that declares `budget_set: NAME` (top level) is that set wherever it is checked out: CI
runs checking the file out at a new path each time apply the same set, so none of its budgets reads as
taken over and `--prune` finds what the set made. Without the key a file is its absolute path, as
before the key existed. The stored `origin_ref` of a set's budget is `budget_set:NAME PATH` (PATH: where
the file was when the budget was last written, shown in refusals and `budgets show`; not compared).

The key names a set of budgets the way kubectl's ApplySet (`--applyset`) or a Helm release name name
what one apply owns: the owner is what the file says, not where it happens to lie.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.config import Config

BUDGET_SET_KEY = "budget_set"
"""The top-level config key naming the set of budgets a file declares."""
_PREFIX = f"{BUDGET_SET_KEY}:"
# No spaces or colons: the stored form splits the name from the path at the first space.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def validate_budget_set(value: Any, problems: list[str]) -> None:
    """Check the top-level `budget_set` (a config section validator): a short name, or absent."""
    if value is None:
        return
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        shown = value if isinstance(value, str) else type(value).__name__
        problems.append(
            f"{BUDGET_SET_KEY}: must be a name of letters, digits, '.', '_' or '-', starting with a letter or "
            f"digit, at most 64 characters (e.g. search-team), got {shown!r}"
        )


def config_origin_ref(path: str, budget_set: Any = None) -> str:
    """The `origin_ref` recorded with the budgets a config file at `path` applies."""
    return f"{_PREFIX}{budget_set} {path}" if isinstance(budget_set, str) and budget_set else path


def file_origin_ref(config: Config) -> str | None:
    """The `origin_ref` of the budgets `config`'s file applies (None for a config read from no file).

    `llmcost budgets apply`, `serve` at start and on SIGHUP all record this one reference for one file,
    so each may update quietly and prune what the others made from it.
    """
    if config.source is None:
        return None
    return config_origin_ref(str(Path(config.source).resolve()), config.raw.get(BUDGET_SET_KEY))


@dataclass(frozen=True)
class ConfigOrigin:
    """A stored `origin_ref` read back: the file's budget set (if it declared one) and its path."""

    budget_set: str | None
    path: str | None

    @classmethod
    def parse(cls, ref: str | None) -> ConfigOrigin:
        """Read an `origin_ref` (None: a row from before origins were recorded)."""
        if ref is not None and ref.startswith(_PREFIX):
            name, _, path = ref[len(_PREFIX) :].partition(" ")
            return cls(name, path or None)
        return cls(None, ref)

    @property
    def identity(self) -> str | None:
        """What tells two files apart: the budget set, else the path."""
        return f"{_PREFIX}{self.budget_set}" if self.budget_set else self.path

    def owns(self, stored: ConfigOrigin) -> bool:
        """Whether a budget recorded with `stored` is this file's own (its to update quietly and to prune).

        A set owns what the set made from any path, and what this same file made at this same path
        before it declared the set (so adding the key orphans nothing and takes nothing over).
        """
        if stored.path is None and stored.budget_set is None:
            return False  # made before origins were recorded: no file can claim it
        if self.budget_set:
            return stored.budget_set == self.budget_set or (stored.budget_set is None and stored.path == self.path)
        return stored.budget_set is None and stored.path == self.path

    def describe(self) -> str:
        """The file in words: `/repo/search.yml`, `budget_set search (/ci/1/search.yml)`."""
        if self.budget_set:
            return f"{BUDGET_SET_KEY} {self.budget_set}" + (f" ({self.path})" if self.path else "")
        return self.path or "a config file of unknown path"
