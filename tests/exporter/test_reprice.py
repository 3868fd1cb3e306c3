"""Repricing and price provenance on real SQLite and PostgreSQL, and Anthropic's 1-hour cache writes."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from alerting.budgets.spend import PeriodStarts, rebuild_current_period
from exporter.exposition import render_registry
from exporter.pricing import PriceBook
from exporter.services import Services
from llmcost.cli import main
from llmcost.services import open_services
from llmcost.wiring import AlertingParts, attach_alerting
from tests.support.clock import FakeClock
from tests.support.helpers import apply_config_budgets, make_config, total
from tests.support.months import BUDGETS, DAY, NOW, history, load_history

SINCE = "2026-11-01"
OVERRIDES = {
    "prices": [
        # A self-hosted model finally given a price.
        {"provider": "self-hosted", "model": "llama-internal", "input_per_mtok": 0.20, "output_per_mtok": 0.40},
        # A negotiated price for one Anthropic model from November on.
        {
            "provider": "anthropic",
            "model": "claude-haiku-4-5",
            "valid_from": "2026-11-01",
            "input_per_mtok": "0.50",
            "output_per_mtok": "2.50",
        },
    ]
}


def open_with_parts(
    db_url: str, tmp_path: Path | None = None, budgets: list[dict[str, Any]] = BUDGETS
) -> tuple[Services, AlertingParts]:
    raw: dict[str, Any] = {"budgets": budgets}
    if tmp_path is not None:
        raw["pricing"] = {"overrides_file": str(write_overrides(tmp_path))}
    services = open_services(make_config(db_url, **raw), clock=FakeClock(NOW), start_writer=False)
    return services, attach_alerting(services, "ingest")


def open_store(db_url: str, tmp_path: Path | None = None, budgets: list[dict[str, Any]] = BUDGETS) -> Services:
    return open_with_parts(db_url, tmp_path, budgets)[0]


def write_overrides(tmp_path: Path) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(OVERRIDES))
    return path


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "llmcost.yaml"
    path.write_text(yaml.safe_dump({"budgets": BUDGETS, "pricing": {"overrides_file": str(write_overrides(tmp_path))}}))
    return path


def rows(services: Services, sql: str, **params: Any) -> list[Any]:
    with services.store.reading() as conn:
        return list(conn.execute(text(sql), params))


def spent(parts: AlertingParts) -> dict[tuple[str, str], float]:
    return {(i.budget.name, i.key): i.spent for i in parts.budgets.instances(NOW)}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.fixture
def store(db_url: str) -> str:
    load_history(db_url, history(20))
    services, parts = open_with_parts(db_url)
    try:
        apply_config_budgets(parts.budgets)  # their spend is rebuilt from the rollups
    finally:
        services.close()
    return db_url


def test_events_record_where_their_cost_came_from(store: str) -> None:
    services = open_store(store)
    try:
        found = {
            r[0]: r[1:]
            for r in rows(
                services,
                "SELECT request_id, cost_source, price_source, price_from FROM usage_events "
                "WHERE request_id IN ('search-0', 'batch-0', 'paid-0')",
            )
        }
    finally:
        services.close()
    source, price_source, _since = found["search-0"]
    assert source == "priced" and price_source.startswith("genai-prices ")
    assert found["batch-0"][0] == "unpriced" and not found["batch-0"][1]
    assert found["paid-0"][0] == "supplied" and not found["paid-0"][1]


def test_reprice_corrects_events_rollups_and_budgets_and_only_adds_to_counters(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path))
    services = open_store(store)
    metrics_before = render_registry(services.registry).decode()
    report_before = json.loads(
        run_cli(capsys, "report", "--db", store, "--format", "json", "--until", "2026-11-11T12:00:00Z")
    )
    services.close()

    dry = json.loads(
        run_cli(capsys, "reprice", "--db", store, "--config", config, "--since", SINCE, "--dry-run", "--format", "json")
    )
    by_model = {m["model"]: m for m in dry["models"]}
    assert by_model["llama-internal"]["newly_priced"] == by_model["llama-internal"]["changed"] > 0
    assert by_model["llama-internal"]["difference_usd"] > 0
    assert by_model["claude-haiku-4-5"]["difference_usd"] < 0  # the negotiated price is lower
    assert by_model["claude-sonnet-4-5"]["changed"] == 0
    assert "gpt-4o" not in by_model  # a supplied cost is never repriced
    services = open_store(store)
    assert render_registry(services.registry).decode() == metrics_before  # a dry run changes nothing
    services.close()

    table = run_cli(capsys, "reprice", "--db", store, "--config", config, "--since", SINCE)
    assert "llama-internal" in table and "changed" in table
    services = open_store(store, tmp_path)
    try:
        since = NOW - 10.5 * DAY
        repriced = rows(
            services,
            "SELECT e.cost_source, e.price_source, e.price_from, e.ts FROM usage_events e "
            "JOIN usage_series s ON s.id = e.series_id WHERE s.model = 'llama-internal'",
        )
        for cost_source, price_source, price_from, ts in repriced:
            if ts >= since + 0.5 * DAY:
                assert (cost_source, price_source, price_from) == (
                    "priced",
                    f"{tmp_path / 'prices.yaml'} prices[0]",
                    "",
                )
            elif ts < since - DAY:
                assert cost_source == "unpriced"
        haiku = rows(
            services,
            "SELECT DISTINCT e.price_source, e.price_from FROM usage_events e "
            "JOIN usage_series s ON s.id = e.series_id WHERE s.model = 'claude-haiku-4-5' AND e.ts >= :t",
            t=NOW - 10 * DAY,
        )
        assert haiku == [(f"{tmp_path / 'prices.yaml'} prices[1]", "2026-11-01")]

        # Rollups hold the corrected cost: they add up to the events' cost.
        (events_cost,) = rows(services, "SELECT SUM(cost_nanousd) FROM usage_events")[0]
        (rollup_cost,) = rows(services, "SELECT SUM(cost_nanousd) FROM usage_rollup")[0]
        assert int(events_cost) == int(rollup_cost)
        (unpriced,) = rows(services, "SELECT SUM(unpriced_requests) FROM usage_rollup")[0]
        assert unpriced == len([r for r in repriced if r[0] == "unpriced"])

        # Budget spend was corrected: equal to what a rebuild from the rollups gives.
        copies = [{**b, "name": f"{b['name']}-rebuilt"} for b in BUDGETS]
        rebuilt, rebuilt_parts = open_with_parts(store, budgets=[*BUDGETS, *copies])
        try:
            apply_config_budgets(rebuilt_parts.budgets)  # the copies are created: rebuilt from the rollups
            now_spent = spent(rebuilt_parts)
        finally:
            rebuilt.close()
        assert {name for name, _key in now_spent} >= {b["name"] for b in [*BUDGETS, *copies]}
        for (name, key), value in now_spent.items():
            if not name.endswith("-rebuilt"):
                assert value == pytest.approx(now_spent[(f"{name}-rebuilt", key)], abs=1e-9), name

        # Counters only go up: llm_cost_usd_total as first recorded, corrections in their own counter.
        metrics = render_registry(services.registry).decode()
        assert total(metrics, "llm_cost_usd_total") == pytest.approx(total(metrics_before, "llm_cost_usd_total"))
        assert total(metrics, "llm_unpriced_requests_total") == total(metrics_before, "llm_unpriced_requests_total")
        up = total(metrics, "llm_cost_adjustment_usd_total", direction="up")
        down = total(metrics, "llm_cost_adjustment_usd_total", direction="down")
        assert up == pytest.approx(by_model["llama-internal"]["difference_usd"])
        assert down == pytest.approx(-by_model["claude-haiku-4-5"]["difference_usd"])
        assert total(metrics, "llm_cost_adjustment_usd_total", model="gpt-4o", direction="up") == 0
        assert total(metrics, "llm_cost_usd_total") + up - down == pytest.approx(int(rollup_cost) / 1e9)
    finally:
        services.close()

    report = json.loads(run_cli(capsys, "report", "--db", store, "--format", "json", "--until", "2026-11-11T12:00:00Z"))
    assert report["total_cost_usd"] == pytest.approx(report_before["total_cost_usd"] + dry["difference_usd"])

    again = json.loads(
        run_cli(capsys, "reprice", "--db", store, "--config", config, "--since", SINCE, "--format", "json")
    )
    assert all(m["changed"] == 0 for m in again["models"])  # nothing left to correct


def test_reprice_of_one_model_leaves_the_others(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path))
    out = json.loads(
        run_cli(
            capsys,
            "reprice",
            "--db",
            store,
            "--config",
            config,
            "--since",
            SINCE,
            "--model",
            "llama-internal",
            "--format",
            "json",
        )
    )
    assert [m["model"] for m in out["models"]] == ["llama-internal"]
    services = open_store(store)
    try:
        metrics = render_registry(services.registry).decode()
        assert total(metrics, "llm_cost_adjustment_usd_total", model="claude-haiku-4-5") == 0
    finally:
        services.close()


SONNET = {"input": Decimal(3), "write": Decimal("3.75"), "output": Decimal(15)}


def test_anthropic_one_hour_cache_writes_are_priced_at_their_own_rate(db_url: str) -> None:
    services = open_services(make_config(db_url), start_writer=False)
    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 1000,
        "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 600},
        "cache_read_input_tokens": 0,
        "output_tokens": 5,
    }
    events = [
        {"request_id": "usage-1h", "provider": "anthropic", "model": "claude-sonnet-4-5", "usage": usage},
        {
            "request_id": "canonical-1h",
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "input_tokens": 10,
            "cache_write_tokens": 1000,
            "cache_write_1h_tokens": 600,
            "output_tokens": 5,
        },
        {
            "request_id": "too-many",
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "cache_write_tokens": 1,
            "cache_write_1h_tokens": 2,
        },
    ]
    try:
        outcome = services.pipeline.ingest(enumerate(events))
        assert outcome.accepted == 2
        assert [r.index for r in outcome.rejected] == [2] and "cache_write_1h_tokens" in outcome.rejected[0].error
        line = json.dumps({**events[1], "request_id": "line-1h", "timestamp": NOW - 60}).encode()
        assert services.pipeline.ingest_lines(0, [line]).accepted == 1
        found = rows(
            services, "SELECT request_id, cache_write_tokens, cache_write_1h_tokens, cost_nanousd FROM usage_events"
        )
    finally:
        services.close()
    expected = (10 * SONNET["input"] + 400 * SONNET["write"] + 600 * 2 * SONNET["input"] + 5 * SONNET["output"]) * 1000
    assert {r[0]: tuple(r[1:]) for r in found} == {
        name: (1000, 600, int(expected)) for name in ("usage-1h", "canonical-1h", "line-1h")
    }
    # Without the split, every write is priced as a 5-minute one (as before).
    book = PriceBook()
    assert book.cost_nanousd("anthropic", "claude-sonnet-4-5", NOW, 10, 0, 1000, 5) == int(
        (10 * SONNET["input"] + 1000 * SONNET["write"] + 5 * SONNET["output"]) * 1000
    )


@pytest.mark.parametrize("dry_run", [True, False])
def test_reprice_says_when_part_of_its_range_is_past_the_raw_event_retention(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], dry_run: bool
) -> None:
    """Pruned events cannot be repriced: a range reaching before `events_days` says so, not silently less."""
    config = tmp_path / "llmcost.yaml"
    config.write_text(yaml.safe_dump({"retention": {"events_days": 30, "rollups_days": 60}}))
    argv = ["reprice", "--db", store, "--config", str(config), *(["--dry-run"] * dry_run)]
    capsys.readouterr()
    assert main([*argv, "--since", "2000-01-01"]) == 0
    err = capsys.readouterr().err
    assert "retention.events_days (30 days)" in err and "stay as recorded" in err, err
    assert main([*argv, "--since", "1d"]) == 0  # inside the retention: no note
    assert "retention" not in capsys.readouterr().err


def test_reprice_after_a_budget_reset_leaves_the_reset_standing(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A price cut for calls a reset had counted corrects the reset's record, not the spend counted since.

    It used to be added to the spend: a `total` budget reset to $0 went negative (a hard budget then
    allowed more than its limit), and a rebuild from the rollups gave another figure.
    """
    config = str(write_config(tmp_path))
    services, parts = open_with_parts(store)
    clock = services.clock
    assert isinstance(clock, FakeClock)
    try:
        apply_config_budgets(parts.budgets)  # their spend is rebuilt from the history
        clock.set(NOW + 60)  # the history was ingested at NOW
        parts.budgets.reset("forever", by="ops", reason="new contract")
        parts.budgets.reset("per-project", by="ops", reason="new contract", key="chat")
        clock.set(NOW + 120)
        late = {  # a late call stamped before the reset, ingested after it: counted since the reset
            "request_id": "late-haiku",
            "timestamp": NOW - 3600,
            "provider": "anthropic",
            "model": "claude-haiku-4-5",
            "input_tokens": 100_000,
            "output_tokens": 10_000,
            "project": "chat",
            "service": "web",
        }
        assert services.pipeline.ingest(enumerate([late])).accepted == 1
        before = spent(parts)
        records_before = {r["key"]: r["cost_usd"] for r in parts.budgets.resets("per-project")}
    finally:
        services.close()

    run_cli(capsys, "reprice", "--db", store, "--config", config, "--since", SINCE)

    services, parts = open_with_parts(store)
    try:
        after = spent(parts)
        # The late call is repriced at the negotiated haiku price ($0.50 / $2.50 per million).
        late_cost = (100_000 * 0.50 + 10_000 * 2.50) / 1e6
        assert after[("forever", "")] == pytest.approx(late_cost, abs=1e-9)
        assert after[("per-project", "chat")] == pytest.approx(late_cost, abs=1e-9)
        assert before[("forever", "")] > late_cost
        # The calls the reset had counted are corrected in its record (the audit shows what they cost).
        records = {r["key"]: r["cost_usd"] for r in parts.budgets.resets("per-project")}
        assert records["chat"] < records_before["chat"]
        # A rebuild of the period from the rollups (less what each reset counted) gives the same spend.
        definitions = parts.budgets.registry.definitions()
        with services.store.transaction() as conn:
            for budget in definitions:
                rebuild_current_period(conn, budget, NOW + 120, PeriodStarts())
        assert spent(parts) == pytest.approx(after, abs=1e-9)
    finally:
        services.close()


