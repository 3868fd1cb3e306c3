"""Fill the output blocks of docs/promql.md from a live Prometheus, such as the one `make stack` runs.

Every section of docs/promql.md that holds a `<!-- live-output: ID -->` marker is followed by a ```text
block. This runs the section's ```promql blocks (the "Spend today" section builds its query in a shell
command, so its range is computed here the same way) against Prometheus and prints docs/promql.md with
those blocks filled; `--write` rewrites the file in place. Nothing is made up: a query without data says so.

    make stack                                  # in one terminal; wait at least ten minutes
    .venv/bin/python scripts/promql_examples.py --write
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from local_stack.configs import REPO
from local_stack.prometheus_api import format_sample, instant_query

DOC = REPO / "docs" / "promql.md"
MARKER = re.compile(r"^<!-- live-output: (?P<id>[a-z0-9-]+) -->$")
OUTPUTS_NOTE = re.compile(r"^> \*\*Outputs\.\*\*.*?(?=\n\n)", re.MULTILINE | re.DOTALL)


def _since_midnight_query() -> str:
    # What the section's `$(( $(date +%s) % 86400 ))s` evaluates to right now.
    return f"sort_desc(sum by (project) (increase(llm_cost_usd_total[{int(time.time()) % 86400}s])))"


# Sections whose query is built by a shell command rather than written in a ```promql block.
COMPUTED: dict[str, Callable[[], str]] = {"spend-today-by-project": _since_midnight_query}


def sections(lines: Sequence[str]) -> dict[str, list[str]]:
    """Marker id -> the PromQL blocks of its section, in order."""
    found: dict[str, list[str]] = {}
    blocks: list[str] = []
    current: list[str] | None = None
    for line in lines:
        if current is not None:
            if line.startswith("```"):
                blocks.append("\n".join(current))
                current = None
            else:
                current.append(line)
        elif line.startswith("## "):
            blocks = []
        elif line.strip() == "```promql":
            current = []
        elif match := MARKER.match(line.strip()):
            found[match["id"]] = list(blocks)
    return found


def render(prometheus: str, queries: Sequence[str]) -> list[str]:
    """The lines of one output block: each query's samples (queries named when there are several)."""
    out: list[str] = []
    for i, expr in enumerate(queries):
        if len(queries) > 1:
            if i:
                out.append("")
            out.append("# " + " ".join(expr.split()))
        samples = instant_query(prometheus, expr)
        out += [format_sample(s) for s in samples] or ["(no data)"]
    return out


def fill(text: str, prometheus: str) -> str:
    """docs/promql.md with every live-output block replaced by Prometheus's answers now."""
    lines = text.split("\n")
    queries = sections(lines)
    result: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        result.append(line)
        match = MARKER.match(line.strip())
        i += 1
        if match is None:
            continue
        ident = match["id"]
        block = [COMPUTED[ident]()] if ident in COMPUTED else queries.get(ident, [])
        if not block:
            raise SystemExit(f"{DOC}: section {ident!r} has no ```promql block and no computed query")
        if lines[i] != "```text":
            raise SystemExit(f"{DOC}: the marker {ident!r} must be followed by a ```text block")
        end = lines.index("```", i + 1)
        result += ["```text", *render(prometheus, block), "```"]
        i = end + 1
    return "\n".join(result)


def outputs_note(prometheus: str) -> str:
    """The page's note on where the outputs come from, with the time and Prometheus's uptime."""
    uptime = instant_query(prometheus, 'time() - process_start_time_seconds{job="prometheus"}')
    minutes = float(uptime[0]["value"][1]) / 60 if uptime else 0.0
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"> **Outputs.** Real outputs, recorded {when} by `scripts/promql_examples.py` from\n"
        f"> `make stack` after {minutes:.0f} minutes: llmcost fed the bundled Azure trace (its last hour, then\n"
        "> replayed in real time), Prometheus with the shipped rules and 30-second intervals. Values are\n"
        "> rounded to six significant digits. Prometheus counts what it saw arrive: the first ten minutes of\n"
        "> the trace's hour were sent before it started, so `increase()` over a day holds the other fifty\n"
        "> minutes plus the replay, and budgets (read from llmcost's store) the whole hour."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print docs/promql.md with live outputs, or rewrite it with --write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus base URL")
    parser.add_argument("--write", action="store_true", help=f"rewrite {DOC.relative_to(REPO)} in place")
    args = parser.parse_args(argv)
    text = fill(DOC.read_text(encoding="utf-8"), args.prometheus.rstrip("/"))
    text = OUTPUTS_NOTE.sub(lambda _m: outputs_note(args.prometheus.rstrip("/")), text, count=1)
    if args.write:
        DOC.write_text(text, encoding="utf-8")
        print(f"wrote {DOC}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
