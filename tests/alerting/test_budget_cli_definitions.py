"""`llmcost budgets …` as a person types it (in-process `main`): listing, validation, updates, resets, refusals.

Each test reproduces a reported defect the way a user met it and asserts what they see: the exit status,
the one-line error, and what `budgets list`/`show` print afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmcost.cli import main
from tests.support.budgets import CONFIG_REF, DAILY, build, call, ingest
from tests.support.clock import FakeClock
from tests.support.wall_clock import stamp_in_period

PER_PROJ = ["--scope", "project", "--key", "*", "--period", "total", "--limit", "1"]


@pytest.fixture
def store(sqlite_url: str, clock: FakeClock) -> str:
    """An existing store with the config budget DAILY (applied from CONFIG_REF), on today's real clock."""
    import time

    clock.set(time.time())
    services, _, _ = build(sqlite_url, [DAILY], clock)
    services.close()
    return sqlite_url


def llmcost(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `llmcost ARGV`; the exit status, standard output and standard error (without the store line)."""
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    err = "\n".join(line for line in out.err.splitlines() if not line.startswith("store: "))
    return code, out.out, err


def show(capsys: pytest.CaptureFixture[str], name: str, db: str) -> dict[str, Any]:
    code, out, err = llmcost(capsys, "budgets", "show", name, "--db", db)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def spend(db: str, clock: FakeClock, *records: tuple[int, dict[str, Any]]) -> None:
    services, _, _ = build(db, [DAILY], clock)
    ingest(services, *records)
    services.close()


def test_list_shows_a_key_star_budget_before_any_key_has_spent(store: str, clock: FakeClock, capsys) -> None:  # type: ignore[no-untyped-def]
    assert llmcost(capsys, "budgets", "create", "per-proj", *PER_PROJ, "--db", store)[0] == 0
    code, out, _ = llmcost(capsys, "budgets", "list", "--db", store)
    assert code == 0
    assert "no budgets in this store" not in out
    row = next(line for line in out.splitlines() if line.startswith("per-proj "))
    assert row.split()[:2] == ["per-proj", "*"] and "cli" in row and "no key has spent yet" in row
    code, out, _ = llmcost(capsys, "budgets", "list", "--format", "json", "--db", store)
    listed = {b["name"]: b for b in json.loads(out)["budgets"]}
    assert set(listed) == {"daily", "per-proj"}
    assert listed["per-proj"]["key"] == "*" and listed["per-proj"]["spent"] == 0
    assert listed["per-proj"]["origin"] == "cli" and listed["daily"]["origin"] == "config"
    assert "no key has spent yet" in listed["per-proj"]["note"]
    # Once a project spends, its instance is listed instead of the placeholder.
    spend(store, clock, call("a", clock() - 5, 0.25, project="p1"))
    rows = json.loads(llmcost(capsys, "budgets", "list", "--format", "json", "--db", store)[1])["budgets"]
    assert [(b["key"], b["spent"]) for b in rows if b["name"] == "per-proj"] == [("p1", 0.25)]
    assert all("note" not in b for b in rows)


def test_a_key_on_a_global_budget_is_refused(store: str, capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = llmcost(capsys, "budgets", "create", "forgot", "--key", "search", "--period", "daily",
                             "--limit", "5", "--db", store)  # fmt: skip
    assert code == 1
    assert "budget.key: given but scope is global (set scope, e.g. project)" in err
    assert llmcost(capsys, "budgets", "show", "forgot", "--db", store)[0] == 1  # nothing was created
    config = tmp_path / "llmcost.yml"
    config.write_text(yaml.safe_dump({"budgets": [{"name": "g", "period": "daily", "limit": 5, "key": "p1"}]}))
    code, out, _ = llmcost(capsys, "check-config", str(config))
    assert code == 1 and "budgets[0].key: given but scope is global (set scope, e.g. project)" in out


def test_update_to_scope_global_drops_the_stored_key(store: str, capsys) -> None:  # type: ignore[no-untyped-def]
    created = llmcost(capsys, "budgets", "create", "team", "--scope", "project", "--key", "search",
                      "--period", "daily", "--limit", "5", "--db", store)  # fmt: skip
    assert created[0] == 0, created[2]
    code, _, err = llmcost(capsys, "budgets", "update", "team", "--scope", "global", "--db", store)
    assert code == 0, err
    definition = show(capsys, "team", store)["definition"]
    assert definition["scope"] == "global" and definition["key"] == "" and definition["limit"] == 5
    # A key given together with scope global is the mistake itself: refused.
    code, _, err = llmcost(capsys, "budgets", "update", "team", "--scope", "global", "--key", "chat", "--db", store)
    assert code == 1 and "budget.key: given but scope is global" in err
    # Back to a project scope: the key must be given again.
    code, _, err = llmcost(capsys, "budgets", "update", "team", "--scope", "project", "--db", store)
    assert code == 1 and "budget.key: required for scope 'project'" in err


def test_update_of_one_threshold_keeps_the_others(store: str, capsys) -> None:  # type: ignore[no-untyped-def]
    assert llmcost(capsys, "budgets", "create", "t1", "--period", "daily", "--limit", "10",
                   "--threshold", "warning=0.7", "--db", store)[0] == 0  # fmt: skip
    code, _, err = llmcost(capsys, "budgets", "update", "t1", "--threshold", "critical=0.9", "--db", store)
    assert code == 0, err
    assert show(capsys, "t1", store)["definition"]["thresholds"] == {"info": 0.5, "warning": 0.7, "critical": 0.9}


def test_thresholds_out_of_order_are_shown_with_the_stored_ones(store: str, capsys) -> None:  # type: ignore[no-untyped-def]
    """`update --threshold critical=0.5` merges with stored levels the person does not see: say them."""
    assert llmcost(capsys, "budgets", "create", "t2", "--period", "daily", "--limit", "10", "--db", store)[0] == 0
    code, _, err = llmcost(capsys, "budgets", "update", "t2", "--threshold", "critical=0.5", "--db", store)
    assert code == 1
    assert (
        "budget.thresholds: must rise from info to warning to critical, got info 0.5, warning 0.8, critical 0.5" in err
    )
    assert show(capsys, "t2", store)["definition"]["thresholds"]["critical"] == 0.95  # unchanged


@pytest.mark.within_period("daily", 60)  # `budgets show` reads today's spend on the real clock
def test_reset_needs_who_and_why(store: str, clock: FakeClock, capsys) -> None:  # type: ignore[no-untyped-def]
    spend(store, clock, call("a", stamp_in_period(5, now=clock()), 3.0))  # today's, also at 00:00:03 UTC
    for argv in ([], ["--by", "carol"], ["--reason", "quota raised"]):
        code, out, err = llmcost(capsys, "budgets", "reset", "daily", *argv, "--db", store)
        assert code == 2 and out == ""
        assert len(err.splitlines()) == 1 and "--by NAME --reason TEXT" in err
    body = show(capsys, "daily", store)
    assert body["spent"] == 3.0 and body["resets"] == []  # nothing was reset
    code, out, _ = llmcost(capsys, "budgets", "reset", "daily", "--by", "carol", "--reason", "quota raised",
                           "--db", store)  # fmt: skip
    assert code == 0 and "reset by carol" in out
    assert show(capsys, "daily", store)["resets"][0]["reason"] == "quota raised"


def test_reset_of_a_key_star_budget_needs_a_key(store: str, clock: FakeClock, capsys) -> None:  # type: ignore[no-untyped-def]
    assert llmcost(capsys, "budgets", "create", "per-proj", *PER_PROJ, "--db", store)[0] == 0
    spend(store, clock, call("a", clock() - 5, 0.4, project="p1"), call("b", clock() - 4, 0.3, project="p2"))
    who = ["--by", "carol", "--reason", "quota raised", "--db", store]
    code, out, err = llmcost(capsys, "budgets", "reset", "per-proj", *who)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "--key VALUE" in err and "--key '*'" in err
    spent = {i["key"]: i["spent"] for i in show(capsys, "per-proj", store)["instances"]}
    assert spent == {"p1": 0.4, "p2": 0.3}  # nothing was reset
    code, out, _ = llmcost(capsys, "budgets", "reset", "per-proj", "--key", "p1", *who)
    assert code == 0 and "key p1: reset by carol" in out
    spent = {i["key"]: i["spent"] for i in show(capsys, "per-proj", store)["instances"]}
    assert spent == {"p2": 0.3}
    code, out, _ = llmcost(capsys, "budgets", "reset", "per-proj", "--key", "*", *who)
    assert code == 0 and "key p2: reset by carol" in out
    assert show(capsys, "per-proj", store)["instances"] == []


def test_a_config_budget_is_refused_with_its_file(store: str, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = llmcost(capsys, "budgets", "update", "daily", "--limit", "5", "--db", store)
    assert code == 1 and f"budget 'daily' is declared in {CONFIG_REF}; change it there" in err
    code, _, err = llmcost(capsys, "budgets", "delete", "daily", "--db", store)
    assert code == 1 and f"budget 'daily' is declared in {CONFIG_REF}; remove it there" in err
    assert show(capsys, "daily", store)["limit"] == DAILY["limit"]


def test_invalid_json_is_a_one_line_usage_error(store: str, capsys) -> None:  # type: ignore[no-untyped-def]
    for given, said in (("notjson", "--json is not valid JSON"), ("[1]", "--json must be a JSON object")):
        code, out, err = llmcost(capsys, "budgets", "create", "t", "--json", given, "--db", store)
        assert code == 2 and out == ""
        assert len(err.splitlines()) == 1 and said in err and "Traceback" not in err
    code, _, err = llmcost(capsys, "budgets", "create", "t", "--period", "daily", "--limit", "1",
                           "--threshold", "warning", "--db", store)  # fmt: skip
    assert code == 2 and "expected LEVEL=RATIO" in err
    assert llmcost(capsys, "budgets", "show", "t", "--db", store)[0] == 1


def test_a_json_name_that_differs_from_the_command_line_name_says_so_without_a_url(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # `llmcost budgets create jk --json '{"name": "other", …}'` said the name "differs from the name in the
    # URL": there is no URL on the command line.
    definition = json.dumps({"name": "other", "scope": "project", "key": "a", "period": "daily", "limit": 5})
    code, out, err = llmcost(capsys, "budgets", "create", "jk", "--json", definition, "--db", store)
    assert code == 1
    assert "budget.name: 'other' differs from the budget's name 'jk'" in out + err
    assert "URL" not in out + err


def test_the_refusal_to_delete_a_config_budget_names_a_command_that_deletes_it(
    sqlite_url: str, clock: FakeClock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "remove it there and apply the file": removed from the file, `llmcost budgets apply --config FILE`
    # kept it ("keep daily: … pass --prune to delete it"), so following the advice deleted nothing.
    import time

    clock.set(time.time())
    config = tmp_path / "prod.yml"
    config.write_text(yaml.safe_dump({"budgets": [DAILY]}))
    services, _, _ = build(sqlite_url, [], clock)
    services.close()
    assert llmcost(capsys, "budgets", "apply", "--config", str(config), "--db", sqlite_url)[0] == 0
    code, out, err = llmcost(capsys, "budgets", "delete", "daily", "--db", sqlite_url)
    assert code == 1
    advice = (out + err).strip()
    assert advice.startswith(f"budget 'daily' is declared in {config}; remove it there, then run ")
    command = advice.split("`")[1]
    config.write_text(yaml.safe_dump({"budgets": []}))
    argv = command.split()
    assert argv[:3] == ["llmcost", "budgets", "apply"] and "--prune" in argv
    assert llmcost(capsys, *argv[1:], "--db", sqlite_url)[0] == 0
    assert llmcost(capsys, "budgets", "show", "daily", "--db", sqlite_url)[0] != 0


def test_an_option_the_action_does_not_read_is_refused_not_ignored(store: str, capsys) -> None:  # type: ignore[no-untyped-def]
    """Defect: one parser serves every action, so `budgets list --limit 5` (read as "5 rows") listed every
    budget, and `budgets delete NAME --reason …` deleted without recording the reason anywhere."""
    code, out, err = llmcost(capsys, "budgets", "list", "--limit", "5", "--db", store)
    assert (code, out) == (2, "") and err == "llmcost budgets list: --limit not used by list (see --help)", err
    code, _, err = llmcost(capsys, "budgets", "delete", DAILY["name"], "--reason", "gone", "--db", store)
    assert code == 2 and "--reason not used by delete" in err, err
    assert show(capsys, DAILY["name"], store)["definition"]["limit"] == DAILY["limit"]  # nothing deleted
    # What each action reads still works.
    code, out, err = llmcost(capsys, "budgets", "list", "--format", "json", "--db", store)
    assert code == 0 and json.loads(out), err
