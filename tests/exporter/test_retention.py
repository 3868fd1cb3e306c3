"""Retention on real SQLite and PostgreSQL: 120 days of events pruned with nothing a reader sees changing."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from alerting.leader import LeaderLease
from alerting.scheduler import AlertScheduler, Outcome
from exporter.config import ConfigError, parse_config
from exporter.exposition import render_registry
from exporter.http.app import build_app
from exporter.retention import Pruner
from exporter.services import Services
from llmcost.cli import main
from llmcost.services import open_services
from llmcost.wiring import AlertingParts, attach_alerting
from tests.support.clock import FakeClock
from tests.support.helpers import apply_config_budgets, make_config
from tests.support.months import BUDGETS, DAY, NOW, history, load_history

pytestmark = pytest.mark.heavy

RETENTION = {"events_days": 30, "rollups_days": 60}
UNTIL = "2026-11-11T12:00:00Z"  # NOW, so the report does not depend on the wall clock


def open_app(db_url: str, budgets: list[dict[str, Any]] = BUDGETS, **kw: Any) -> tuple[Services, AlertingParts]:
    config = make_config(db_url, budgets=budgets, retention=RETENTION)
    services = open_services(config, clock=FakeClock(NOW), **kw)
    parts = attach_alerting(services, "ingest")
    apply_config_budgets(parts.budgets)
    return services, parts


def report_outputs(db_url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    out = {}
    for fmt in ("table", "json", "csv", "markdown"):
        for by in ("provider,model,project", "user,service"):
            capsys.readouterr()
            assert main(["report", "--db", db_url, "--until", UNTIL, "--by", by, "--format", fmt]) == 0
            out[f"{fmt} {by}"] = capsys.readouterr().out
    return out


def snapshot(
    services: Services, parts: AlertingParts, db_url: str, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    budgets = parts.budgets
    return {
        "metrics": render_registry(services.registry).decode(),
        "spent": {(i.budget.name, i.key): i.spent for i in budgets.instances(NOW)},
        "reports": report_outputs(db_url, capsys),
    }


def scalar(services: Services, sql: str, **params: Any) -> Any:
    with services.store.reading() as conn:
        return conn.execute(text(sql), params).scalar_one()


def sqlite_size(db_url: str) -> int:
    path = Path(str(make_url(db_url).database))
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


@pytest.fixture
def months(db_url: str) -> str:
    load_history(db_url, history(120))
    return db_url


def test_pruning_120_days_changes_no_metric_budget_or_report(months: str, capsys: pytest.CaptureFixture[str]) -> None:
    db_url = months
    services, parts = open_app(db_url)
    try:
        parts.budgets.evaluate(NOW)
        before = snapshot(services, parts, db_url, capsys)
        assert before["spent"][("forever", "")] > 0
        events_before = services.store.event_count()
        size_before = sqlite_size(db_url) if db_url.startswith("sqlite") else 0
        pruner = Pruner(services.store, services.config.retention, clock=services.clock)

        dry = pruner.run(dry_run=True)
        assert services.store.event_count() == events_before  # a dry run changes nothing
        assert dry.events > 0 and dry.rollup_rows > 0
        assert "would delete" in "\n".join(dry.lines())

        done = pruner.run()
        assert (done.events, done.rollup_rows, done.hours) == (dry.events, dry.rollup_rows, dry.hours)
        assert services.store.event_count() == events_before - done.events
        assert scalar(services, "SELECT COUNT(*) FROM usage_events WHERE ts < :t", t=NOW - 30 * DAY) == 0
        assert scalar(services, "SELECT COUNT(*) FROM usage_rollup WHERE bucket < :t", t=NOW - 60 * DAY) == 0
        assert scalar(services, "SELECT COUNT(*) FROM usage_rollup_hourly") > 0

        after = snapshot(services, parts, db_url, capsys)
        assert after["metrics"] == before["metrics"]
        assert after["spent"] == before["spent"]
        assert after["reports"] == before["reports"]
        # Projections and detection read recent 5-minute buckets: evaluating again gives the same gauges.
        parts.budgets.evaluate(NOW)
        assert render_registry(services.registry).decode() == before["metrics"]

        if db_url.startswith("sqlite"):
            assert sqlite_size(db_url) < size_before
        again = pruner.run()
        assert (again.events, again.rollup_rows) == (0, 0)
    finally:
        services.close()

    # Budgets declared after pruning are rebuilt from hourly + 5-minute rollups: the same spend.
    copies = [{**b, "name": f"{b['name']}-again"} for b in BUDGETS]
    later, later_parts = open_app(db_url, budgets=[*BUDGETS, *copies])
    try:
        spent = {(i.budget.name, i.key): i.spent for i in later_parts.budgets.instances(NOW)}
        for (name, key), value in before["spent"].items():
            assert spent[(f"{name}-again", key)] == pytest.approx(value, abs=1e-9), name
    finally:
        later.close()


def test_an_event_older_than_the_raw_retention_is_refused_with_the_reason(months: str, tmp_path: Path) -> None:
    services, _parts = open_app(months)
    try:
        Pruner(services.store, services.config.retention, clock=services.clock).run()
        old = history(120)[0]  # pruned: storing it again would count it twice
        recent = history(120)[-1]  # still stored: a duplicate
        outcome = services.pipeline.ingest(enumerate([old, recent]))
        assert (outcome.accepted, outcome.duplicates) == (0, 1)
        assert [r.index for r in outcome.rejected] == [0]
        assert "raw-event retention (30 days" in outcome.rejected[0].error

        lines = [b'{"request_id":"line-old","timestamp":%d,"provider":"openai","model":"gpt-4o"}' % (NOW - 31 * DAY)]
        outcome = services.pipeline.ingest_lines(0, lines)
        assert outcome.accepted == 0 and "retention" in outcome.rejected[0].error

        with TestClient(build_app(services)) as client:
            body = [{"request_id": "http-old", "timestamp": NOW - 40 * DAY, "provider": "openai", "model": "gpt-4o"}]
            body.append({"request_id": "http-new", "timestamp": NOW - 60, "provider": "openai", "model": "gpt-4o"})
            answer = client.post("/v1/usage", json=body).json()
        assert answer["accepted"] == 1
        assert answer["rejected"][0]["index"] == 0 and "retention" in answer["rejected"][0]["error"]
    finally:
        services.close()


def test_a_repeat_accepted_at_the_edge_of_the_retention_is_still_counted_once(db_url: str) -> None:
    """Ingest checks an event's age, then commits it a moment later; a pruning run in between used to
    delete the first copy of a call 30 days old to the second, so its repeat, accepted a second earlier
    as just inside the retention, was stored as a new call: counted twice, in /metrics and budgets."""
    clock = FakeClock(NOW)
    services = open_services(make_config(db_url, retention={"events_days": 30}), clock=clock, start_writer=False)
    call = {"request_id": "edge", "timestamp": NOW - 30 * DAY + 1, "provider": "openai", "model": "gpt-4o"}
    call |= {"input_tokens": 100, "output_tokens": 10, "cost_usd": 0.01}
    try:
        assert services.pipeline.ingest(enumerate([call])).accepted == 1
        repeat, rejected, _ = services.pipeline.prepare(enumerate([call]))  # a client retry: inside the retention
        assert len(repeat) == 1 and not rejected
        clock.advance(2)  # its commit waits for a busy database; the scheduler's pruning runs meanwhile
        Pruner(services.store, services.config.retention, clock=clock).run()
        written = services.store.write_events(repeat)
        assert (written.accepted, written.duplicates) == (0, 1)
        metrics = render_registry(services.registry).decode()
        assert 'provider="openai",service="",status="success"} 1.0' in metrics  # llm_requests_total: one call
        clock.advance(3600)  # an hour past the edge: the event goes, and a repeat of it is refused
        assert Pruner(services.store, services.config.retention, clock=clock).run().events == 1
        assert services.pipeline.ingest(enumerate([call])).rejected
    finally:
        services.close()


def test_ingest_during_pruning_loses_nothing(months: str) -> None:
    services, _parts = open_app(months, start_writer=False)
    try:
        requests_before = sum(r.get("requests") for r in services.store.series_totals(()))
        kept_before = scalar(services, "SELECT COUNT(*) FROM usage_events WHERE ts >= :t", t=NOW - 30 * DAY)
        pruner = Pruner(  # a short pause between batches (not a wait): lets the ingest below interleave
            services.store, services.config.retention, clock=services.clock, pause=lambda: time.sleep(0.001)
        )
        pruner.config = type(pruner.config)(events_days=30, rollups_days=60, batch_events=100)
        done = threading.Event()
        errors: list[BaseException] = []

        def prune() -> None:
            try:
                pruner.run()
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=prune)
        thread.start()
        accepted = 0
        batch = 0
        while not done.is_set() or batch < 20:
            events = [
                {"request_id": f"live-{batch}-{k}", "timestamp": NOW - 30 - k, "provider": "openai", "model": "gpt-4o"}
                for k in range(25)
            ]
            outcome = services.pipeline.ingest(enumerate(events))
            assert not outcome.rejected
            accepted += outcome.accepted
            batch += 1
        thread.join(timeout=120)
        assert not errors, errors
        assert accepted == 25 * batch
        assert sum(r.get("requests") for r in services.store.series_totals(())) == requests_before + accepted
        assert services.store.event_count() == kept_before + accepted
    finally:
        services.close()


def test_pruning_runs_on_the_scheduler_leader_only(months: str) -> None:
    services, _parts = open_app(months, start_writer=False)
    try:
        assert 'task="retention"' in render_registry(services.registry).decode()
        pruner = Pruner(services.store, services.config.retention, clock=services.clock)
        jobs = {"retention": (3600.0, lambda now: pruner.run(now))}
        leases = [LeaderLease(services.store, holder=name, clock=services.clock) for name in ("a", "b")]
        leader, follower = (
            AlertScheduler(services.store, jobs, clock=services.clock, leader=lease) for lease in leases
        )
        assert leader.heartbeat(NOW)
        before = services.store.event_count()
        assert follower.run_once("retention", NOW) is Outcome.NOT_LEADER
        assert services.store.event_count() == before
        assert leader.run_once("retention", NOW) is Outcome.SUCCESS
        assert services.store.event_count() < before
    finally:
        services.close()


def test_prune_cli_dry_run_says_what_would_go_and_changes_nothing(
    months: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "llmcost.yaml"
    config.write_text("retention:\n  events_days: 30\n  rollups_days: 60\n")
    services = open_services(make_config(months), start_writer=False)
    count = services.store.event_count()
    services.close()
    os.environ.pop("LLMCOST_CONFIG", None)
    capsys.readouterr()
    assert main(["prune", "--db", months, "--config", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would delete" in out and "would fold" in out
    services = open_services(make_config(months), start_writer=False)
    assert services.store.event_count() == count
    services.close()


def test_with_rollup_retention_only_a_late_event_in_a_folded_hour_counts_once(
    months: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config(months, retention={"rollups_days": 60})
    services = open_services(config, clock=FakeClock(NOW), start_writer=False)
    try:
        pruner = Pruner(services.store, config.retention, clock=services.clock)
        assert pruner.run().hours > 0
        before = json.loads(report_outputs(months, capsys)["json provider,model,project"])
        late = {"request_id": "late", "timestamp": NOW - 100 * DAY + 7, "provider": "openai", "model": "gpt-4o"}
        late["cost_usd"] = 1.25
        assert services.pipeline.ingest(enumerate([late])).accepted == 1
        with_late = json.loads(report_outputs(months, capsys)["json provider,model,project"])
        assert with_late["total_cost_usd"] == pytest.approx(before["total_cost_usd"] + 1.25)
        assert pruner.run().rollup_rows == 1  # the late bucket is folded into its hour
        assert json.loads(report_outputs(months, capsys)["json provider,model,project"]) == with_late
    finally:
        services.close()


def test_retention_config_problems_are_listed_together() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"retention": {"events_days": 0, "rollups_days": 10, "keep": 1}})
    problems = "\n".join(caught.value.problems)
    assert "retention.events_days: must be at least 1" in problems
    assert "retention.rollups_days: must be at least 35" in problems
    assert "retention.keep: unknown key" in problems
    with pytest.raises(ConfigError, match="must not exceed"):
        parse_config({"retention": {"events_days": 90, "rollups_days": 60}})
    assert parse_config({"retention": {"events_days": 90, "rollups_days": 400}}).retention.enabled


def test_an_older_sqlite_file_is_shrunk_once_by_prune_vacuum(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load_history(sqlite_url, history(120))
    path = Path(str(make_url(sqlite_url).database))
    raw = sqlite3.connect(path)  # a file made before incremental vacuum: auto_vacuum off
    raw.execute("PRAGMA auto_vacuum=NONE")
    raw.execute("VACUUM")
    raw.close()
    config = tmp_path / "llmcost.yaml"
    config.write_text("retention:\n  events_days: 30\n  rollups_days: 60\n")
    capsys.readouterr()
    assert main(["prune", "--db", sqlite_url, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "deleted" in out and "llmcost prune --vacuum" in out
    size = sqlite_size(sqlite_url)
    assert main(["prune", "--db", sqlite_url, "--config", str(config), "--vacuum"]) == 0
    assert sqlite_size(sqlite_url) < size
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from now on
    raw.close()


def test_a_spike_baseline_longer_than_the_5_minute_rollups_is_a_config_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Spike detection reads its baseline days from 5-minute buckets only: pruning must not fold them away."""
    config = tmp_path / "llmcost.yaml"
    config.write_text("retention:\n  rollups_days: 40\ndetection:\n  baseline_days: 60\n")
    capsys.readouterr()
    assert main(["check-config", str(config)]) == 1
    out = capsys.readouterr()
    assert "retention.rollups_days (40) must cover detection.baseline_days (60)" in out.out + out.err
    config.write_text("retention:\n  rollups_days: 40\ndetection:\n  baseline_days: 30\n")
    assert main(["check-config", str(config)]) == 0
