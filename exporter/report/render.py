"""Report output: a plain-text table, JSON, CSV (the breakdown rows) and Markdown."""

from __future__ import annotations

import csv
import io
import math
import re
import time
from datetime import datetime
from decimal import Decimal

import orjson

from exporter.events import nanos_to_usd
from exporter.local_time import zone
from exporter.report.build import Report, ratio_text, row_json
from exporter.report.query import Row

FORMATS = ("table", "json", "csv", "markdown")


def render(report: Report, fmt: str) -> str:
    """The report in `fmt` (one of FORMATS), ending with a newline."""
    if fmt == "json":
        return orjson.dumps(report.to_json()).decode() + "\n"
    if fmt == "csv":
        return _csv(report)
    if fmt == "markdown":
        return _markdown(report)
    return _table(report)


def _when(moment: float | None, open_end: str, tz: str = "UTC") -> str:
    if moment is None:
        return open_end
    if tz == "UTC":
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
    # With the offset in force then: November in Los Angeles reads 2026-11-01T00:00:00-07:00 ..
    # 2026-12-01T00:00:00-08:00, its DST change in between.
    return datetime.fromtimestamp(moment, zone(tz)).replace(microsecond=0).isoformat()


def _title(report: Report) -> str:
    tz = report.timezone
    title = f"{_when(report.since, 'beginning', tz)} .. {_when(report.until, 'now', tz)}, by {', '.join(report.by)}"
    if tz != "UTC":
        title += f" ({tz})"
    if report.widened:
        asked = f"{_when(report.requested_since, 'beginning', tz)} .. {_when(report.requested_until, 'now', tz)}"
        hours = ", and to whole hours where pruning folded the 5-minute ones" if report.widened_to_hours else ""
        title += f" (asked {asked}; widened to whole 5-minute buckets{hours})"
    return title


def _all_rows(report: Report) -> list[tuple[Row, str]]:
    out = [(row, "") for row in report.rows]
    if report.rest is not None:
        out.append((report.rest, f"{report.rest_groups} more"))
    return out


def _table(report: Report) -> str:
    widths = [max(8, min(28, max((len(r.labels[i]) for r in report.rows), default=0))) for i in range(len(report.by))]
    lines = [f"llmcost report: {_title(report)}"]
    header = " ".join(f"{name:<{w}}" for name, w in zip(report.by, widths, strict=True))
    header += f" {'requests':>9} {'tokens':>12} {'cost_usd':>12}"
    lines += [header, "-" * len(header)]
    for row, note in _all_rows(report):
        labels = " ".join(f"{(label or '-')[:w]:<{w}}" for label, w in zip(row.labels, widths, strict=True))
        t = row.totals
        flag = f"  ({note})" if note else ("  (unpriced)" if t.unpriced_requests else "")
        lines.append(f"{labels} {t.requests:>9} {t.tokens:>12} {nanos_to_usd(t.cost_nanousd):>12.4f}{flag}")
    label_width = sum(widths) + len(widths) - 1
    t = report.total
    lines.append(f"{'total':<{label_width}} {t.requests:>9} {t.tokens:>12} {nanos_to_usd(t.cost_nanousd):>12.4f}")
    if report.models:
        lines += ["", f"{'per model':<40} {'requests':>9} {'cache hit':>9} {'out/in':>8} {'cost_usd':>12}"]
        for row in report.models:
            name = f"{row.labels[0]}/{row.labels[1]}"[:40]
            m = row.totals
            lines.append(
                f"{name:<40} {m.requests:>9} {ratio_text(m.cache_hit_ratio):>9} "
                f"{ratio_text(m.output_input_ratio):>8} {nanos_to_usd(m.cost_nanousd):>12.4f}"
            )
    if report.hints:
        lines += ["", "hints (money at stake first)"]
        for number, hint in enumerate(report.hints, start=1):
            stake = "not counted" if hint.usd_at_stake is None else f"${hint.usd_at_stake:,.2f}"
            lines.append(f"{number}. [{hint.kind}] {stake}: {hint.text}")
            lines.append("   figures: " + ", ".join(f"{k}={_figure(v)}" for k, v in hint.figures.items()))
    return "\n".join(lines) + "\n"


