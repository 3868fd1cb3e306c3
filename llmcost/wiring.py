"""The application's wiring: the alerting side built on the exporter's `Services`, by role.

`attach_alerting` builds budgets, the gateway, detection, the scheduler, the console and their HTTP
routes from the config, and hands back what it built as one typed `AlertingParts`.

Roles (`llmcost serve --role`): `all` runs everything; `ingest` serves every HTTP endpoint and keeps
budget spend current (the spend is maintained inside each ingest transaction), but delivers no
notifications and runs no scheduled job; `scheduler` adds the delivery workers and the scheduled jobs.
The store itself is opened by `llmcost.services.open_services` (with the budget spend write hook).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute

from alerting.budgets.alerts import BUDGET_ALERTS
from alerting.budgets.apply import ApplyPlan, Prune
from alerting.budgets.collector import BudgetCollector
from alerting.budgets.definition import REQUEST_CAP_ALERT, BudgetsConfig, parse_budgets_section
from alerting.budgets.http import budget_routes
from alerting.budgets.origin import BUDGET_SET_KEY, ConfigOrigin, file_origin_ref
from alerting.budgets.service import BudgetService
from alerting.console.http import Console
from alerting.gateway.config import settings_from_config
from alerting.gateway.evidence import ReminderEvidence
from alerting.gateway.http import gateway_routes
from alerting.gateway.service import GatewayService
from alerting.gateway.sink import GatewaySink
from alerting.leader import LeaderLease
from alerting.links import dashboard_url, generator_url, runbook_url
from alerting.push.pusher import PushCollector, Pusher, PushLoop
from alerting.push.settings import PushSettings, push_settings
from alerting.push.sink import AlertmanagerSink
from alerting.runbook import runbook_routes
from alerting.scheduler import AlertScheduler, last_success_name
from alerting.scheduler_collector import SchedulerCollector
from alerting.spikes.messages import ALERTNAME as SPIKE_ALERT
from alerting.spikes.service import SpikeService
from alerting.spikes.settings import detection_settings
from exporter.collector import FollowerCollector
from exporter.config import ConfigError
from exporter.exposition import OrderedRegistry
from exporter.retention import Pruner
from exporter.services import Services
from llmcost.config import load_config

log = logging.getLogger(__name__)
ROLES = ("all", "ingest", "scheduler")
DELIVERING_ROLES = ("all", "scheduler")
"""The roles whose processes run the gateway's delivery workers and the scheduler (`--role ingest` does not)."""
OUTBOX_TICK_SECONDS = 15.0  # repeat reminders and outbox housekeeping
BUDGETS_JOB = "budgets"
DETECTION_JOB = "detection"
EVALUATED_BY: dict[str, tuple[str, ...]] = {
    BUDGETS_JOB: (*BUDGET_ALERTS, REQUEST_CAP_ALERT),
    DETECTION_JOB: (SPIKE_ALERT,),
}
"""The alerts each scheduled job raises and resolves: reminded of only after its pass has seen them still
firing (`alerting.gateway.evidence`), whichever process runs the job."""


class ConfigBudgets:
    """The config file's `budgets:` as the scheduler leader applies them: on election and on SIGHUP.

    Only the leader writes them, so two servers started with different files cannot undo each other,
    and it prunes only budgets this same file made (`Prune.OWN`); see docs/budgets.md.
    """

    def __init__(self, service: BudgetService, section: BudgetsConfig, origin_ref: str) -> None:
        self.service = service
        self.section = section
        self.origin_ref = origin_ref
        self.scheduler: AlertScheduler | None = None

    def apply(self) -> ApplyPlan:
        """Apply the section now (the caller leads)."""
        plan = self.service.apply_config(self.section.items, origin_ref=self.origin_ref, prune=Prune.OWN)
        for line in plan.lines():
            if not line.startswith("  "):  # what it keeps and leaves to other files changes nothing
                log.info("budgets from %s: %s", ConfigOrigin.parse(self.origin_ref).describe(), line)
        return plan

    def reload(self, section: BudgetsConfig, origin_ref: str) -> bool:
        """Take a re-read section and file origin; applied now if this process leads (True), else by the leader's own.

        `origin_ref` follows the file's `budget_set`, which may have changed with it.
        """
        self.section = section
        self.origin_ref = origin_ref
        self.service.config = section
        if self.scheduler is None or not self.scheduler.leading:
            return False
        self.apply()
        return True


