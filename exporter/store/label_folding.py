"""Label cardinality caps done by the database: sums over `usage_series` with values folded, and ranks.

A scrape must not read one row per series: 100,000 distinct values of a label would be 100,000 rows
to read and lines to write. So the GROUP BY itself replaces every value outside a short list by one
value, and the scrape reads at most a few thousand rows (one scan of `usage_series`).

Two kinds of list fold a label (`Folding`):

- `keep`: the highest-cost values of a label that has more than the cap; every other value becomes
  `__other__` (`OTHER_VALUE`), so totals stay exact.
- `known`: every value a label had when it was last ranked (at most the cap). A value that appeared
  since becomes `NEW_VALUE`, which tells the caller that the label grew (and must be ranked again)
  without reading the label's values one row each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from exporter.store.schema import LABEL_COLUMNS

OTHER_VALUE = "__other__"
"""The label value that stands for every value folded away by a cardinality cap."""

NEW_VALUE = "\x1f"
"""What a value outside a `known` list becomes. Stored label values are printable (`exporter.events`),
so no real value is this control character; it is short because the GROUP BY sorts it once per series."""


@dataclass(frozen=True)
class Folding:
    """Per label, the values kept as they are (see the module docstring for `keep` and `known`)."""

    keep: Mapping[str, Sequence[str]] = field(default_factory=dict)
    known: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def names(self) -> list[str]:
        """The labels this folding touches."""
        return [*self.keep, *self.known]


def folded_sums_sql(
    labels: Sequence[str], folding: Folding, columns: Sequence[str], *, postgres: bool
) -> tuple[str, list[Any]]:
    """The statement and parameters for rows `(*labels folded, *SUM(column) for columns)` over usage_series."""
    unknown = [name for name in (*labels, *folding.names()) if name not in LABEL_COLUMNS]
    if unknown:
        raise ValueError(f"not label columns: {unknown}")
    placeholder = "%s" if postgres else "?"
    member = f"= ANY({placeholder})" if postgres else f"IN (SELECT value FROM json_each({placeholder}))"
    selected: list[str] = []
    params: list[Any] = []
    for name in labels:
        if name in folding.keep:
            values, replacement = folding.keep[name], OTHER_VALUE
        elif name in folding.known:
            values, replacement = folding.known[name], NEW_VALUE
        else:
            selected.append(f'"{name}"')
            continue
        selected.append(f'CASE WHEN "{name}" {member} THEN "{name}" ELSE {placeholder} END')
        listed = list(values)
        params += [listed if postgres else orjson.dumps(listed).decode(), replacement]
    sums = ", ".join(f"SUM({name})" for name in columns)
    if not labels:
        return f"SELECT {sums} FROM usage_series", params
    positions = ", ".join(str(i + 1) for i in range(len(labels)))
    return (
        f"SELECT {', '.join(selected)}, {sums} FROM usage_series GROUP BY {positions} ORDER BY {positions}",
        params,
    )


def unpriced_models_sql(cap: int) -> str:
    """The statement listing unpriced calls per (provider, model), most first, at most `cap + 1` rows.

    Rows `(provider, model, calls, calls of every pair)`: the last column, the same in every row, lets the
    caller sum the pairs past the cap exactly, from the same read.
    """
    return (
        "SELECT provider, model, calls, SUM(calls) OVER () FROM ("
        "SELECT provider, model, SUM(unpriced_requests) AS calls FROM usage_series WHERE unpriced_requests > 0 "
        f"GROUP BY provider, model) AS pairs ORDER BY calls DESC, provider, model LIMIT {int(cap) + 1}"
    )


def distinct_values_sql(name: str, cap: int) -> str:
    """The statement listing label `name`'s distinct values, any `cap + 1` of them (no order, no cost).

    Whether a label is under the cap needs only this: one pass over `usage_series` that may stop at
    `cap + 1` values, and none of the recent events the ranking of a folded label reads.
    """
    if name not in LABEL_COLUMNS:
        raise ValueError(f"not a label column: {name}")
    return f'SELECT DISTINCT "{name}" FROM usage_series LIMIT {int(cap) + 1}'


def top_values_sql(name: str, cap: int) -> str:
    """The statement listing label `name`'s values by total cost, highest first, at most `cap + 1`."""
    if name not in LABEL_COLUMNS:
        raise ValueError(f"not a label column: {name}")
    return (
        f'SELECT "{name}" FROM usage_series GROUP BY "{name}" ORDER BY SUM(cost_nanousd) DESC, "{name}" '
        f"LIMIT {int(cap) + 1}"
    )


INGEST_ORDER_SLACK_SECONDS = 60.0
"""How far `usage_events.id` order may stray from `ingested_at` order (ids are taken at insert, the time
when the batch was prepared, and concurrent PostgreSQL transactions interleave): an event ingested this
long before another never has a higher id."""


def top_values_as_of_sql(name: str, cap: int, *, postgres: bool) -> str:
    """The statement listing label `name`'s values by cost ingested before a time, at most `cap + 1`.

    Rows `(value, had a call by then)`, those that had first, then by that cost, highest first, then by
    value. Parameters: an id below which every event was ingested before that time (only the events
    above it are read, through the primary key), and the time. The cost before it is each series'
    total less its events ingested since, in one scan (the series and the recent events are added up
    in one statement, so a call ingested meanwhile is counted in both or neither).
    """
    if name not in LABEL_COLUMNS:
        raise ValueError(f"not a label column: {name}")
    p = "%s" if postgres else "?"
    return (
        f'SELECT v, SUM(n) > 0 FROM (SELECT "{name}" AS v, cost_nanousd AS c, requests AS n FROM usage_series '
        f'UNION ALL SELECT s."{name}", -e.cost_nanousd, -1 FROM usage_events e '
        f"JOIN usage_series s ON s.id = e.series_id WHERE e.id > {p} AND e.ingested_at >= {p}) AS spend GROUP BY v "
        f"ORDER BY SUM(n) > 0 DESC, SUM(c) DESC, v LIMIT {int(cap) + 1}"
    )


def last_id_ingested_before(cursor: Any, placeholder: str, before: float) -> int:
    """An event id at or below which every event was ingested before `before` (0 when none is known).

    Probes back from the newest event, twice as far each time, one primary-key lookup a probe: about
    log2(events ingested since) lookups, so a ranking reads only the recent tail of `usage_events`.
    """
    cursor.execute("SELECT MAX(id) FROM usage_events")
    row = cursor.fetchone()
    newest = row[0] if row else None
    if newest is None:
        return 0
    step = 1024
    while newest - step > 0:
        cursor.execute(
            f"SELECT id, ingested_at FROM usage_events WHERE id <= {placeholder} ORDER BY id DESC LIMIT 1",
            (newest - step,),
        )
        row = cursor.fetchone()
        if row is None:
            return 0
        if row[1] < before:
            return int(row[0])
        step *= 2
    return 0
