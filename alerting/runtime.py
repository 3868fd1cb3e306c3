"""Attaches the alerting side (budgets, gateway, scheduler) to a running `Services`, by role.

Roles (`llmcost serve --role`): `all` runs everything; `ingest` serves every HTTP endpoint and keeps
budget spend current (the spend is maintained inside each ingest transaction), but delivers no
notifications and runs no scheduled job; `scheduler` adds the delivery workers and the scheduled jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

import alerting.sections  # noqa: F401  (config validators)
from alerting.budgets.apply import ApplyPlan, Prune
from alerting.budgets.collector import BudgetCollector
from alerting.budgets.definition import BudgetsConfig, parse_budgets_section
from alerting.budgets.http import budget_routes
from alerting.budgets.service import BudgetService
from alerting.console.http import Console
from alerting.gateway.http import gateway_routes
from alerting.gateway.lifecycle import AlertInput
from alerting.gateway.service import GatewayService
from alerting.leader import LeaderLease
from alerting.links import generator_url, runbook_url
from alerting.push.pusher import PushCollector, Pusher, PushLoop
from alerting.push.settings import PushSettings, push_settings
from alerting.push.sink import AlertmanagerSink
from alerting.runbook import runbook_routes
from alerting.scheduler import AlertScheduler
from alerting.scheduler_collector import SchedulerCollector
from alerting.spikes.service import SpikeService
from alerting.spikes.settings import detection_settings
from exporter.config import ConfigError, load_config
from exporter.retention import Pruner
from exporter.services import Services

log = logging.getLogger(__name__)
ROLES = ("all", "ingest", "scheduler")
OUTBOX_TICK_SECONDS = 15.0  # repeat reminders and outbox housekeeping


class GatewaySink:
    """The budgets' and detectors' view of the gateway (the direct path, without `alertmanager:`)."""

    def __init__(self, gateway: GatewayService, runbook: Callable[[str], str] | None = None) -> None:
        self._gateway = gateway
        self._runbook = runbook

    def fire(self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str], severity: str) -> Any:
        """Raise (or keep raising) an alert; its `runbook_url` is the absolute link to its runbook section."""
        if self._runbook is not None:
            annotations = {**annotations, "runbook_url": self._runbook(alertname)}
        return self._gateway.fire(alertname, labels, severity=severity, annotations=annotations)  # type: ignore[arg-type]

    def fire_many(self, items: Sequence[tuple[str, Mapping[str, str], Mapping[str, str], str]]) -> Any:
        """Fire several alerts `(alertname, labels, annotations, severity)` in one transaction (see grouping)."""
        return self._gateway.fire_many(
            [
                AlertInput(
                    alertname=name,
                    labels=dict(labels),
                    severity=severity,  # type: ignore[arg-type]
                    annotations={**annotations, "runbook_url": self._runbook(name)}
                    if self._runbook
                    else dict(annotations),
                )
                for name, labels, annotations, severity in items
            ]
        )

    def resolve(self, alertname: str, labels: Mapping[str, str]) -> Any:
        """Resolve an alert if it is active."""
        return self._gateway.resolve(alertname, labels)

    def resolve_many(self, items: Sequence[tuple[str, Mapping[str, str]]]) -> Any:
        """Resolve several alerts `(alertname, labels)` in one transaction."""
        return self._gateway.resolve_many(items)

    def resolve_with_reason(self, alertname: str, labels: Mapping[str, str], *, by: str, comment: str) -> Any:
        """Resolve an alert for a person's action (a reset, a deletion), recording who and why."""
        return self._gateway.resolve(alertname, labels, by=by, via="budgets", comment=comment)

    def active_labels(self, alertnames: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
        """(alertname, labels) of unresolved alerts with these names."""
        names = set(alertnames)
        return [
            (a.alertname, dict(a.labels))
            for state in ("firing", "acknowledged")
            for a in self._gateway.alerts(state, limit=100_000)
            if a.alertname in names
        ]


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
            if not line.startswith("  keep"):
                log.info("budgets from %s: %s", self.origin_ref, line)
        return plan

    def reload(self, section: BudgetsConfig) -> bool:
        """Take a re-read section; applied now if this process leads (True), else by the leader's own."""
        self.section = section
        self.service.config = section
        if self.scheduler is None or not self.scheduler.leading:
            return False
        self.apply()
        return True


def config_origin(services: Services) -> str | None:
    """The origin reference of this process's config budgets: the config file's absolute path."""
    source = services.config.source
    return str(Path(source).resolve()) if source is not None else None


def attach_alerting(services: Services, role: str = "all", *, origin_ref: str | None = None) -> list[BaseRoute]:
    """Build budgets and the gateway for `role`, register their collectors; returns their HTTP routes.

    With a scheduler (roles all and scheduler), the process that takes the leader lease applies the
    config's budgets (`origin_ref`: the config file, by default `services.config.source`); no other
    role or command writes budget definitions from a config.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    problems: list[str] = []
    budgets_config = parse_budgets_section(services.config.raw.get("budgets"), problems)
    if problems:
        raise ConfigError(problems)
    delivers = role in ("all", "scheduler")
    pushing = push_settings(services.config)
    gateway = GatewayService(services.store, services.config, clock=services.clock, start_workers=delivers)
    services.closers.append(gateway.close)
    sink = _sink(services, gateway, pushing)
    budgets = BudgetService(services.store, budgets_config, sink=sink, clock=services.clock)
    origin_ref = origin_ref or config_origin(services)
    # Only a process with a scheduler (which may lead) ever applies config budgets.
    config_budgets = ConfigBudgets(budgets, budgets_config, origin_ref) if origin_ref and role != "ingest" else None
    services.extras["config_budgets"] = config_budgets
    for collector in (*gateway.collectors(), BudgetCollector(budgets)):
        services.registry.register(collector)
    services.extras["gateway"] = gateway
    services.extras["budgets"] = budgets
    jobs = {
        "budgets": (budgets_config.evaluate_seconds, _job(budgets.evaluate)),
        "detection": (detection_settings(services.config).interval_seconds, _job(_spikes(services, sink).evaluate)),
        "outbox": (OUTBOX_TICK_SECONDS, _job(gateway.tick)),
    }
    retention = services.config.retention
    if retention.enabled:  # pruning, like every job, runs on the leader only
        pruner = Pruner(services.store, retention, clock=services.clock)
        jobs["retention"] = (retention.interval_seconds, _job(pruner.run))
    if pushing.enabled:  # re-send every alert to every replica, once per interval across processes
        jobs["alertmanager"] = (pushing.resend_interval, _job(services.extras["alertmanager_pusher"].push))
    services.registry.register(SchedulerCollector(services.store, jobs=tuple(jobs)))
    if role in ("all", "scheduler"):
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
        services.extras["scheduler"] = scheduler
    console = Console(services, budgets, gateway)
    services.closers.append(console.close)
    services.extras["console"] = console
    return [
        *console.routes(),
        *budget_routes(budgets, services.config.auth),
        *gateway_routes(gateway),
        *runbook_routes(),
    ]


def _sink(services: Services, gateway: GatewayService, settings: PushSettings) -> GatewaySink | AlertmanagerSink:
    """The gateway directly, or Alertmanager when `alertmanager:` is configured (see `alerting.push`).

    Every process that raises alerts pushes its changes at once (`PushLoop`); the re-sending of every
    alert each `resend_interval` is the scheduler job `alertmanager`, run by the leader.
    """
    config = services.config
    if not settings.enabled:
        return GatewaySink(gateway, lambda name: runbook_url(config, name))
    pusher = Pusher(services.store, settings, clock=services.clock)
    loop = PushLoop(pusher)
    loop.start()
    services.closers.append(pusher.close)
    services.closers.append(loop.stop)  # closers run last first: the loop stops before the client closes
    services.registry.register(PushCollector(services.store, settings))
    services.extras["alertmanager_pusher"] = pusher
    return AlertmanagerSink(
        services.store,
        gateway,
        wake=loop.wake,
        generator_url=lambda name, labels: generator_url(config, name, labels),
        runbook_url=lambda name: runbook_url(config, name),
        clock=services.clock,
    )


def reload_budgets(services: Services, path: str) -> list[str]:
    """Re-read the config file and apply its `budgets:` section; returns the problems (nothing applied then).

    Other sections (listen address, store, tokens, notifications) take effect at the next start.
    """
    try:
        config = load_config(path)
    except ConfigError as exc:
        return exc.problems
    problems: list[str] = []
    budgets_config = parse_budgets_section(config.raw.get("budgets"), problems)
    if problems:
        return problems
    config_budgets: ConfigBudgets | None = services.extras.get("config_budgets")
    if config_budgets is None:
        log.info("config re-read; this process (role ingest) applies no budgets, the scheduler leader does")
        return []
    if not config_budgets.reload(budgets_config):
        log.info("config re-read; its budgets are applied by the scheduler leader, not this process")
    return []


def _job(fn: Callable[[float], object]) -> Callable[[float], None]:
    """A scheduler job calling `fn(now)` and dropping its result."""

    def run(now: float) -> None:
        fn(now)

    return run


def _spikes(services: Services, sink: GatewaySink | AlertmanagerSink) -> SpikeService:
    spikes = SpikeService(services.store, detection_settings(services.config), sink, clock=services.clock)
    services.extras["spikes"] = spikes
    return spikes
