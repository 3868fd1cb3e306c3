"""`llmcost budgets list|show|create|update|delete|reset|apply`.

`list` and `show` open the store read-only. The others write definitions the way their name says and
nothing else: no command applies the `budgets:` of the `--config` it was given, except `apply`, which
prints the difference first (`--dry-run` stops there) and deletes only with `--prune`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from alerting.actor import actor
from alerting.budgets.amounts import amount, amounts_apart, percent
from alerting.budgets.apply import Prune
from alerting.budgets.definition import parse_budgets_section
from alerting.budgets.errors import BudgetError
from alerting.budgets.history import DEFAULT_PERIODS, MAX_PERIODS, HistoryError, parse_periods
from alerting.budgets.origin import ConfigOrigin, file_origin_ref
from alerting.budgets.service import BudgetService
from exporter.config import Config
from exporter.services import Services
from exporter.store import store_location

WRITE_ACTIONS = ("create", "update", "delete", "reset", "apply")
ACTIONS = ("list", "show", *WRITE_ACTIONS)

_FIELDS = (
    "scope",
    "period",
    "limit",
    "unit",
    "mode",
    "timezone",
    "description",
    "max_cost_per_request",
    "max_tokens_per_request",
    "fallback_model",
)
"""The definition fields an option of their own name sets (`--limit`); `--key`, `--threshold` and `--json` aside."""
# The options each action reads. One parser serves every action, so `budgets list --limit 5` parsed
# fine and was silently ignored (read as "5 rows"): an option the action does not read is refused.
_READS: dict[str, frozenset[str]] = {
    "list": frozenset({"format"}),
    "show": frozenset({"format", "periods"}),  # show prints JSON: --format json is what it does anyway
    "create": frozenset({*_FIELDS, "key", "threshold", "definition_json", "by"}),
    "update": frozenset({*_FIELDS, "key", "threshold", "definition_json", "by"}),
    "delete": frozenset({"by"}),
    "reset": frozenset({"key", "by", "reason"}),
    "apply": frozenset({"dry_run", "prune", "by", "detailed_exitcode"}),
}
_OPTIONS = frozenset().union(*_READS.values())
_UNSET: dict[str, Any] = {
    "format": "table",
    "threshold": [],
    "dry_run": False,
    "prune": False,
    "detailed_exitcode": False,
    "periods": None,
}
CHANGES_EXIT_STATUS = 4
"""`apply --detailed-exitcode`: the file's budgets differ from the store (pending with --dry-run, else made).

Not 1 (conflicts), 2 (a usage error or an invalid file) or 3 (no store): a CI job tells "changes pending"
from "no change" (0) and from an error by the status alone.
"""


def _options_not_read(args: argparse.Namespace) -> list[str]:
    """The options given on the command line that `args.action` does not read, as typed (`--limit`)."""
    given = [n for n, value in vars(args).items() if n in _OPTIONS and value != _UNSET.get(n)]
    return [
        "--json" if n == "definition_json" else "--" + n.replace("_", "-")
        for n in given
        if n not in _READS[args.action]
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `budgets` subcommand's arguments (after `--config` and `--db`)."""
    parser.add_argument("action", nargs="?", choices=ACTIONS, default="list")
    parser.add_argument("name", nargs="?")
    fields = parser.add_argument_group("budget fields (create, update; same validation as the config file)")
    fields.add_argument("--scope", choices=("global", "project", "user", "service", "model"))
    fields.add_argument(
        "--key",
        help='value the budget applies to, or "*" for each value (reset of a "*" budget: one value, or "*" for all)',
    )
    fields.add_argument("--period", choices=("hourly", "daily", "weekly", "monthly", "yearly", "total"))
    fields.add_argument("--limit", type=float)
    fields.add_argument("--unit", choices=("usd", "tokens", "requests"))
    fields.add_argument("--mode", choices=("track", "soft", "hard"))
    fields.add_argument("--timezone")
    fields.add_argument("--description")
    fields.add_argument("--threshold", action="append", default=[], metavar="LEVEL=RATIO", help="e.g. warning=0.7")
    fields.add_argument("--max-cost-per-request", type=float)
    fields.add_argument("--max-tokens-per-request", type=int)
    fields.add_argument("--fallback-model")
    parser.add_argument("--json", dest="definition_json", help="the whole definition as a JSON object")
    parser.add_argument("--by", help="who makes the change (audited; required for reset, else $USER)", metavar="NAME")
    parser.add_argument("--reason", help="reset: why (required; recorded, and on the resolved alerts)", metavar="TEXT")
    parser.add_argument("--dry-run", action="store_true", help="apply: print the difference, change nothing")
    parser.add_argument(
        "--prune", action="store_true", help="apply: delete the budgets this file made and no longer declares"
    )
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help=f"apply: exit status {CHANGES_EXIT_STATUS} when the file changes budgets (with --dry-run: would change), "
        "0 when nothing changes, 1 on conflicts",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table", help="list: output format")
    # Named after the budget's own `period`: "the last N periods" of a monthly budget are N months.
    parser.add_argument(
        "--periods",
        metavar="N",
        help=f"show: how many completed periods to list in history, newest first (default {DEFAULT_PERIODS}, "
        f"0 for none, at most {MAX_PERIODS})",
    )


