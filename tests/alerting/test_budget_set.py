"""Which config file a `config` budget belongs to (`budget_set`, else the path), and what an apply plans for it.

A prune deletes only the budgets its own file made; other files' budgets are one `untouched` line; a
file that declares `budget_set` is that set from any checkout path, and owns what it made at its path
before it declared the key. The CLI's refusal names the file and its set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerting.budgets.apply import ApplyPlan, Prune, StoredDefinition, definition_json, plan_apply
from alerting.budgets.definition import parse_budgets_section
from alerting.budgets.origin import config_origin_ref
from exporter.config import ConfigError
from llmcost.config import parse_config
from tests.alerting.test_budget_cli_definitions import llmcost, store  # noqa: F401  (the fixture)
from tests.support.budgets import DAILY

SEARCH = {"name": "search", "scope": "project", "key": "search", "period": "daily", "limit": 5}


def row(
    name: str, origin_ref: str | None, definition: dict[str, Any] = SEARCH, origin: str = "config"
) -> StoredDefinition:
    (budget,) = parse_budgets_section([{**SEARCH, "name": name}], []).items
    return StoredDefinition(name, definition_json(budget), origin, origin_ref)


def plan(stored: list[StoredDefinition], declared: list[dict[str, Any]], ref: str, prune: Prune) -> ApplyPlan:
    return plan_apply(stored, parse_budgets_section(declared, []).items, origin_ref=ref, prune=prune)


def test_a_prune_deletes_only_what_this_file_made_and_other_files_are_one_line() -> None:
    stored = [
        row("search", "/repo/search.yml"),
        row("search-old", "/repo/search.yml"),
        row("chat-a", "/repo/chat.yml"),
        row("chat-b", "/repo/chat.yml"),
        row("ops", config_origin_ref("/ci/7/ops.yml", "ops")),
        row("ancient", None),  # from before origins were recorded: no file's to delete
        row("api-made", None, origin="api"),
    ]
    pruned = plan(stored, [SEARCH], "/repo/search.yml", Prune.OWN)
    assert (pruned.delete, pruned.kept, pruned.unchanged) == (["search-old"], [], ["search"])
    assert sorted(pruned.untouched) == ["ancient", "chat-a", "chat-b", "ops"] and pruned.other_files == 2
    untouched = "  4 budgets untouched: 3 of 2 other files, 1 of no file (applied before llmcost recorded origins)"
    assert pruned.lines() == ["- delete search-old", untouched]
    kept = plan(stored, [SEARCH], "/repo/search.yml", Prune.NONE)
    assert kept.lines() == [
        "  keep search-old: this file made it and no longer declares it (pass --prune to delete it)",
        untouched,
    ]
    assert kept.to_json()["untouched"] == pruned.to_json()["untouched"]


def test_a_budget_set_is_one_file_from_any_path_and_adopts_what_its_path_made() -> None:
    at_first = config_origin_ref("/ci/1/search.yml", "search")
    at_second = config_origin_ref("/ci/2/search.yml", "search")
    stored = [row("search", at_first), row("search-old", at_first), row("legacy", "/ci/2/search.yml")]
    moved = plan(stored, [SEARCH, {**SEARCH, "name": "legacy"}], at_second, Prune.OWN)
    assert moved.unchanged == ["search"] and moved.delete == ["search-old"] and not moved.applied_from
    # Made at this path before the file declared its set: its own, recorded under the set from now on.
    assert moved.lines() == [
        "~ update legacy: now recorded under this file's budget_set (was /ci/2/search.yml)",
        "- delete search-old",
    ]
    other_set = plan(stored, [SEARCH], config_origin_ref("/ci/2/search.yml", "chat"), Prune.OWN)
    assert other_set.lines() == [
        "~ update search: taken over from budget_set search (/ci/1/search.yml)",
        "- delete legacy",  # what this path made before the file named its set, whatever the name
        "  1 budget of 1 other file untouched",
    ]
    # Without the key a file is its path: a set's budgets at that path are not its own.
    by_path = plan(stored, [], "/ci/1/search.yml", Prune.OWN)
    assert by_path.delete == [] and by_path.other_files == 2


@pytest.mark.parametrize(
    ("value", "shown"), [("search team", "'search team'"), (5, "'int'"), ("", "''"), ("-x", "'-x'"), ("a" * 65, "'aaa")]
)
def test_a_bad_budget_set_is_refused_naming_the_key(value: Any, shown: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"budget_set": value, "budgets": [SEARCH]})
    (problem,) = raised.value.problems
    assert problem.startswith("budget_set: must be a name of letters, digits, '.', '_' or '-'"), problem
    assert f"got {shown}" in problem, problem


def test_apply_refuses_a_file_with_a_bad_budget_set_and_the_refusal_names_the_set(
    store: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "search.yml"
    config.write_text(yaml.safe_dump({"budget_set": "search/team", "budgets": [SEARCH]}))
    code, out, err = llmcost(capsys, "budgets", "apply", "--config", str(config), "--db", store)
    assert code == 2 and "budget_set: must be a name" in err and "got 'search/team'" in err, (out, err)
    config.write_text(yaml.safe_dump({"budget_set": "search", "budgets": [SEARCH]}))
    code, out, err = llmcost(capsys, "budgets", "apply", "--config", str(config), "--db", store)
    assert code == 0, err
    assert out.splitlines()[-1].startswith(f"budget_set search ({config}): 1 to create, "), out
    assert "1 budget of 1 other file untouched" in out, out  # DAILY, applied from another file
    code, out, err = llmcost(capsys, "budgets", "delete", "search", "--db", store)
    assert code == 1 and err.startswith(
        f"budget 'search' is declared in the file with budget_set search (last seen at {config}); remove it"
    ), err
    assert "`llmcost budgets apply --config FILE --prune` with that file" in err, err
    _, out, _ = llmcost(capsys, "budgets", "show", DAILY["name"], "--db", store)
    assert json.loads(out)["origin"] == "config"  # the other file's budget is still there


def test_the_refusal_for_a_sets_budget_names_the_set_not_a_checkout_path_that_is_gone(
    store: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # CI applies the set from a new checkout each run; an unchanged apply rewrites nothing, so the stored
    # path stays the first run's. The refusal advised `budgets apply --config /ci/run1/search.yml --prune`,
    # a checkout long deleted.
    first, second = tmp_path / "run1" / "search.yml", tmp_path / "run2" / "search.yml"
    for path in (first, second):
        path.parent.mkdir()
        path.write_text(yaml.safe_dump({"budget_set": "search", "budgets": [SEARCH]}))
    assert llmcost(capsys, "budgets", "apply", "--config", str(first), "--db", store)[0] == 0
    first.unlink()
    code, out, err = llmcost(capsys, "budgets", "apply", "--config", str(second), "--db", store)
    assert code == 0 and "0 to create, 0 to update, 0 to delete, 1 unchanged" in out, (out, err)
    code, _, err = llmcost(capsys, "budgets", "delete", "search", "--db", store)
    assert code == 1, err
    assert err.startswith(
        f"budget 'search' is declared in the file with budget_set search (last seen at {first}); remove it there, "
        "then run `llmcost budgets apply --config FILE --prune` with that file"
    ), err
    assert f"--config {first}" not in err, err
    code, _, err = llmcost(capsys, "budgets", "update", "search", "--limit", "9", "--db", store)
    assert code == 1 and "change it there, then run `llmcost budgets apply --config FILE` with that file" in err, err


def test_budgets_from_before_origins_were_recorded_are_counted_as_no_files() -> None:
    # They belong to no file (docs/budgets.md), yet the plan counted them as one more "other file".
    stored = [row("chat-a", "/repo/chat.yml"), row("ancient", None), row("older", None)]
    assert plan(stored, [SEARCH], "/repo/search.yml", Prune.OWN).lines() == [
        "+ create search: project search, daily, limit 5 usd, track",
        "  3 budgets untouched: 1 of 1 other file, 2 of no file (applied before llmcost recorded origins)",
    ]
    only_old = plan([row("ancient", None)], [SEARCH], "/repo/search.yml", Prune.OWN)
    assert only_old.lines()[-1] == "  1 budget of no file (applied before llmcost recorded origins) untouched"
    assert only_old.other_files == 0
