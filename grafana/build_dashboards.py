"""Generate the llmcost Grafana dashboards in grafana/dashboards/ deterministically.

    python grafana/build_dashboards.py          # rewrite the JSON files
    python grafana/build_dashboards.py --check  # exit 1 if a committed file differs from the output
    python grafana/build_dashboards.py --selector 'job="llm-cost"' --out DIR   # for your Prometheus

Every query selects llmcost's own series with the mixin-style `--selector` (default `job="llmcost"`,
the same as prometheus/build_rules.py): it is put into every selector of an exporter metric, so
another exporter publishing `llm_cost_usd_total` is never summed in. Of the jobs the selector picks,
every dashboard shows one at a time, chosen with its `job` variable (one installation when Prometheus
scrapes several: `--selector 'job=~"llmcost-.*"'`). Every dashboard shows llmcost's
alerts as annotations: the Prometheus rules' (`ALERTS{alertname=~"LLM.*"}`) and the scheduler's own
(`llm_alerts_active`).

The dashboards themselves are in grafana/dashboard_builder/, one module each. Edit those, never the
JSON (provisioning forbids saving from the UI anyway), and commit both.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_builder import INSTALLATION_INDEPENDENT, OUT_DIR, build_dashboards, render
from dashboard_builder.selector import DEFAULT_SELECTOR, check_selector

__all__ = ["INSTALLATION_INDEPENDENT", "build_dashboards", "main", "render"]


def main(argv: Sequence[str] | None = None) -> int:
    """Write the dashboards, or with --check report the files that differ from the generator."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if any file is stale")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    parser.add_argument("--selector", default=DEFAULT_SELECTOR, help=f"label matchers (default {DEFAULT_SELECTOR})")
    args = parser.parse_args(argv)
    try:
        selector = check_selector(args.selector)
    except ValueError as exc:
        parser.error(str(exc))
    stale = []
    for name, board in build_dashboards(selector).items():
        path = args.out / name
        text = render(board)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"stale, run python grafana/build_dashboards.py: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