def _figure(value: object) -> str:
    if value is None:  # a figure with no value (no growth ratio in a first week): `-`, as an absent label reads
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting with one of these is run as a formula by Excel, LibreOffice and Google Sheets."""


def _cell(value: object) -> object:
    # Label values come from whoever holds an ingest token; a project named `=HYPERLINK(...)` or
    # `=cmd|...` must reach the person opening the CSV as text. The quote is OWASP's advice for CSV
    # injection: spreadsheets show the text and do not run it.
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _number(value: object) -> object:
    # Python writes a float below 1e-4 in exponent form (`2.1e-05`), which some importers (a finance
    # system's, `numeric` columns fed by a script) refuse or read as text. The shortest repr is exact to
    # the nano-dollar (a cost is whole nano-dollars), so it is written out in positional form.
    if isinstance(value, float) and math.isfinite(value):
        return format(Decimal(repr(value)), "f")
    return value


def _csv(report: Report) -> str:
    out = io.StringIO()
    rows = [
        {key: _cell(value) if key in report.by else _number(value) for key, value in row_json(report.by, row).items()}
        for row, _ in _all_rows(report)
    ]
    # The columns of an empty row: a range without calls has the same header as any other.
    fields = list(row_json(report.by, Row(tuple("" for _ in report.by))))
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# Label values come from whoever holds an ingest token: in a pasted report `[x](https://evil)` became a link,
# `<img src=…>` raw HTML, `*x*` another name, and `a\|b` lost its backslash (GitHub split the cell there).
# CommonMark lets any ASCII punctuation be escaped with a backslash; these are the ones that act in a cell.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def _md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md(text: str) -> str:
    return _md_escape(text) or "-"


def _md_prose(text: str) -> str:
    """A hint's text: its code spans (a command to copy) kept as they are, everything else escaped."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick (from a label value): no span to keep
        return _md(text)
    return "`".join(part if i % 2 else _md(part) for i, part in enumerate(parts))


def _markdown(report: Report) -> str:
    lines = ["# llmcost report", "", _title(report), ""]
    lines.append("| " + " | ".join([*report.by, "requests", "tokens", "cost (USD)"]) + " |")
    lines.append("|" + "---|" * len(report.by) + "---:|---:|---:|")
    for row, note in _all_rows(report):
        labels = [_md(label) for label in row.labels]
        if note:
            labels[0] = f"({note})"
        t = row.totals
        lines.append(f"| {' | '.join(labels)} | {t.requests} | {t.tokens} | {nanos_to_usd(t.cost_nanousd):.4f} |")
    t = report.total
    cells = ["**total**", *[""] * (len(report.by) - 1), str(t.requests), str(t.tokens)]
    lines.append(f"| {' | '.join(cells)} | {nanos_to_usd(t.cost_nanousd):.4f} |")
    if report.models:
        lines += [
            "",
            "## Per model",
            "",
            "| model | requests | cache hit | output/input | cost (USD) |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in report.models:
            m = row.totals
            lines.append(
                f"| {_md(row.labels[0])}/{_md(row.labels[1])} | {m.requests} | {ratio_text(m.cache_hit_ratio)} | "
                f"{ratio_text(m.output_input_ratio)} | {nanos_to_usd(m.cost_nanousd):.4f} |"
            )
    if report.hints:
        lines += ["", "## Hints", ""]
        for hint in report.hints:
            stake = "not counted" if hint.usd_at_stake is None else f"${hint.usd_at_stake:,.2f}"
            # The keys are fixed names (an intraword `_` is no emphasis); the values may be label values.
            figures = ", ".join(f"{k}={_md_escape(_figure(v))}" for k, v in hint.figures.items())
            lines.append(f"- **{hint.kind}** ({stake}): {_md_prose(hint.text)}  \n  _figures: {figures}_")
    return "\n".join(lines) + "\n"