def run(
    args: argparse.Namespace,
    config_from_args: Callable[[argparse.Namespace], Config],
    open_services: Callable[..., Services] = Services.build,
) -> int:
    """Carry out one `llmcost budgets` command.

    `config_from_args` loads the config (the application's, with every section validated) and
    `open_services` opens the store (the application passes its own, with its write hooks).
    """
    action = args.action
    ignored = _options_not_read(args)
    if ignored:
        print(f"llmcost budgets {action}: {', '.join(ignored)} not used by {action} (see --help)", file=sys.stderr)
        return 2
    if action in ("show", "create", "update", "delete", "reset") and not args.name:
        print(f"usage: llmcost budgets {action} NAME", file=sys.stderr)
        return 2
    if action == "apply" and not args.config:
        print("usage: llmcost budgets apply --config FILE [--dry-run] [--prune] [--detailed-exitcode]", file=sys.stderr)
        return 2
    if action == "reset" and (not (args.by or "").strip() or not args.reason):
        # A reset erases a period's count: who and why go on the audit trail and on the resolved alerts.
        print(
            f"usage: llmcost budgets reset {args.name} [--key VALUE] --by NAME --reason TEXT "
            "(who resets and why are recorded; both are required)",
            file=sys.stderr,
        )
        return 2
    periods = DEFAULT_PERIODS
    if args.periods is not None:
        try:
            periods = parse_periods(args.periods, "--periods")
        except HistoryError as exc:
            print(f"llmcost budgets {action}: {exc}", file=sys.stderr)
            return 2
    args.by = actor(args.by)
    config = config_from_args(args)
    read_only = action in ("list", "show") or (action == "apply" and args.dry_run)
    services = open_services(config, start_writer=False, read_only=read_only, must_exist=True)
    print(f"store: {store_location(config.database_url)}", file=sys.stderr)
    try:
        service = BudgetService(services.store, parse_budgets_section(None, []), clock=services.clock)
        budget = service.get(args.name) if action == "reset" else None
        if budget is not None and budget.key == "*" and args.key is None:
            # Never all instances by default: a reset erases a period's count (HTTP answers 422 alike).
            print(
                f'budget {args.name!r} counts each {budget.scope} separately (key "*"): pass --key VALUE to reset '
                f"one {budget.scope}, or --key '*' to reset every {budget.scope}",
                file=sys.stderr,
            )
            return 2
        if action in ("list", "show"):
            return _list(service, args) if action == "list" else _show(service, args.name, periods)
        # What may resolve alerts: a deletion or a reset, and a change that removes a per-request cap
        # (update, apply). Resolved here with who and why; the running server sends the notifications.
        if action in ("update", "delete", "reset") or (action == "apply" and not args.dry_run):
            service.sink = _sink(services, service)
        if action == "apply":
            return _apply(service, args, config)
        return _write(service, args)
    except _UsageError as exc:
        print(f"llmcost budgets {action}: {exc}", file=sys.stderr)
        return 2
    except BudgetError as exc:
        print(f"{exc}", file=sys.stderr)
        for problem in exc.detail if isinstance(exc.detail, list) else []:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    finally:
        services.close()


