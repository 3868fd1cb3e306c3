"""The `spike_state` table: every watched series as the last detection pass left it.

The `llm_spend_*` gauges and the console read it from any process; the next pass (in whichever process
leads then) continues the hysteresis from its stored firing flags.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Column, Float, Integer, MetaData, PrimaryKeyConstraint, String, Table, select

from alerting.spikes.detection import DetectionConfig, Reason
from alerting.spikes.messages import summarize
from alerting.spikes.settings import WATCHABLE_LABELS
from exporter.store import Store

metadata = MetaData()

spike_state = Table(
    "spike_state",
    metadata,
    Column("group_name", String(64), nullable=False),
    Column("series_key", String(32), nullable=False),
    *(Column(label, String(256), nullable=False, server_default="") for label in WATCHABLE_LABELS),
    Column("window_usd", Float, nullable=False),
    Column("baseline_usd", Float, nullable=False),
    Column("ratio", Float, nullable=True),  # NULL when the baseline is 0 (the ratio is undefined)
    Column("score", Float, nullable=True),
    Column("window_minutes", Integer, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("firing", Boolean, nullable=False),
    Column("firing_since", Float, nullable=True),
    Column("evaluated_at", Float, nullable=False),
    PrimaryKeyConstraint("group_name", "series_key", name="pk_spike_state"),
)


@dataclass(frozen=True)
class SpikeState:
    """One watched series as the last detection pass left it."""

    group: str
    labels: dict[str, str]
    """The watched labels and their values (empty for the global total)."""
    window_usd: float
    baseline_usd: float
    ratio: float | None
    score: float | None
    window_minutes: int
    reason: str
    firing: bool
    firing_since: float | None
    evaluated_at: float

    def summary(self, cfg: DetectionConfig | None = None) -> str:
        """Where this series stands and why, in one line (see `summarize`)."""
        reason = Reason[self.reason.upper()] if self.reason.upper() in Reason.__members__ else Reason.SHORT_HISTORY
        return summarize(
            self.labels,
            reason,
            window=self.window_usd,
            baseline=self.baseline_usd,
            minutes=self.window_minutes,
            cfg=cfg or DetectionConfig(),
        )

    def metric_labels(self) -> list[str]:
        """Values for the `llm_spend_*` gauges' labels (group, then every watchable label, "" if unused)."""
        return [self.group, *(self.labels.get(label, "") for label in WATCHABLE_LABELS)]


def series_key(labels: Mapping[str, str]) -> str:
    """A fixed-size key for a label set (its values may be long)."""
    canonical = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def read_spike_state(store: Store) -> list[SpikeState]:
    """Every watched series as last evaluated, ordered by group and labels (what the collector exposes)."""
    cols = spike_state.c
    stmt = select(spike_state).order_by(cols.group_name, *(cols[label] for label in WATCHABLE_LABELS))
    with store.reading() as conn:
        rows = list(conn.execute(stmt))
    return [_state_from_row(dict(row._mapping)) for row in rows]


def _state_from_row(m: Mapping[str, Any]) -> SpikeState:
    group = m["group_name"]
    watched = () if group == "global" else tuple(group.split("_"))
    return SpikeState(
        group=group,
        labels={label: m[label] for label in watched if label in WATCHABLE_LABELS},
        window_usd=float(m["window_usd"]),
        baseline_usd=float(m["baseline_usd"]),
        ratio=None if m["ratio"] is None else float(m["ratio"]),
        score=None if m["score"] is None else float(m["score"]),
        window_minutes=int(m["window_minutes"]),
        reason=m["reason"],
        firing=bool(m["firing"]),
        firing_since=None if m["firing_since"] is None else float(m["firing_since"]),
        evaluated_at=float(m["evaluated_at"]),
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def state_row(
    group: str,
    labels: Mapping[str, str],
    *,
    window: float,
    baseline: float,
    ratio: float,
    score: float,
    minutes: int,
    reason: str,
    firing: bool,
    since: float | None,
    now: float,
) -> dict[str, Any]:
    """One `spike_state` row (an undefined ratio or score is stored as NULL)."""
    return {
        "group_name": group,
        "series_key": series_key(labels),
        **{label: labels.get(label, "") for label in WATCHABLE_LABELS},
        "window_usd": window,
        "baseline_usd": baseline,
        "ratio": _finite(ratio),
        "score": _finite(score),
        "window_minutes": minutes,
        "reason": reason,
        "firing": firing,
        "firing_since": since,
        "evaluated_at": now,
    }


def row_from_state(state: SpikeState) -> dict[str, Any]:
    """The row that keeps `state` as it was (a series whose resolve could not be handed over)."""
    return state_row(
        state.group,
        state.labels,
        window=state.window_usd,
        baseline=state.baseline_usd,
        ratio=math.inf if state.ratio is None else state.ratio,
        score=math.inf if state.score is None else state.score,
        minutes=state.window_minutes,
        reason=state.reason,
        firing=state.firing,
        since=state.firing_since,
        now=state.evaluated_at,
    )
