r"""Render the llmcost Prometheus rules for your Prometheus: series selector, runbook base URL, Grafana.

    python prometheus/build_rules.py --out /etc/prometheus/rules \
        --selector 'job="llm-cost", cluster="eu-1"' \
        --runbook-base-url https://llmcost.example.com/runbook \
        --grafana-url https://grafana.example.com
    python prometheus/build_rules.py --check   # exit 1 if a shipped file lacks the default selector somewhere

As a monitoring mixin does (its `_config.selector`, runbook and dashboard URLs), the things that differ
between installations are parameters:

- `--selector` (default `job="llmcost"`): the label matchers that pick llmcost's own series out of
  everything Prometheus scrapes. Every selector of an exporter metric (`llm_*`, and `up`) in every
  rule carries it, so another exporter publishing `llm_cost_usd_total` is never summed with llmcost.
  Recorded series (`level:metric:operation`) are computed from selected series and need none; they
  keep every label of the selector (each rule sums `without` what it aggregates away), so several
  installations the selector picks (`job=~"llmcost-.*"`) keep their own series.
- `--runbook-base-url` (default `http://localhost:9800/runbook`, llmcost's own `/runbook` on its
  default address): every alert's `runbook_url` is `<base>#<alert name in lower case>`. Give
  llmcost's `external_url` + `/runbook`, or your own copy of docs/runbook.md.
- `--grafana-url` (default `http://localhost:3000`, the compose stack's Grafana): where the provisioned
  dashboards are, as llmcost's own `grafana_url` says it (Grafana's root, or a dashboard URL whose
  part before `/d/` is the root; the same value works for both). Every alert's `dashboard_url` (the
  Dashboard button in Slack, the link in mail and PagerDuty) opens its dashboard there; `''` leaves
  `dashboard_url` out, for a Prometheus without those dashboards.

The files in prometheus/rules/ are this script's output with the defaults (and what the promtool unit
tests beside them test); the rendered copies keep their comments.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

RULES_DIR = Path(__file__).resolve().parent / "rules"
DEFAULT_SELECTOR = 'job="llmcost"'
DEFAULT_RUNBOOK_BASE_URL = "http://localhost:9800/runbook"
DEFAULT_GRAFANA_URL = "http://localhost:3000"

# An exporter metric name (not part of a recorded name such as `project:llm_cost_usd:rate5m`), with
# its label matchers if it has any.
_RAW_SELECTOR = re.compile(r"(?<![:\w])(?P<name>up|llm_[a-z0-9_]+)(?![:\w(])(?P<braces>\{[^{}]*\})?")
_MATCHER = r"""[A-Za-z_][A-Za-z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*\""""
_SELECTOR = re.compile(rf"^\s*{_MATCHER}(?:\s*,\s*{_MATCHER})*\s*$")
_RUNBOOK = re.compile(r"(runbook_url:\s*)(\S+)#(\w+)")
# A dashboard link: Grafana's root (group 2) is what an installation changes, the dashboard it opens not.
_DASHBOARD = re.compile(r"^(\s*dashboard_url:\s*')([^']*?)(/d/[^']*'\s*)$")
_EXPR_LINE = re.compile(r"^(?P<indent>\s*)(?:-\s+)?expr:\s*(?P<rest>.*)$")


def check_selector(selector: str) -> str:
    """The selector, stripped; ValueError unless it is a comma-separated list of label matchers."""
    if not _SELECTOR.match(selector):
        raise ValueError(f'selector must be label matchers such as job="llmcost", got {selector!r}')
    return selector.strip()


def add_selector(expr: str, selector: str = DEFAULT_SELECTOR, *, replace: str = DEFAULT_SELECTOR) -> str:
    """`expr` with `selector` in every exporter-metric selector (replacing `replace` where present).

    A selector that already names a `job` other than `replace` is left as it is (it means that job).
    """

    def one(match: re.Match[str]) -> str:
        name, braces = match["name"], match["braces"]
        inner = braces[1:-1].strip() if braces else ""
        if replace and replace in inner:
            return f"{name}{{{inner.replace(replace, selector)}}}"
        if re.search(r"(?<![\w])job\s*(=~|!~|!=|=)", inner):
            return match.group(0)
        return f"{name}{{{selector}, {inner}}}" if inner else f"{name}{{{selector}}}"

    return _RAW_SELECTOR.sub(one, expr)


_DEFAULTS_NOTE = (
    "# This file is prometheus/build_rules.py's output with its defaults: render your own copy with your\n"
    "# selector, runbook base URL and Grafana (`--selector`, `--runbook-base-url`, `--grafana-url`, see\n"
    "# docs/alerting-paths.md).\n"
)


def grafana_root(url: str) -> str:
    """Grafana's root from a `--grafana-url` (as from llmcost's `grafana_url`): the part before `/d/`."""
    return url.split("/d/", 1)[0].split("?", 1)[0].rstrip("/")


def _header(text: str, selector: str, runbook_base_url: str, grafana_url: str) -> str:
    """The leading comment block, saying what this copy was rendered with (not "its defaults")."""
    if (selector, runbook_base_url, grafana_url) == (DEFAULT_SELECTOR, DEFAULT_RUNBOOK_BASE_URL, DEFAULT_GRAFANA_URL):
        return text
    lines = text.splitlines(keepends=True)
    end = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    head = "".join(lines[:end]).replace(DEFAULT_SELECTOR, selector)
    rendered = (
        f"# This file is prometheus/build_rules.py's output with --selector '{selector}',\n"
        f"# --runbook-base-url {runbook_base_url}\n"
        f"# and --grafana-url '{grafana_url}': render it again from the shipped files to change them.\n"
    )
    return head.replace(_DEFAULTS_NOTE, rendered) + "".join(lines[end:])


def render(text: str, selector: str, runbook_base_url: str, grafana_url: str = DEFAULT_GRAFANA_URL) -> str:
    """One rule file's text with the selector in its expressions and links on the runbook and Grafana bases."""
    grafana_url = grafana_root(grafana_url)
    lines = _header(text, selector, runbook_base_url, grafana_url).splitlines(keepends=True)
    out: list[str] = []
    block_indent: int | None = None
    for line in lines:
        body = line.lstrip()
        indent = len(line) - len(body)
        if block_indent is not None:
            if not body.strip() or indent > block_indent:
                out.append(line if body.startswith("#") else add_selector(line, selector))
                continue
            block_indent = None
        expr = _EXPR_LINE.match(line.rstrip("\n"))
        if expr:
            if expr["rest"].strip() in ("|", "|-", ">", ">-"):
                block_indent = len(expr["indent"])
                out.append(line)
            else:
                out.append(add_selector(line, selector))
            continue
        if not body.startswith("#"):  # descriptions may quote the selector too
            line = line.replace(DEFAULT_SELECTOR, selector)
        dashboard = _DASHBOARD.match(line)
        if dashboard and not grafana_url:
            continue  # no Grafana with the dashboards: no link that would not open
        if dashboard:
            line = f"{dashboard[1]}{grafana_url}{dashboard[3]}"
        out.append(_RUNBOOK.sub(lambda m: f"{m[1]}{runbook_base_url}#{m[3]}", line))
    return "".join(out)


