"""What spike alerts and state summaries say: the alert's name and annotations, one-line summaries."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime

from alerting.spikes.detection import DetectionConfig, Reason

ALERTNAME = "LLMCostSpike"
SEVERITY = "warning"
RUNBOOK_URL = "docs/runbook.md#llmcostspike"


def _describe(labels: Mapping[str, str]) -> str:
    if not labels:
        return "total LLM spend"
    return "LLM spend of " + ", ".join(f'{k}="{v}"' for k, v in labels.items())


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def summarize(
    labels: Mapping[str, str],
    reason: Reason,
    *,
    window: float,
    baseline: float,
    minutes: int,
    cfg: DetectionConfig,
) -> str:
    """One line saying where a series stands and why, in plain words, for every `Reason`.

    A ratio is only ever shown against an established baseline: a series without one is described by
    its spend alone.
    """
    what = _describe(labels)
    spent = f"{what} was {_usd(window)} in the last {minutes} minutes"
    if reason is Reason.SHORT_HISTORY or not baseline > 0:
        return f"No baseline yet: {spent}; a series needs spend history before it can alert."
    against = f"{window / baseline:.1f}x its baseline of {_usd(baseline)}"
    if reason is Reason.LOW_SPEND:
        return f"Normal: {spent} ({against}), below the {_usd(cfg.min_spend_usd)} that may alert."
    if reason is Reason.BELOW_MULTIPLIER:
        return f"Normal: {spent} ({against}; alerting at {cfg.multiplier:g}x)."
    if reason is Reason.BELOW_RECENT_LEVEL:
        return f"Normal: {spent} ({against}), no sudden rise over its level of the last few hours."
    if reason is Reason.NEAR_USUAL_PEAK:
        return f"Normal: {spent} ({against}), within its usual busiest window at this time of day."
    if reason is Reason.SCORE_DISAGREES:
        return f"Normal: {spent} ({against}), within its usual variation."
    if reason is Reason.HELD:
        return f"Spend spike continuing: {spent} ({against}; resolves below {cfg.resolve_multiplier:g}x)."
    return f"Spend spike: {spent} ({against})."


def spike_ended(*, window: float, baseline: float, ratio: float, minutes: int, cfg: DetectionConfig) -> str:
    """Why llmcost resolves a spike, in its firing message's terms, with the figures of the pass that ended it.

    The firing description says "it resolves when spend falls back below 1.5x the baseline", so its resolve
    says that happened: "spend fell back below 1.5x the baseline: $0.25 in the last 30 minutes, 1.0x its
    baseline of $0.24". A series also stops once its spend is under half `min_spend_usd` whatever its
    ratio; that is said instead. The ratio is rounded down, so it never reads as the level it fell below.
    """
    spent = f"{_usd(window)} in the last {minutes} minutes"
    if baseline > 0 and math.isfinite(ratio) and window < cfg.resolve_multiplier * baseline:
        shown = math.floor(ratio * 10) / 10
        return (
            f"spend fell back below {cfg.resolve_multiplier:g}x the baseline: {spent}, "
            f"{shown:.1f}x its baseline of {_usd(baseline)}"
        )
    return f"spend fell to {spent}, under half the {_usd(cfg.min_spend_usd)} a spike needs"


def unwatched(labels: Mapping[str, str]) -> str:
    """Why llmcost resolves a spike of a label set `detection.series` no longer lists: it is not watched."""
    watched = f"spend by {', '.join(labels)}" if labels else "total spend"
    return f"spike detection no longer watches {watched} (detection.series changed)"


GROWTH = 2.0
"""A firing spike's messages are updated once its ratio reached this many times the ratio they show."""


def grew(ratio: float, notified: Mapping[str, str]) -> bool:
    """True when a firing spike's `ratio` is at least `GROWTH` times the ratio its alert last notified.

    A factor, not a difference or "any change": a noisy series wobbling around its level (3x, 4.5x, 3.2x…)
    never doubles, so it edits nothing, and each edit doubles the bar (4x, then 8x, then 16x), so even a
    runaway spike is edited a handful of times. An alert without a finite notified ratio is left alone.
    """
    try:
        shown = float(notified.get("ratio", "").removesuffix("x"))
    except ValueError:
        return False
    return math.isfinite(ratio) and math.isfinite(shown) and shown > 0 and ratio >= GROWTH * shown


def pass_stamp(now: float) -> str:
    """The `SPIKE_PASS_ANNOTATION` of the spikes a detection pass at `now` starts (RFC 3339, UTC)."""
    return datetime.fromtimestamp(now, tz=UTC).isoformat().replace("+00:00", "Z")


def alert_annotations(
    labels: Mapping[str, str], *, window: float, baseline: float, ratio: float, minutes: int, cfg: DetectionConfig
) -> dict[str, str]:
    """The annotations of an `LLMCostSpike` alert: observed, baseline, ratio, summary, description, runbook."""
    ratio_text = f"{ratio:.1f}x" if math.isfinite(ratio) else "no baseline spend"
    what = _describe(labels)
    return {
        "observed": f"{_usd(window)} in {minutes} min",
        "baseline": _usd(baseline),
        "ratio": ratio_text,
        "summary": summarize(labels, Reason.SPIKE, window=window, baseline=baseline, minutes=minutes, cfg=cfg),
        "description": (
            f"{what[0].upper()}{what[1:]} reached {_usd(window)} in the last {minutes} minutes, against a "
            f"baseline of {_usd(baseline)} for a window of that length (comparable windows of the previous "
            f"{cfg.baseline_days} days and recent hours). Alerting at {cfg.multiplier:g}x the baseline and at "
            f"least {_usd(cfg.min_spend_usd)}; it resolves when spend falls back below "
            f"{cfg.resolve_multiplier:g}x the baseline."
        ),
        "runbook_url": RUNBOOK_URL,
    }
