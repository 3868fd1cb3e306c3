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


def top_values_sql(name: str, cap: int) -> str:
    """The statement listing label `name`'s values by total cost, highest first, at most `cap + 1`."""
    if name not in LABEL_COLUMNS:
        raise ValueError(f"not a label column: {name}")
    return (
        f'SELECT "{name}" FROM usage_series GROUP BY "{name}" ORDER BY SUM(cost_nanousd) DESC, "{name}" '
        f"LIMIT {int(cap) + 1}"
    )
