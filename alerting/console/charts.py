"""Server-rendered SVG charts for the console: stacked spend bars, budget bars, spike sparklines.

Why SVG from the server rather than a JavaScript chart library: the page must work offline with no
build step and no CDN, and a vendored library would be the largest file llmcost serves for three
chart shapes. These functions are pure (numbers in, markup out); every text they emit (label values
are user input) goes through `markupsafe.escape`, and colours come from CSS classes, not inline style.
Time ticks and the bars' hover texts carry their epoch second in `data-t`, so the page's script can
relabel them in the viewer's time zone (a day in the zone it was cut in, `data-zone`); the server's
labels are the fallback (UTC or the zone named in the caption).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from alerting.budgets.amounts import percent, usd

PALETTE_SIZE = 8
"""Series colours `.c0` … `.c7` in console.css; the last one is kept for "other"."""


@dataclass(frozen=True)
class Stack:
    """One stacked series: its label and one value per bar."""

    name: str
    values: Sequence[float]
    colour: int


def axis_money(value: float) -> str:
    """An axis label: cents below $1,000, whole dollars above (the axis' round steps need no cents).

    Every figure a person reads as an amount (totals, tables, a bar's tooltip) is `amounts.usd`, to the
    cent, as `llmcost report` prints it.
    """
    if abs(value) >= 1000:
        return f"${value:,.0f}"
    if 0 < abs(value) < 0.01:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5, 5 × a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover - the loop ends at 10


def _attr(value: object) -> Markup:
    return escape(str(value))


def stacked_bars(
    starts: Sequence[int],
    step: int,
    stacks: Sequence[Stack],
    *,
    tick_every: int,
    tick_format: str,
    zone: ZoneInfo,
    title: str,
    width: int = 720,
    height: int = 200,
) -> Markup:
    """Bars at epoch seconds `starts` (each `step` long), the stacks piled bottom-up in order.

    `tick_format` is `hour` or `day` (how the script relabels); `zone` is the server's fallback zone.
    """
    left, bottom, top = 56, 22, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    n = len(starts)
    totals = [sum(s.values[i] for s in stacks) for i in range(n)]
    ymax = nice_max(max(totals, default=0.0))
    slot = plot_w / max(n, 1)
    bar_w = max(slot * 0.8, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{_attr(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for k in range(5):
        value = ymax * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_attr(axis_money(value))}</text>'
        )
    # The script relabels every time in the viewer's zone, but a day is the day it was cut in: a day's
    # start (midnight in `zone`) is the evening before west of `zone`, so day labels name their zone.
    in_zone = f' data-zone="{_attr(zone.key)}"' if tick_format == "day" else ""
    for i, start in enumerate(starts):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        when = _label(start, tick_format, zone)
        for stack in stacks:
            value = stack.values[i]
            if value <= 0:
                continue
            h = plot_h * value / ymax
            y -= h
            # The hover text's time is relabelled like the axis (data-prefix: the words before it).
            what = f"{stack.name or '(none)'}: {usd(value)} · "
            parts.append(
                f'<rect class="c{stack.colour}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.2f}">'
                f'<title data-t="{start}" data-fmt="{_attr(tick_format)}"{in_zone} data-prefix="{_attr(what)}">'
                f"{_attr(what)}{_attr(when)}</title></rect>"
            )
        if i % tick_every == 0:
            parts.append(
                f'<text class="axis tick" x="{x + bar_w / 2:.1f}" y="{height - 6}" text-anchor="middle" '
                f'data-t="{start}" data-fmt="{_attr(tick_format)}"{in_zone}>'
                f"{_attr(_label(start, tick_format, zone))}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text interpolated above went through escape)


def _label(epoch: int, fmt: str, zone: ZoneInfo) -> str:
    local = datetime.fromtimestamp(epoch, UTC).astimezone(zone)
    return local.strftime("%H:%M") if fmt == "hour" else local.strftime("%b %d")


def budget_bar(
    ratio: float, projected_ratio: float | None, state: str, *, width: int = 240, height: int = 18
) -> Markup:
    """Spent / limit as a bar coloured by state, the limit as a line and the projection as a marker.

    The scale reaches past the limit when spend or projection does (at most 2x, arrows beyond).
    `projected_ratio` None: no projection yet (too little history, or no period end), no marker.
    """
    scale = min(max(1.0, ratio, projected_ratio or 0.0) * 1.05, 2.0)
    fill = min(ratio, scale) / scale * width
    limit_x = width / scale
    if projected_ratio is None:
        label, marker = f"{percent(ratio)} spent, not projected yet", ""
    else:
        proj = min(projected_ratio, scale) / scale * width
        label = f"{percent(ratio)} spent, {percent(projected_ratio)} projected"
        marker = (
            f'<path class="projected" d="M{proj:.1f} {height - 1} l-4 -6 h8 z"><title>projected at period end: '
            f"{percent(projected_ratio)} of the limit</title></path>"
        )
    return Markup(  # noqa: S704 (the only texts, label and state, are escaped)
        f'<svg class="bar" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{_attr(label)}" xmlns="http://www.w3.org/2000/svg">'
        f'<rect class="track" x="0" y="3" width="{width}" height="{height - 6}" rx="3"/>'
        f'<rect class="state-{_attr(state)}" x="0" y="3" width="{fill:.1f}" height="{height - 6}" rx="3"/>'
        f'<line class="limit" x1="{limit_x:.1f}" x2="{limit_x:.1f}" y1="0" y2="{height}"/>'
        f"{marker}</svg>"
    )


def spike_chart(
    values: Sequence[float],
    window_buckets: int,
    baseline_per_bucket: float,
    *,
    width: int = 280,
    height: int = 70,
) -> Markup:
    """5-minute spend bars, the last `window_buckets` highlighted, the baseline level as a dashed line."""
    n = len(values)
    ymax = nice_max(max([*values, baseline_per_bucket * 1.2, 1e-9]))
    slot = width / max(n, 1)
    parts = [
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="spend per 5 minutes against the baseline" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, value in enumerate(values):
        h = (height - 2) * value / ymax
        cls = "window" if i >= n - window_buckets else "before"
        parts.append(
            f'<rect class="{cls}" x="{i * slot + 0.5:.1f}" y="{height - h:.1f}" width="{max(slot - 1, 0.5):.1f}" '
            f'height="{h:.2f}"><title>{_attr(usd(value))} in 5 minutes</title></rect>'
        )
    y = height - (height - 2) * baseline_per_bucket / ymax
    parts.append(f'<line class="baseline" x1="0" x2="{width}" y1="{y:.1f}" y2="{y:.1f}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text interpolated above went through escape)