class _UsageError(Exception):
    """A flag the command cannot use as given (exit status 2, like argparse's own usage errors)."""


def _sink(services: Services, budgets: BudgetService) -> Any:
    """Where this command resolves alerts: the sink `llmcost serve` raises them through, with its links.

    The gateway without delivery workers: resolutions are queued, the running server sends them. With
    `alertmanager:` configured, through Alertmanager too, pushed before the command ends: resolved in the
    gateway only, the alert stayed firing there and the server's next push sent it back to the gateway.
    """
    from alerting.gateway.config import settings_from_config
    from alerting.gateway.service import GatewayService
    from alerting.gateway.sink import GatewaySink
    from alerting.links import dashboard_url, generator_url, runbook_url
    from alerting.push.pusher import Pusher
    from alerting.push.settings import push_settings
    from alerting.push.sink import AlertmanagerSink

    config = services.config
    gateway = GatewayService(services.store, settings_from_config(config), clock=services.clock, start_workers=False)
    services.closers.append(gateway.close)

    def runbook(name: str) -> str:
        return runbook_url(config, name)

    def source(name: str, labels: Mapping[str, str]) -> str:
        return generator_url(config, name, labels, wildcard=budgets.is_wildcard(labels.get("budget", "")))

    def dashboard(name: str, labels: Mapping[str, str]) -> str:
        return dashboard_url(config, name, labels)

    pushing = push_settings(config)
    if not pushing.enabled:
        return GatewaySink(gateway, runbook, source, dashboard)
    pusher = Pusher(services.store, pushing, clock=services.clock)
    services.closers.append(pusher.close)

    def push_now() -> None:
        pusher.push()  # a replica down is counted and logged; the server's resends retry it

    return AlertmanagerSink(
        services.store,
        gateway,
        wake=push_now,
        generator_url=source,
        runbook_url=runbook,
        dashboard_url=dashboard,
        clock=services.clock,
    )


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if args.definition_json:
        try:
            loaded = orjson.loads(args.definition_json)
        except orjson.JSONDecodeError as exc:
            raise _UsageError(f"--json is not valid JSON ({exc}); give an object, e.g. '{{\"limit\": 5}}'") from None
        if not isinstance(loaded, dict):
            raise _UsageError("--json must be a JSON object, e.g. '{\"limit\": 5}'")
        raw.update(loaded)
    for name in ("key", *_FIELDS):
        value = getattr(args, name)
        if value is not None:
            raw[name] = int(value) if name == "limit" and float(value).is_integer() else value
    thresholds: dict[str, Any] = dict(raw.get("thresholds") or {})
    for item in args.threshold:
        level, _, ratio = item.partition("=")
        try:
            thresholds[level] = float(ratio)
        except ValueError:
            raise _UsageError(f"--threshold {item!r}: expected LEVEL=RATIO, e.g. warning=0.7") from None
    if thresholds:
        raw["thresholds"] = thresholds
    return raw


def _write(service: BudgetService, args: argparse.Namespace) -> int:
    name = args.name
    if args.action == "delete":
        service.delete(name, by=args.by)
        print(f"budget {name} deleted by {args.by}")
        return 0
    if args.action == "reset":
        records = service.reset(name, by=args.by, reason=args.reason, key=args.key)
        if not records:
            print(f"budget {name}: no key has spent in this period; nothing to reset")
        for r in records:
            spent = amount(r["unit"], r["spent_before"])
            print(f"budget {name} key {r['key'] or '-'}: reset by {r['reset_by']} at {r['reset_at']} ({spent} spent)")
        return 0
    budget = service.put(name, _fields(args), origin="cli", by=args.by, mode=args.action)
    print(f"budget {name} {args.action}d (origin cli, by {args.by})")
    print(orjson.dumps(service.status(budget.name), option=orjson.OPT_INDENT_2).decode())
    return 0


