"""Which values of each usage label `/metrics` shows on their own, and how that list stays current cheaply.

A label with more values than the cap shows its `cap - 1` highest-cost values and sums the rest under
`__other__`. Ranking a label costs a GROUP BY over every series (~0.1 s at 100,000 values on SQLite),
so ranks are kept and the work a scrape does on them is bounded (`UsageCollector._folded_rows`):

- every label is ranked once before the server accepts scrapes (`rank_unranked`, from the app's
  start-up), so not even the first scrape after a start ranks five labels at 100,000 values each;
- a label with at most `cap` values keeps the whole list (`Folding.known`): a value added since shows
  up in the scrape's own query as `NEW_VALUE`, so growth is seen without reading one row per value,
  and the grown labels are ranked again, as many as fit in `GROWN_RANK_SECONDS` (at least one);
- otherwise the label ranked longest ago is ranked again once it is `RANK_SECONDS` old.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence

from exporter.store import Store
from exporter.store.label_folding import NEW_VALUE, Folding

RANK_SECONDS = 60.0
"""How long the ranks of a label are reused before they are ranked again (one label a scrape)."""
GROWN_RANK_SECONDS = 0.15
"""Grown labels are ranked one after the other until this much time went into it: all of them at once
on a store of a few thousand series, one or two a scrape at 100,000 (~0.1 s each)."""


class LabelRanks:
    """The current `Folding` of the usage labels for one cap, and when each label was last ranked."""

    def __init__(self, store: Store, cap: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._cap = cap
        self.clock = clock
        self.folding = Folding()
        """Replaced, never changed in place: a concurrent scrape keeps reading the one it took."""
        self.ranked_at: dict[str, float] = {}
        self._lock = threading.Lock()  # two scrapes at once do not both rank the same label

    def rank_unranked(self, names: Iterable[str]) -> None:
        """Rank every label never ranked (all at once: at start-up, or for a label newly exported)."""
        self.rank([name for name in names if name not in self.ranked_at])

    def grown(self, names: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
        """The labels of `names` (positions in `rows`) that have values their `known` list lacks."""
        watched = [(position, name) for position, name in enumerate(names) if name in self.folding.known]
        if not watched:
            return []
        found: set[str] = set()
        for labels in rows:
            for position, name in watched:
                if labels[position] == NEW_VALUE:
                    found.add(name)
        return [name for name in names if name in found]

    def oldest_due(self, names: Sequence[str]) -> str | None:
        """The label ranked longest ago, if that was RANK_SECONDS ago or more."""
        oldest = min(names, key=lambda name: self.ranked_at.get(name, float("-inf")), default=None)
        if oldest is None or self.clock() - self.ranked_at.get(oldest, float("-inf")) < RANK_SECONDS:
            return None
        return oldest

    def rank_within(self, names: Sequence[str], seconds: float = GROWN_RANK_SECONDS) -> list[str]:
        """Rank `names` in order until `seconds` went into it (at least one); the ones ranked."""
        started = time.perf_counter()
        ranked = []
        for name in names:
            self.rank([name])
            ranked.append(name)
            if time.perf_counter() - started >= seconds:
                break
        return ranked

    def rank(self, names: Sequence[str]) -> None:
        """Rank `names` again now (each a GROUP BY over the series) and publish the new folding."""
        if not names:
            return
        with self._lock:
            keep = dict(self.folding.keep)
            known = dict(self.folding.known)
            for name in names:
                values, folded = self._store.rank_values(name, self._cap)
                keep.pop(name, None)
                known.pop(name, None)
                (keep if folded else known)[name] = values
                self.ranked_at[name] = self.clock()
            self.folding = Folding(keep, known)

    def as_keep(self) -> dict[str, Sequence[str]]:
        """Every ranked label's kept values, known lists included: anything else is `__other__`."""
        folding = self.folding
        return {**folding.known, **folding.keep}
