"""No command silently changes budgets: a running `llmcost serve --config prod.yml` and every other CLI command.

The issue this guards against: `llmcost alerts list --db <store>` (or `budgets list`) without `--config`
used to sync the store to the empty config it was given, deleting every budget the server had declared;
the server then resolved the exceeded budgets' alerts (Slack `[RESOLVED]`, PagerDuty `resolve`), and the
next correct command fired them all again as new. Real processes, a real store (SQLite and PostgreSQL)
and recording Slack and PagerDuty servers.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.helpers import total
from tests.support.procs import LLMCOST, LlmcostProcess
from tests.support.recording_servers import PagerDutyEventsServer, SlackAPIServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

ROUTING_KEY = "R" * 32
PROD_BUDGETS: list[dict[str, Any]] = [
    {"name": "search-requests", "scope": "project", "key": "search", "period": "total", "unit": "requests",
     "limit": 3, "mode": "hard"},
    {"name": "all-spend", "scope": "global", "period": "total", "limit": 10.0},
    {"name": "per-project", "scope": "project", "key": "*", "period": "total", "limit": 100.0},
    {"name": "gpt-tokens", "scope": "model", "key": "gpt-4o", "period": "total", "unit": "tokens", "limit": 100000},
]  # fmt: skip


def prod_config(slack: SlackAPIServer, pagerduty: PagerDutyEventsServer, budgets: Any) -> dict[str, Any]:
    return {
        "budgets": {"evaluate_seconds": 1, "items": budgets},
        "notifications": {
            "slack": {"token": "xoxb-test-token", "channel": "#llm-cost", "api_url": slack.api_url},
            "pagerduty": {"routing_key": ROUTING_KEY, "events_url": pagerduty.events_url},
            "routes": {"info": [], "warning": ["slack"], "critical": ["slack", "pagerduty"]},
        },
    }


def cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMCOST_")}
    return subprocess.run([*LLMCOST, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def budget_runs(base: str) -> float:
    return total(httpx.get(f"{base}/metrics", timeout=10).text, "llm_scheduler_runs_total", task="budgets")


class Watch:
    """What a person sees of the running server: budgets, a check answer, alerts, notifications."""

    def __init__(self, server: LlmcostProcess, slack: SlackAPIServer, pagerduty: PagerDutyEventsServer) -> None:
        self.server, self.slack, self.pagerduty = server, slack, pagerduty

    def snapshot(self) -> dict[str, Any]:
        base = self.server.base
        budgets = httpx.get(f"{base}/v1/budgets", timeout=10).json()["budgets"]
        check = httpx.post(f"{base}/v1/budgets/check", json={"project": "search"}, timeout=10).json()
        alerts = httpx.get(f"{base}/v1/alerts", timeout=10).json()
        alerts = alerts["alerts"] if isinstance(alerts, dict) else alerts
        return {
            "budgets": sorted((b["name"], b["key"], b["limit"], b["spent"], b["state"]) for b in budgets),
            "check": (check["allowed"], check["state"], sorted(b["name"] for b in check["budgets"])),
            "alerts": sorted((a["alertname"], a["labels"].get("budget", ""), a["state"]) for a in alerts),
            "slack": len(self.slack.requests),
            "pagerduty": [(e["event_action"], e.get("dedup_key")) for e in self.pagerduty.events],
        }

    def settled(self) -> dict[str, Any]:
        """A snapshot that two budget evaluations in a row did not change (deliveries done)."""
        previous = self.snapshot()
        for _ in range(30):
            runs = budget_runs(self.server.base)
            wait_until(lambda r=runs: budget_runs(self.server.base) >= r + 2, what="two budget evaluations", timeout=60)
            current = self.snapshot()
            if current == previous:
                return current
            previous = current
        raise AssertionError("the server never settled")


@pytest.mark.parametrize("with_config", ["none", "empty", "prod"])
def test_no_command_changes_the_budgets_of_a_running_server(db_url: str, tmp_path: Path, with_config: str) -> None:
    with SlackAPIServer(token="xoxb-test-token") as slack, PagerDutyEventsServer() as pagerduty:
        prod = tmp_path / "prod.yml"
        prod.write_text(yaml.safe_dump(prod_config(slack, pagerduty, PROD_BUDGETS)))
        empty = tmp_path / "other.yml"  # a config without budgets, pointing at the same channels
        empty.write_text(yaml.safe_dump(prod_config(slack, pagerduty, [])))
        server = LlmcostProcess(db_url, config=prod).start(tmp_path)
        try:
            base = server.base
            api_made = {"scope": "user", "key": "alice", "period": "total", "limit": 5.0}
            assert httpx.put(f"{base}/v1/budgets/api-made", json=api_made, timeout=10).status_code == 200
            events = [
                {"request_id": f"r{i}", "provider": "openai", "model": "gpt-4o", "project": "search",
                 "user": "alice", "cost_usd": 1.7, "input_tokens": 100, "output_tokens": 10}
                for i in range(5)
            ]  # fmt: skip
            assert httpx.post(f"{base}/v1/usage", json=events, timeout=10).json()["accepted"] == 5
            watch = Watch(server, slack, pagerduty)
            wait_until(lambda: any(a == "trigger" for a, _ in watch.snapshot()["pagerduty"]), what="a page", timeout=60)
            firing = httpx.get(f"{base}/v1/alerts?state=firing", timeout=10).json()
            firing = firing["alerts"] if isinstance(firing, dict) else firing
            exceeded = next(a for a in firing if a["alertname"] == "LLMBudgetExceeded")
            ack = httpx.post(f"{base}/v1/alerts/{exceeded['id']}/ack", json={"by": "oncall"}, timeout=10)
            assert ack.status_code == 200
            before = watch.settled()
            assert len(before["budgets"]) == 5  # four declared (per-project has one key) and api-made
            assert before["check"][0] is False
            assert ("acknowledge", exceeded.get("fingerprint")) in before["pagerduty"] or any(
                action == "acknowledge" for action, _ in before["pagerduty"]
            )

            config_args = {"none": [], "empty": ["--config", str(empty)], "prod": ["--config", str(prod)]}[with_config]
            db = ["--db", db_url]
            commands = [
                ["alerts", "list", *db],
                ["alerts", "list", "--state", "firing", *db],
                ["budgets", "list", *db],
                ["budgets", *db],
                ["budgets", "show", "search-requests", *db],
                ["budgets", "show", "api-made", *db],
                ["budgets", "apply", "--dry-run", *db],
                ["report", *db],
                ["report", "--format", "json", *db],
            ]
            for argv in commands:
                done = cli(*argv, *config_args, cwd=tmp_path)
                if argv[:2] == ["budgets", "apply"] and not config_args:
                    assert done.returncode == 2, done  # apply needs --config FILE
                    continue
                assert done.returncode in (0, 1), (argv, done.stdout, done.stderr)
                assert "store: " in done.stderr  # every reading command says which store it read
            done = cli("check-config", str(empty if with_config == "empty" else prod), cwd=tmp_path)
            assert done.returncode == 0, done.stdout
            if with_config == "empty":  # a prune of another file's: prod's budgets are not its to delete
                done = cli("budgets", "apply", "--dry-run", "--prune", *db, *config_args, cwd=tmp_path)
                assert "- delete" not in done.stdout, done.stdout
                assert "4 budgets of 1 other file untouched" in done.stdout, done.stdout
                assert "api-made" not in done.stdout  # API budgets are never a config's to delete
            after = watch.settled()
            assert after == before
        finally:
            server.stop()


def test_apply_keeps_and_with_prune_deletes_only_its_own_config_budgets(sqlite_url: str, tmp_path: Path) -> None:
    prod = tmp_path / "prod.yml"
    prod.write_text(yaml.safe_dump({"budgets": PROD_BUDGETS}))
    smaller = tmp_path / "smaller.yml"
    smaller.write_text(yaml.safe_dump({"budgets": [{**PROD_BUDGETS[1], "limit": 20.0}]}))
    server = LlmcostProcess(sqlite_url, config=prod).start(tmp_path)
    try:
        put = httpx.put(
            f"{server.base}/v1/budgets/team", json={"scope": "project", "key": "x", "period": "daily", "limit": 1}
        )
        assert put.status_code == 200
        done = cli("budgets", "create", "mine", "--scope", "user", "--key", "bob", "--period", "daily",
                   "--limit", "2", "--db", sqlite_url, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        dry = cli("budgets", "apply", "--config", str(smaller), "--dry-run", "--db", sqlite_url, cwd=tmp_path)
        assert f"~ update all-spend: limit 10.0 -> 20.0, taken over from {prod}" in dry.stdout, dry.stdout
        assert "3 budgets of 1 other file untouched" in dry.stdout and "  keep" not in dry.stdout, dry.stdout
        every = ["all-spend", "gpt-tokens", "mine", "per-project", "search-requests", "team"]

        def names() -> list[str]:
            return [n for n in every if httpx.get(f"{server.base}/v1/budgets/{n}").status_code == 200]

        assert names() == every
        done = cli("budgets", "apply", "--config", str(smaller), "--db", sqlite_url, cwd=tmp_path)
        assert done.returncode == 0, done.stdout
        assert httpx.get(f"{server.base}/v1/budgets/all-spend").json()["limit"] == 20.0
        assert names() == every
        done = cli("budgets", "apply", "--config", str(smaller), "--prune", "--db", sqlite_url, cwd=tmp_path)
        assert done.returncode == 0, done.stdout
        assert names() == every  # prod.yml's budgets are prod.yml's: another file's prune leaves them
        # prod.yml, which `serve` applied, drops two of its budgets: the CLI's apply of it is the same file.
        prod.write_text(yaml.safe_dump({"budgets": PROD_BUDGETS[:1]}))
        done = cli("budgets", "apply", "--config", str(prod), "--db", sqlite_url, cwd=tmp_path)
        kept = [line for line in done.stdout.splitlines() if line.startswith("  keep")]
        assert sorted(line.split(":")[0] for line in kept) == ["  keep gpt-tokens", "  keep per-project"], done.stdout
        done = cli("budgets", "apply", "--config", str(prod), "--prune", "--db", sqlite_url, cwd=tmp_path)
        assert done.returncode == 0, done.stdout
        assert names() == ["all-spend", "mine", "search-requests", "team"]  # API and CLI budgets stay
        clash = tmp_path / "clash.yml"
        clash.write_text(yaml.safe_dump({"budgets": [{"name": "team", "scope": "global", "period": "daily",
                                                     "limit": 9}]}))  # fmt: skip
        done = cli("budgets", "apply", "--config", str(clash), "--db", sqlite_url, cwd=tmp_path)
        assert done.returncode == 1 and "! conflict team" in done.stdout
        assert httpx.get(f"{server.base}/v1/budgets/team").json()["limit"] == 1.0
    finally:
        server.stop()


def test_reading_commands_refuse_a_missing_store_and_create_nothing(tmp_path: Path) -> None:
    for argv in (["report"], ["budgets", "list"], ["budgets", "show", "x"], ["alerts", "list"], ["alerts", "ack", "1"]):
        done = cli(*argv, cwd=tmp_path)
        assert done.returncode == 3, (argv, done.stdout, done.stderr)
        assert "no store at sqlite:///llmcost.db" in done.stderr, done.stderr
    missing = tmp_path / "typo.db"
    done = cli("report", "--db", f"sqlite:///{missing}", cwd=tmp_path)
    assert done.returncode == 3 and f"no store at sqlite:///{missing}" in done.stderr
    assert list(tmp_path.iterdir()) == []  # no empty store, no lock file


def test_a_first_budgets_apply_says_how_a_new_installation_gets_its_store(tmp_path: Path) -> None:
    # budgets.md's CI commands run before any server: the refusal told to pass --db with the store
    # `llmcost serve` uses, and a new installation has no such store yet.
    (tmp_path / "budgets.yml").write_text(
        yaml.safe_dump({"budgets": [{"name": "g", "scope": "global", "period": "daily", "limit": 9}]})
    )
    done = cli("budgets", "apply", "--config", "budgets.yml", "--dry-run", "--detailed-exitcode", cwd=tmp_path)
    assert done.returncode == 3
    assert done.stderr.strip() == (
        "no store at sqlite:///llmcost.db (no such file llmcost.db); pass --db with the store `llmcost serve` uses "
        "(a new installation: start `llmcost serve` once, which creates it)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["budgets.yml"]


def test_reading_commands_refuse_a_postgres_database_without_a_store(pg_url: str, tmp_path: Path) -> None:
    done = cli("budgets", "list", "--db", pg_url, cwd=tmp_path)
    assert done.returncode == 3 and "holds no llmcost store" in done.stderr, done.stderr
    done = cli("report", "--db", pg_url, cwd=tmp_path)
    assert done.returncode == 3
    import psycopg

    with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql")) as conn:
        tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert tables.fetchone() == (0,)  # nothing was migrated into it


def test_only_the_leader_applies_its_config_and_never_prunes_another_files_budgets(db_url: str, tmp_path: Path) -> None:
    import signal

    prod = tmp_path / "prod.yml"
    prod.write_text(yaml.safe_dump({"budgets": PROD_BUDGETS}))
    other = tmp_path / "other.yml"  # a second host's config: one budget of its own, none of prod's
    other.write_text(yaml.safe_dump({"budgets": [{"name": "other-daily", "scope": "global", "period": "daily",
                                                   "limit": 3.0}]}))  # fmt: skip
    leader = LlmcostProcess(db_url, config=prod).start(tmp_path)
    follower = LlmcostProcess(db_url, config=other).start(tmp_path)
    every = ["all-spend", "gpt-tokens", "other-daily", "per-project", "search-requests"]

    def names(base: str) -> list[str]:
        return [n for n in every if httpx.get(f"{base}/v1/budgets/{n}", timeout=10).status_code == 200]

    try:
        prod_names = ["all-spend", "gpt-tokens", "per-project", "search-requests"]
        assert names(follower.base) == prod_names  # the follower applied nothing
        assert follower.proc is not None
        follower.proc.send_signal(signal.SIGHUP)  # a follower's reload re-reads its file, applies nothing
        wait_until(
            lambda: "applied by the scheduler leader" in follower.log(),
            what="the follower's reload",
            timeout=60,
        )
        assert names(follower.base) == prod_names
        # Its log says so, and does not claim otherwise (it once ended with "budgets applied").
        wait_until(lambda: "config reloaded from" in follower.log(), what="the reload's last line", timeout=10)
        assert "budgets applied" not in follower.log(), follower.log()
        ingester = LlmcostProcess(db_url, config=other, role="ingest").start(tmp_path)
        try:  # an ingest-only server never applies budgets, at start or on SIGHUP
            assert ingester.proc is not None
            ingester.proc.send_signal(signal.SIGHUP)
            wait_until(
                lambda: "(role ingest) applies no budgets" in ingester.log(),
                what="the ingest server's reload",
                timeout=60,
            )
            assert names(ingester.base) == prod_names
            wait_until(lambda: "config reloaded from" in ingester.log(), what="the reload's last line", timeout=10)
            assert "budgets applied" not in ingester.log(), ingester.log()
        finally:
            ingester.stop()
        leader.stop()  # hands the lease over: the follower takes it and applies its own file
        wait_until(lambda: "other-daily" in names(follower.base), what="the new leader's budgets", timeout=60)
        assert names(follower.base) == every  # and prod's budgets, which it did not make, stay
    finally:
        follower.stop()
        leader.stop()
