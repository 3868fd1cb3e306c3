"""The budgets HTTP API as a client meets it: listing every definition, validation, refusals, resets of key "*"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from alerting.budgets.http import budget_routes
from alerting.budgets.service import BudgetService
from exporter.http.app import build_app
from exporter.services import Services
from llmcost.cli import main
from tests.support.budgets import ADMIN, CONFIG_REF, DAILY, INGEST, NOON, PER_PROJECT, build, call, ingest
from tests.support.clock import FakeClock

AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def api(db_url: str, clock: FakeClock) -> Iterator[tuple[TestClient, Services, BudgetService]]:
    clock.set(NOON + 600)
    services, budgets, _ = build(
        db_url, [DAILY, PER_PROJECT], clock, auth={"admin_tokens": [ADMIN], "ingest_tokens": [INGEST]}
    )
    with TestClient(build_app(services, budget_routes(budgets, services.config.auth))) as client:
        yield client, services, budgets
    services.close()


def listed(client: TestClient) -> list[tuple[str, str, float]]:
    answer = client.get("/v1/budgets", headers=AUTH)
    assert answer.status_code == 200
    return sorted((b["name"], b["key"], b["spent"]) for b in answer.json()["budgets"])


def test_get_budgets_lists_a_key_star_budget_before_any_key_has_spent(api: Any) -> None:
    client, services, _ = api
    assert listed(client) == [("daily", "", 0.0), ("per-project", "*", 0.0)]
    row = next(b for b in client.get("/v1/budgets", headers=AUTH).json()["budgets"] if b["name"] == "per-project")
    assert row["state"] == "ok" and row["limit"] == PER_PROJECT["limit"] and "no key has spent yet" in row["note"]
    ingest(services, call("a", NOON + 5, 2.0, project="chat"))
    assert listed(client) == [("daily", "", 2.0), ("per-project", "chat", 2.0)]


def test_a_key_on_a_global_budget_is_a_422(api: Any) -> None:
    client, _, _ = api
    answer = client.put("/v1/budgets/forgot", headers=AUTH, json={"key": "search", "period": "daily", "limit": 5})
    assert answer.status_code == 422
    assert "budget.key: given but scope is global (set scope, e.g. project)" in answer.json()["detail"]
    assert client.get("/v1/budgets/forgot", headers=AUTH).status_code == 404
    # `key: ""` (what a global budget's definition shows) stays accepted.
    ok = client.put("/v1/budgets/g", headers=AUTH, json={"key": "", "period": "daily", "limit": 5})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("timezone", ["America", "Etc", "x" * 300, "a\x00b"])
def test_a_timezone_that_is_a_tzdata_folder_or_too_long_is_a_422_not_a_500(api: Any, timezone: str) -> None:
    # ZoneInfo opens the name as a file: "America" is a folder there, and 300 characters too long a name.
    client, _, _ = api
    answer = client.put("/v1/budgets/tz", headers=AUTH, json={"period": "daily", "limit": 5, "timezone": timezone})
    assert answer.status_code == 422, answer.text
    assert any(p.startswith("budget.timezone: unknown IANA timezone") for p in answer.json()["detail"])


@pytest.mark.parametrize("key", ["a\x00b", "chat\u202e", "line\nbreak", "x" * 257])
def test_a_key_no_call_can_carry_is_a_422_not_a_500(api: Any, key: str) -> None:
    # Label values are printable and at most 256 characters: such a key never matches a call, and a NUL
    # failed the write on PostgreSQL (an internal error, nothing said about the key).
    client, _, _ = api
    answer = client.put(
        "/v1/budgets/k", headers=AUTH, json={"scope": "project", "key": key, "period": "daily", "limit": 5}
    )
    assert answer.status_code == 422, answer.text
    assert any(p.startswith("budget.key: must be a label value") for p in answer.json()["detail"])
    assert client.get("/v1/budgets/k", headers=AUTH).status_code == 404


def test_a_description_with_a_nul_is_a_422_not_a_500(api: Any) -> None:
    client, _, _ = api
    answer = client.put(
        "/v1/budgets/d", headers=AUTH, json={"period": "daily", "limit": 5, "description": "spend\x00cap"}
    )
    assert answer.status_code == 422, answer.text
    assert "budget.description: must not contain a NUL character" in answer.json()["detail"]


def test_check_config_names_a_timezone_that_is_a_tzdata_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text("budgets:\n  - {name: b, period: daily, limit: 1, timezone: America}\n")
    assert main(["check-config", str(config)]) == 1
    out, err = capsys.readouterr()
    assert "budgets[0].timezone: unknown IANA timezone 'America'" in out
    assert "Traceback" not in out + err


def test_put_replaces_the_whole_definition(api: Any) -> None:
    client, _, _ = api
    body = {"period": "daily", "limit": 5, "mode": "hard", "thresholds": {"warning": 0.7}}
    assert client.put("/v1/budgets/g", headers=AUTH, json=body).status_code == 200
    again = client.put("/v1/budgets/g", headers=AUTH, json={"period": "daily", "limit": 8})
    definition = again.json()["definition"]
    assert definition["limit"] == 8 and definition["mode"] == "track"  # left out: the default again
    assert definition["thresholds"] == {"info": 0.5, "warning": 0.8, "critical": 0.95}


def test_changing_a_config_budget_is_refused_with_its_file(api: Any) -> None:
    client, _, _ = api
    for answer in (
        client.put("/v1/budgets/daily", headers=AUTH, json={**DAILY, "limit": 1.0}),
        client.delete("/v1/budgets/daily", headers=AUTH),
    ):
        assert answer.status_code == 409
        assert f"budget 'daily' is declared in {CONFIG_REF}" in answer.json()["error"]
    assert client.get("/v1/budgets/daily", headers=AUTH).json()["limit"] == DAILY["limit"]


@pytest.mark.parametrize("field", ["by", "reason"])
def test_a_reset_with_a_nul_is_a_422_naming_the_field_and_resets_nothing(api: Any, field: str) -> None:
    # On PostgreSQL the audit row's write failed: an internal error, nothing said about the field.
    client, services, _ = api
    ingest(services, call("a", NOON + 5, 2.0, project="chat"))
    body = {"by": "carol", "reason": "quota raised", field: "x\x00y"}
    refused = client.post("/v1/budgets/daily/reset", headers=AUTH, json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json() == {"error": f"{field}: must not contain a NUL character", "detail": {"field": field}}
    assert client.get("/v1/budgets/daily", headers=AUTH).json()["spent"] == 2.0


def test_reset_of_a_key_star_budget_needs_a_key(api: Any) -> None:
    client, services, budgets = api
    ingest(services, call("a", NOON + 5, 4.0, project="chat"), call("b", NOON + 6, 3.0, project="search"))
    who = {"by": "carol", "reason": "quota raised"}

    def spent() -> dict[str, float]:
        return {i["key"]: i["spent"] for i in client.get("/v1/budgets/per-project", headers=AUTH).json()["instances"]}

    missing = client.post("/v1/budgets/per-project/reset", headers=AUTH, json=who)
    assert missing.status_code == 422
    assert 'give key, a project to reset that one, or "*" to reset every project' in missing.json()["error"]
    assert spent() == {"chat": 4.0, "search": 3.0}  # nothing was reset
    one = client.post("/v1/budgets/per-project/reset", headers=AUTH, json={**who, "key": "chat"})
    assert one.status_code == 200 and [r["key"] for r in one.json()["resets"]] == ["chat"]
    assert spent() == {"search": 3.0}
    every = client.post("/v1/budgets/per-project/reset", headers=AUTH, json={**who, "key": "*"})
    assert every.status_code == 200 and [r["key"] for r in every.json()["resets"]] == ["search"]
    assert spent() == {}
    assert budgets.status("daily")["spent"] == 7.0  # another budget's count is untouched
    # A budget with one key still resets without one.
    assert client.post("/v1/budgets/daily/reset", headers=AUTH, json=who).status_code == 200