def rule_files() -> list[Path]:
    """The shipped rule files (not their promtool tests)."""
    return sorted(RULES_DIR.glob("*.rules.yml"))


def main(argv: Sequence[str] | None = None) -> int:
    """Render into --out, or --check the shipped files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder to write the rendered rule files to")
    parser.add_argument("--selector", default=DEFAULT_SELECTOR, help=f"label matchers (default {DEFAULT_SELECTOR})")
    parser.add_argument(
        "--runbook-base-url", default=DEFAULT_RUNBOOK_BASE_URL, help=f"default {DEFAULT_RUNBOOK_BASE_URL}"
    )
    parser.add_argument(
        "--grafana-url",
        default=DEFAULT_GRAFANA_URL,
        help=f"Grafana with the dashboards, as llmcost's grafana_url (default {DEFAULT_GRAFANA_URL}; '' for none)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 unless the shipped files are the default output")
    args = parser.parse_args(argv)
    try:
        selector = check_selector(args.selector)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.runbook_base_url.startswith(("http://", "https://")):
        parser.error("--runbook-base-url must be an absolute http(s) URL")
    if args.grafana_url and not args.grafana_url.startswith(("http://", "https://")):
        parser.error("--grafana-url must be an absolute http(s) URL, or '' for no dashboard links")
    if "'" in args.grafana_url:
        parser.error("--grafana-url must not contain a quote")
    if args.check:
        default = (DEFAULT_SELECTOR, DEFAULT_RUNBOOK_BASE_URL)
        stale = [p.name for p in rule_files() if render(p.read_text(), *default) != p.read_text()]
        if stale:
            print(f"not the default output (a selector or runbook link missing): {', '.join(stale)}", file=sys.stderr)
            return 1
        return 0
    if args.out is None:
        parser.error("give --out DIR (or --check)")
    args.out.mkdir(parents=True, exist_ok=True)
    for path in rule_files():
        target = args.out / path.name
        target.write_text(render(path.read_text(), selector, args.runbook_base_url.rstrip("/"), args.grafana_url))
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