def _apply(service: BudgetService, args: argparse.Namespace, config: Config) -> int:
    # `config` is the file of --config (required for apply), already loaded and validated.
    problems: list[str] = []
    section = parse_budgets_section(config.raw.get("budgets"), problems)
    if problems:  # load_config validated already; kept for a section validator that changes
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    # The file's budget_set, when it declares one, is what makes it the same file from any checkout path.
    origin_ref = file_origin_ref(config)
    assert origin_ref is not None  # apply requires --config: the config was read from a file
    prune = Prune.OWN if args.prune else Prune.NONE
    plan = service.apply_config(section.items, origin_ref=origin_ref, prune=prune, dry_run=args.dry_run, by=args.by)
    for line in plan.lines():
        print(line)
    verb = "would change" if args.dry_run else "changed"
    file = ConfigOrigin.parse(origin_ref).describe()  # `budget_set search (/ci/7/search.yml)`, else the path
    print(
        f"{file}: {len(plan.create)} to create, {len(plan.update)} to update, {len(plan.delete)} to delete, "
        f"{len(plan.unchanged)} unchanged, {len(plan.kept)} kept, {len(plan.conflicts)} conflicts "
        f"({verb if plan.changes else 'nothing to change'})"
    )
    if plan.conflicts:
        return 1
    # Without the option a change exits 0 as it always did: scripts that run `apply` under `set -e` keep working.
    return CHANGES_EXIT_STATUS if args.detailed_exitcode and plan.changes else 0


def _list(service: BudgetService, args: argparse.Namespace) -> int:
    # Every definition, not only instances with spend: a key "*" budget nothing has spent on yet is
    # one row (key "*", zero spend, a note), so a budget just created is never missing from the list.
    rows = service.listing()
    origins = {row.name: row.origin for row in service.stored_definitions()}
    if args.format == "json":
        print(orjson.dumps({"budgets": [{**r, "origin": origins.get(r["name"], "")} for r in rows]}).decode())
        return 0
    # Amounts in their unit and to the cent, as the check and the console say them (budgets/amounts.py).
    shown = [
        (
            r,
            amounts_apart(r["unit"], r["spent"], r["limit"])[0],  # $4,999.996 does not read as the limit
            amount(r["unit"], r["limit"]),
            percent(r["spent"] / r["limit"], 1),
            amounts_apart(r["unit"], r["projected"], r["limit"])[0],
        )
        for r in rows
    ]
    width = max([len(r["name"]) for r in rows] + [6])
    wide = max([len(t) for _, spent, limit, _, projected in shown for t in (spent, limit, projected)] + [12])
    ratio_width = max([len(ratio) for *_, ratio, _ in shown] + [7])
    # Whole keys: two users "alice.smith@example.com" and "alice.smith@example.org" cut to 16 looked alike.
    key_width = max([len(r["key"]) for r in rows] + [16])
    print(
        f"{'budget':<{width}} {'key':<{key_width}} {'period':<8} {'spent':>{wide}} {'limit':>{wide}} "
        f"{'ratio':>{ratio_width}} {'projected':>{wide}} {'state':<9} origin"
    )
    for r, spent, limit, ratio, projected in shown:
        note = f"  ({r['note']})" if r.get("note") else ""
        print(
            f"{r['name']:<{width}} {r['key'] or '-':<{key_width}} {r['period']:<8} {spent:>{wide}} "
            f"{limit:>{wide}} {ratio:>{ratio_width}} {projected:>{wide}} {r['state']:<9} "
            f"{origins.get(r['name'], '')}{note}"
        )
    if not rows:
        print("(no budgets in this store: `llmcost budgets apply --config FILE`, `budgets create`, or PUT /v1/budgets)")
    return 0


def _show(service: BudgetService, name: str, periods: int) -> int:
    body = {**service.status(name), **service.origin(name), "definition": service.get(name).to_json()}
    body["resets"] = service.resets(name)
    body.update(service.history(name, periods))
    print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    return 0