@dataclass
class AlertingParts:
    """What `attach_alerting` built on one `Services`: the HTTP routes to serve and the running parts."""

    routes: list[BaseRoute]
    gateway: GatewayService
    budgets: BudgetService
    spikes: SpikeService
    console: Console
    config_budgets: ConfigBudgets | None = None
    """The config file's budgets, applied by this process when it leads (None: it never applies them)."""
    scheduler: AlertScheduler | None = None
    """The scheduled jobs (roles all and scheduler)."""
    pusher: Pusher | None = None
    """The Alertmanager pusher (with an `alertmanager:` section)."""


def attach_alerting(services: Services, role: str = "all", *, origin_ref: str | None = None) -> AlertingParts:
    """Build budgets, detection and the gateway for `role` and register their collectors.

    With a scheduler (roles all and scheduler), the process that takes the leader lease applies the
    config's budgets (`origin_ref`: the config file, by default `services.config.source`); no other
    role or command writes budget definitions from a config. Their closers join `services.closers`.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    problems: list[str] = []
    budgets_config = parse_budgets_section(services.config.raw.get("budgets"), problems)
    if problems:
        raise ConfigError(problems)
    delivers = role in DELIVERING_ROLES
    pushing = push_settings(services.config)
    evidence = ReminderEvidence({last_success_name(job): names for job, names in EVALUATED_BY.items()})
    gateway = GatewayService(
        services.store,
        settings_from_config(services.config),
        clock=services.clock,
        start_workers=delivers,
        reminder_evidence=evidence,
    )
    services.closers.append(gateway.close)
    # The source link of a budget alert depends on whether its budget is `key: "*"`: asked of `budgets`,
    # built next with this sink (the link is only asked for when an alert is raised, after both exist).
    sink, pusher = _sink(services, gateway, pushing, lambda name: budgets.is_wildcard(name))
    budgets = BudgetService(services.store, budgets_config, sink=sink, clock=services.clock)
    origin_ref = origin_ref or file_origin_ref(services.config)
    # Only a process with a scheduler (which may lead) ever applies config budgets.
    config_budgets = ConfigBudgets(budgets, budgets_config, origin_ref) if origin_ref and role != "ingest" else None
    for collector in (*gateway.collectors(), BudgetCollector(budgets)):
        services.registry.register(collector)
    spikes = SpikeService(services.store, detection_settings(services.config), sink, clock=services.clock)
    jobs = {
        BUDGETS_JOB: (budgets_config.evaluate_seconds, _job(budgets.evaluate)),
        DETECTION_JOB: (detection_settings(services.config).interval_seconds, _job(spikes.evaluate)),
        "outbox": (OUTBOX_TICK_SECONDS, _job(gateway.tick)),
    }
    retention = services.config.retention
    if retention.enabled:  # pruning, like every job, runs on the leader only
        pruner = Pruner(services.store, retention, clock=services.clock)
        jobs["retention"] = (retention.interval_seconds, _job(pruner.run))
    if pusher is not None:  # re-send every alert to every replica, once per interval across processes
        jobs["alertmanager"] = (pushing.resend_interval, _job(pusher.push))
    services.registry.register(SchedulerCollector(services.store, jobs=tuple(jobs)))
    scheduler = None
    if role in DELIVERING_ROLES:
        scheduler = AlertScheduler(
            services.store,
            jobs,
            clock=services.clock,
            leader=LeaderLease(services.store, clock=services.clock),
            on_elected=config_budgets.apply if config_budgets is not None else None,
        )
        if config_budgets is not None:
            config_budgets.scheduler = scheduler
        # A first election before serving: a lone server has applied its budgets by the time it answers.
        scheduler.heartbeat()
        scheduler.start()
        services.closers.append(scheduler.shutdown)
    if services.config.metrics.store_series == "leader":
        _store_series_on_leader_only(services, scheduler)
    console = Console(services, budgets, gateway)
    services.closers.append(console.close)
    routes = [
        *console.routes(),
        *budget_routes(budgets, services.config.auth, body_timeout=services.config.http.body_timeout_seconds),
        *gateway_routes(gateway, services.config.auth, body_timeout=services.config.http.body_timeout_seconds),
        *runbook_routes(),
    ]
    return AlertingParts(routes, gateway, budgets, spikes, console, config_budgets, scheduler, pusher)


def _store_series_on_leader_only(services: Services, scheduler: AlertScheduler | None) -> None:
    """`metrics.store_series: leader`: the series read from the store only while this process leads.

    The process's own view of its lease (no query per scrape): a leader that loses it stops exposing at
    its expiry, the moment another process may take over, so two processes never expose them at once.
    A `--role ingest` process never leads.
    """
    registry = services.registry
    if not isinstance(registry, OrderedRegistry):
        raise TypeError("metrics.store_series: leader needs the services' OrderedRegistry")
    lease = scheduler.leader if scheduler is not None else None
    registry.expose_only_while(
        lease.is_leader if lease is not None else lambda: False, FollowerCollector(services.store.ping)
    )


def _sink(
    services: Services, gateway: GatewayService, settings: PushSettings, wildcard: Callable[[str], bool]
) -> tuple[GatewaySink | AlertmanagerSink, Pusher | None]:
    """The gateway directly, or Alertmanager when `alertmanager:` is configured (see `alerting.push`).

    Every process that raises alerts pushes its changes at once (`PushLoop`); the re-sending of every
    alert each `resend_interval` is the scheduler job `alertmanager`, run by the leader.
    """
    config = services.config

    def source(name: str, labels: Mapping[str, str]) -> str:
        return generator_url(config, name, labels, wildcard=wildcard(labels.get("budget", "")))

    if not settings.enabled:
        # The same source link as through Alertmanager (its generatorURL): a budget's rows or the spikes
        # in the console.
        return (
            GatewaySink(
                gateway,
                lambda name: runbook_url(config, name),
                source,
                lambda name, labels: dashboard_url(config, name, labels),
            ),
            None,
        )
    pusher = Pusher(services.store, settings, clock=services.clock)
    loop = PushLoop(pusher)
    loop.start()
    services.closers.append(pusher.close)
    services.closers.append(loop.stop)  # closers run last first: the loop stops before the client closes
    services.registry.register(PushCollector(services.store, settings))
    sink = AlertmanagerSink(
        services.store,
        gateway,
        wake=loop.wake,
        generator_url=source,
        runbook_url=lambda name: runbook_url(config, name),
        dashboard_url=lambda name, labels: dashboard_url(config, name, labels),
        clock=services.clock,
    )
    return sink, pusher


def reload_budgets(parts: AlertingParts, path: str) -> tuple[list[str], str, dict[str, Any]]:
    """Re-read the config file and apply its `budgets:` section when this process leads.

    Returns the problems (nothing applied then), what became of the budgets (for the log line) and the
    file's sections as read (empty when refused). The other sections (listen address, store, tokens,
    notifications, …) take effect at the next start: `sections_awaiting_restart` names those changed.
    """
    try:
        config = load_config(path)
    except ConfigError as exc:
        return exc.problems, "", {}
    problems: list[str] = []
    budgets_config = parse_budgets_section(config.raw.get("budgets"), problems)
    if problems:
        return problems, "", {}
    if parts.config_budgets is None:
        log.info("config re-read; this process (role ingest) applies no budgets, the scheduler leader does")
        return [], "budgets left to the scheduler leader", config.raw
    # The budget_set names the budgets' owner: it takes effect with them, not at the next start.
    origin_ref = file_origin_ref(config)
    assert origin_ref is not None  # read from `path`
    if not parts.config_budgets.reload(budgets_config, origin_ref):
        log.info("config re-read; its budgets are applied by the scheduler leader, not this process")
        return [], "budgets left to the scheduler leader", config.raw
    return [], "budgets applied", config.raw


def sections_awaiting_restart(started: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The sections of a re-read config other than `budgets:` and `budget_set` that differ from those at start."""
    reloaded = ("budgets", BUDGET_SET_KEY)
    return sorted(
        name for name in set(started) | set(now) if name not in reloaded and started.get(name) != now.get(name)
    )


def _job(fn: Callable[[float], object]) -> Callable[[float], None]:
    """A scheduler job calling `fn(now)` and dropping its result."""

    def run(now: float) -> None:
        fn(now)

    return run