def test_reprice_writes_budget_spend_only_for_the_periods_the_budgets_counted(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A correction goes to a spend row the budget keeps, never a new row for a period it never counted.

    The budgets were created at NOW: each counts its period holding NOW, from the rollups. A reprice
    from November used to write a `budget_spend` row for every earlier day (and week) holding a
    repriced call, holding the difference alone (often negative): never read, junk that accumulates.
    """
    config = str(write_config(tmp_path))
    spend_sql = "SELECT budget, key, period_start, cost_nanousd, tokens, requests FROM budget_spend"
    services, parts = open_with_parts(store)
    try:
        rows_before = {tuple(r[:3]) for r in rows(services, spend_sql)}
    finally:
        services.close()

    result = json.loads(
        run_cli(capsys, "reprice", "--db", store, "--config", config, "--since", SINCE, "--format", "json")
    )
    assert result["difference_usd"] != 0

    services, parts = open_with_parts(store)
    try:
        after = rows(services, spend_sql)
        assert {tuple(r[:3]) for r in after} == rows_before  # no row for a period never counted
        assert all(cost >= 0 and tokens >= 0 and requests >= 0 for *_key, cost, tokens, requests in after)
        corrected = spent(parts)
        # Every budget's figure is what a rebuild of its period from the corrected rollups gives.
        definitions = parts.budgets.registry.definitions()
        with services.store.transaction() as conn:
            for budget in definitions:
                rebuild_current_period(conn, budget, NOW, PeriodStarts())
        assert spent(parts) == pytest.approx(corrected, abs=1e-9)
        assert {tuple(r[:3]) for r in rows(services, spend_sql)} == rows_before
    finally:
        services.close()
