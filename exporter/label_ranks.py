"""Which values of each usage label `/metrics` shows on their own, and how that list stays current cheaply.

A label with more values than the cap shows its `cap - 1` highest-cost values and sums the rest under
`__other__`. Ranking a label costs a GROUP BY over every series (~0.1 s at 100,000 values on SQLite),
so ranks are kept and the work a scrape does on them is bounded (`UsageCollector._folded_rows`):

- every label is ranked once before the server accepts scrapes (`rank_unranked`, from the app's
  start-up), so not even the first scrape after a start ranks five labels at 100,000 values each;
- a label with at most `cap` values keeps the whole list (`Folding.known`): a value added since shows
  up in the scrape's own query as `NEW_VALUE`, so growth is seen without reading one row per value.
  Every grown label still under the cap is listed again in that scrape (`rank_grown`: one pass over
  the series each, no events read), so a value under the cap never shows as `__other__`; only the
  labels that went past the cap are ranked as folded, as many as fit in `GROWN_RANK_SECONDS` (at
  least one);
- a folded label's kept values are those of its *epoch*, not of the moment a process ranked it.

Epochs: every process on one store (`serve --workers`, replicas behind one load balancer) must show
the same folding at the same moment, or a scrape landing on one process or the other sees
`__other__` drop and rise again, and Prometheus reads each drop as a counter reset. So time is cut
into epochs of `metrics.rank_refresh_seconds` (`floor(wall time / refresh)`), and the kept values of
epoch E are ranked by the spend ingested before the start of epoch E - 2 (`as_of`), ties broken by the
value: a function of the store and E alone, whichever process ranks it and whenever. That spend ended
a whole epoch before anyone ranks it, so an ingest transaction still open then (its `ingested_at` is
stamped before it commits) does not make two processes disagree. The ranks of the next epoch are
made ahead, in the scrapes of the current one (as many labels as fit in `GROWN_RANK_SECONDS`, at
least one), and every process switches to them at the epoch's first scrape.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from exporter.store import Store
from exporter.store.label_folding import NEW_VALUE, Folding

RANK_SECONDS = 60.0
"""The default epoch (`metrics.rank_refresh_seconds`): how long the kept values of a folded label last."""
GROWN_RANK_SECONDS = 0.15
"""Grown labels (and the next epoch's ranks) are ranked one after the other until this much time went
into it: all of them at once on a store of a few thousand series, one or two a scrape at 100,000."""


class LabelRanks:
    """The current `Folding` of the usage labels for one cap, for the current epoch."""

    def __init__(
        self,
        store: Store,
        cap: int,
        clock: Callable[[], float] = time.time,
        *,
        refresh: float = RANK_SECONDS,
    ) -> None:
        self._store = store
        self._cap = cap
        self.clock = clock
        """Wall time: epochs are aligned on it, so that every process switches at the same moment."""
        self.refresh = refresh
        self.folding = Folding()
        """Replaced, never changed in place: a concurrent scrape keeps reading the one it took."""
        self.epoch: int | None = None
        """The epoch `folding` was ranked for."""
        self.ranked_at: dict[str, float] = {}
        self._next: dict[str, tuple[list[str], bool]] = {}  # the next epoch's ranks, made ahead
        self._next_epoch: int | None = None
        self.stale: list[str] = []
        """Folded labels still on the previous epoch's values: not ranked ahead, and more than one
        scrape's budget to rank at the epoch's first scrape (a flood); ranked over the next scrapes."""
        self._lock = threading.Lock()  # two scrapes at once do not both rank the same label

    def epoch_now(self) -> int:
        """The epoch the clock is in."""
        return math.floor(self.clock() / self.refresh)

    def as_of(self, epoch: int) -> float:
        """The time whose spend ranks the folded labels of `epoch` (the start of epoch - 2)."""
        return (epoch - 2) * self.refresh

    def rank_unranked(self, names: Iterable[str]) -> None:
        """Rank every label never ranked (all at once: at start-up, or for a label newly exported)."""
        self.rank([name for name in names if name not in self.ranked_at])

    def switch_epoch(self, names: Sequence[str]) -> bool:
        """At the first scrape of an epoch, take its ranks (made ahead, or now); True when it switched.

        Only folded labels change with the epoch; a label with a `known` list keeps it (its growth is
        seen in the scrape's query).
        """
        epoch = self.epoch_now()
        if epoch == self.epoch:
            return False
        with self._lock:
            if epoch == self.epoch:
                return False
            ahead = self._next if self._next_epoch == epoch else {}
            keep = dict(self.folding.keep)
            known = dict(self.folding.known)
            started = time.perf_counter()
            ranked_now = 0
            self.stale = []
            for name in names:
                if name not in keep:
                    continue  # a known list does not depend on the epoch
                ranked = ahead.get(name)
                if ranked is None:
                    if ranked_now and time.perf_counter() - started >= GROWN_RANK_SECONDS:
                        # Ranking every label of a flood in one scrape took 2 s: the rest keep the last
                        # epoch's values for a few scrapes (`rank_stale`).
                        self.stale.append(name)
                        continue
                    ranked = self._store.rank_values(name, self._cap, as_of=self.as_of(epoch))
                    self.ranked_at[name] = self.clock()
                    ranked_now += 1
                keep.pop(name, None)
                values, folded = ranked
                (keep if folded else known)[name] = values
            self.folding = Folding(keep, known)
            self.epoch = epoch
            self._next, self._next_epoch = {}, None
            return True

    def rank_stale(self, seconds: float = GROWN_RANK_SECONDS) -> list[str]:
        """Rank the `stale` labels for the current epoch, until `seconds` went into it (at least one)."""
        ranked = self.rank_within(list(self.stale), seconds)
        self.stale = [name for name in self.stale if name not in ranked]
        return ranked

    def rank_ahead(self, names: Sequence[str], seconds: float = GROWN_RANK_SECONDS) -> list[str]:
        """Rank the folded labels of `names` for the next epoch, until `seconds` went into it (at least one)."""
        if self.epoch is None:
            return []
        upcoming = self.epoch + 1
        started = time.perf_counter()
        ranked = []
        with self._lock:
            if self._next_epoch != upcoming:
                self._next, self._next_epoch = {}, upcoming
            for name in names:
                if name not in self.folding.keep or name in self._next:
                    continue
                self._next[name] = self._store.rank_values(name, self._cap, as_of=self.as_of(upcoming))
                self.ranked_at[name] = self.clock()
                ranked.append(name)
                if time.perf_counter() - started >= seconds:
                    break
        return ranked

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

    def rank_grown(self, names: Sequence[str], seconds: float = GROWN_RANK_SECONDS) -> list[str]:
        """Rank the labels of `names` that grew; the ones ranked.

        Each one still under the cap gets its whole list now, however long ranking took (a fresh
        server's first burst grows every label at once: ranked one a scrape, as folded labels are,
        the project showed `__other__` for a scrape or three although it had five values). Those past
        the cap are ranked as folded within `seconds` (at least one; see `rank_within`).
        """
        listed: list[str] = []
        past: list[str] = []
        with self._lock:
            keep = dict(self.folding.keep)
            known = dict(self.folding.known)
            for name in names:
                values = self._store.values_under_cap(name, self._cap)
                if values is None:
                    past.append(name)
                    continue
                self._ranked(name, values, False, keep, known)
                listed.append(name)
            self.folding = Folding(keep, known)
        return [*listed, *(self.rank_within(past, seconds) if past else [])]

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
        """Rank `names` again now for the current epoch and publish the new folding.

        A label with at most the cap of values gets all of them, as they are now; a folded one the
        values kept in this epoch (see the module docstring).
        """
        if not names:
            return
        with self._lock:
            if self.epoch is None:
                self.epoch = self.epoch_now()
            keep = dict(self.folding.keep)
            known = dict(self.folding.known)
            for name in names:
                values, folded = self._store.rank_values(name, self._cap, as_of=self.as_of(self.epoch))
                self._ranked(name, values, folded, keep, known)
            self.folding = Folding(keep, known)

    def _ranked(
        self,
        name: str,
        values: Sequence[str],
        folded: bool,
        keep: dict[str, Sequence[str]],
        known: dict[str, Sequence[str]],
    ) -> None:
        """Put label `name`'s new list in `keep` (folded) or `known` (every value), and note it ranked now."""
        keep.pop(name, None)
        known.pop(name, None)
        (keep if folded else known)[name] = values
        self.ranked_at[name] = self.clock()
        self._next.pop(name, None)  # made for another list; made again if still folded
        if name in self.stale:
            self.stale.remove(name)

    def as_keep(self) -> dict[str, Sequence[str]]:
        """Every ranked label's kept values, known lists included: anything else is `__other__`."""
        folding = self.folding
        return {**folding.known, **folding.keep}
