"""Recent budget-check answers, kept current with this process's own spend.

Applications call `POST /v1/budgets/check` before every LLM call, hundreds of times a second with a
handful of label sets, while the same process ingests the calls those checks allowed. An answer is
reused for up to `ttl` seconds. When this process commits spend, the increments are added to the
answers read before that commit, instead of throwing them away: the next check then sees this
process's spend at once. What *other* processes ingested is caught by `BudgetChecks`, which compares a
cached answer's counters with the store's before reusing it (alerting/budgets/checks.py).

Whether an answer already includes a commit is decided by time: an answer whose read finished
before the transaction added the spend cannot include it; one whose read started after the commit
was reported does; an answer in between is dropped, so nothing is counted twice or missed.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from alerting.budgets.definition import OTHER_INSTANCE
from alerting.budgets.spend import SpendChange, SpendKey, unit_value

Raw = tuple[int, int, int]  # the spend row behind an instance: cost_nanousd, tokens, requests


@dataclass(frozen=True)
class _Answer:
    expires: float  # monotonic
    read_started: float
    read_finished: float
    instances: list[Any]  # instances.Instance
    raw: list[Raw]


class CheckCache:
    """Check answers by label set; thread-safe."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._answers: dict[tuple[str, ...], _Answer] = {}
        self._lock = threading.Lock()
        self._generation = 0  # bumped by every local commit of spend

    def answer(
        self, key: tuple[str, ...], still_current: Callable[[list[Any]], bool]
    ) -> tuple[list[Any], list[Raw]] | None:
        """The instances answered for `key` and their spend rows' counters, if fresh and still current."""
        answer = self._answers.get(key)
        if answer is not None and answer.expires > time.monotonic() and still_current(answer.instances):
            return answer.instances, answer.raw
        return None

    def begin_read(self) -> tuple[int, float]:
        """Call before reading the store for an answer; pass the result to `put`."""
        return self._generation, time.monotonic()

    def put(self, key: tuple[str, ...], began: tuple[int, float], instances: list[Any], raw: Sequence[Raw]) -> None:
        """Remember an answer read since `began` (skipped if local spend was reported meanwhile)."""
        generation, started = began
        finished = time.monotonic()
        with self._lock:
            if generation != self._generation:
                return  # a commit was reported while reading: whether the read saw it is unknown
            if len(self._answers) >= self.max_entries:
                self._answers.clear()
            self._answers[key] = _Answer(finished + self.ttl, started, finished, instances, list(raw))

    def add_local_spend(self, changes: Sequence[SpendChange], committed_by: float) -> None:
        """Add committed spend to the answers read before it; `committed_by`: monotonic, after the commit."""
        with self._lock:
            self._generation += 1
            for key, answer in list(self._answers.items()):
                updated = _with_spend(answer, changes, committed_by)
                if updated is None:
                    del self._answers[key]
                elif updated is not answer:
                    self._answers[key] = updated

    def clear(self) -> None:
        """Forget every answer (definitions changed)."""
        with self._lock:
            self._generation += 1
            self._answers.clear()


def _with_spend(answer: _Answer, changes: Sequence[SpendChange], committed_by: float) -> _Answer | None:
    instances, raw = answer.instances, answer.raw
    for change in changes:
        if answer.read_started > committed_by:
            continue  # read after the commit: included
        if answer.read_finished >= change.applied_at:
            return None  # the read overlapped the commit: it may or may not include it
        for index, instance in enumerate(instances):
            start = int(instance.period_start.timestamp())
            if instance.folded and (instance.budget.name, OTHER_INSTANCE, start) in change.increments:
                return None  # its spend went to `__other__` with others': read it again
            spend_key: SpendKey = (instance.budget.name, instance.key, start)
            increment = change.increments.get(spend_key)
            if increment is None:
                continue
            if instances is answer.instances:
                instances, raw = list(instances), list(raw)
            cost, tokens, requests = (a + b for a, b in zip(raw[index], increment, strict=True))
            raw[index] = (cost, tokens, requests)
            spent = unit_value(instance.budget, cost, tokens, requests)
            instances[index] = dataclasses.replace(instance, spent=spent, projected=max(instance.projected, spent))
    if instances is answer.instances:
        return answer
    return dataclasses.replace(answer, instances=instances, raw=raw)
