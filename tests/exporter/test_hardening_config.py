"""Smaller holes: partial token lists off loopback, /metrics tokens, refusals before any lease, config checks,
and one log line per request of hostile LiteLLM records."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from exporter.config import ConfigError, ListenError, parse_config
from exporter.http.app import build_app
from exporter.server import check_exposure
from exporter.services import Services
from llmcost.cli import main
from tests.support.helpers import make_config
from tests.support.pg import free_port
from tests.support.procs import LLMCOST

WEBHOOK = "webhook-token-0123456789"
INGEST = "ingest-token-0123456789"
ADMIN = "admin-token-0123456789ab"
METRICS = "metrics-token-0123456789"


def test_off_loopback_every_endpoint_group_needs_tokens_or_an_explicit_opt_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    only_webhook = parse_config({"auth": {"webhook_tokens": [WEBHOOK]}})
    with pytest.raises(ListenError, match="the ingest, admin endpoints have no tokens"):
        check_exposure("0.0.0.0", only_webhook)
    check_exposure("127.0.0.1", only_webhook)  # loopback stays as it was

    opened = parse_config({"auth": {"webhook_tokens": [WEBHOOK], "open": ["ingest", "admin"]}})
    with caplog.at_level(logging.WARNING):
        check_exposure("0.0.0.0", opened)
    loud = [r.getMessage() for r in caplog.records if "AUTH DISABLED" in r.getMessage()]
    assert len(loud) == 2 and "ingest endpoints are OPEN" in loud[0]

    check_exposure(
        "0.0.0.0",
        parse_config({"auth": {"ingest_tokens": [INGEST], "admin_tokens": [ADMIN], "webhook_tokens": [WEBHOOK]}}),
    )
    with pytest.raises(Exception, match=r"auth.open\[0\]: unknown endpoint group"):
        parse_config({"auth": {"open": ["everything"]}})


@pytest.mark.real_process
def test_serve_refuses_before_opening_the_store(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"auth:\n  webhook_tokens: [{WEBHOOK}]\n")
    db = tmp_path / "never.db"
    done = subprocess.run(
        [*LLMCOST, "serve", "--config", str(config), "--db", f"sqlite:///{db}", "--listen", f"0.0.0.0:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "refusing to listen on 0.0.0.0" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout
    # No store opened, so no leader lease taken (the lease lives in the store).
    assert not db.exists()


def test_check_config_lists_a_listen_address_serve_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`serve` refuses a non-loopback `listen` while endpoints have no tokens: check-config says so first."""
    config = tmp_path / "config.yml"
    config.write_text(f"listen: 0.0.0.0:9800\nauth:\n  webhook_tokens: [{WEBHOOK}]\n")
    assert main(["check-config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "listen: refusing to listen on 0.0.0.0: the ingest, admin endpoints have no tokens" in out, out
    guarded = f"auth: {{ingest_tokens: [{INGEST}], admin_tokens: [{ADMIN}], webhook_tokens: [{WEBHOOK}]}}\n"
    for fine in ("listen: 127.0.0.1:9800\n", "", f"listen: 0.0.0.0:9800\n{guarded}"):
        config.write_text(fine)
        assert main(["check-config", str(config)]) == 0, capsys.readouterr().out
    capsys.readouterr()


def test_metrics_tokens_guard_the_metrics_endpoint(sqlite_url: str) -> None:
    services = Services.build(make_config(sqlite_url, auth={"metrics_tokens": [METRICS]}))
    with TestClient(build_app(services)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"}).status_code == 200
        assert client.get("/healthz").status_code == 200
    services.close()


@pytest.mark.real_process
def test_check_config_rejects_an_unparseable_database_url_file(tmp_path: Path) -> None:
    (tmp_path / "db-url").write_text("postgresql://llmcost:secret-password@db:notaport/llmcost\n")
    config = tmp_path / "config.yml"
    config.write_text("database:\n  url_file: db-url\n")
    done = subprocess.run([*LLMCOST, "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "database.url: is not a database URL" in done.stdout
    assert "secret-password" not in done.stdout


@pytest.mark.real_process
def test_check_config_names_a_bad_url_without_its_password(tmp_path: Path) -> None:
    # Alertmanager behind basic auth with a mistyped port, and a password holding an unencoded "/".
    config = tmp_path / "config.yml"
    config.write_text(
        "alertmanager:\n  url: https://llmcost:am-pass-1@alertmanager.example:9O93\n"
        "notifications:\n  pagerduty:\n    routing_key: R0123456789abcdef0123456789abcde\n"
        "    events_url: https://relay:pd/pass-2@events.example:99999/v2/enqueue\n"
    )
    done = subprocess.run([*LLMCOST, "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "alertmanager.url: must be an http(s) URL, got 'https://[REDACTED]@alertmanager.example:9O93'" in done.stdout
    assert "notifications.pagerduty.events_url: must be an http(s) URL, got 'https://[REDACTED]@events.example" in (
        done.stdout
    )
    assert "am-pass-1" not in done.stdout + done.stderr
    assert "pass-2" not in done.stdout + done.stderr


@pytest.mark.real_process
def test_check_config_shows_the_external_url_it_refuses(tmp_path: Path) -> None:
    # configuration.md's `external_url: https://llmcost.example.com` written without its scheme was refused
    # as "must be an absolute http(s) URL without a fragment", the only URL setting not echoed.
    for value, said in (
        ("llmcost.example.com", "external_url: must be an http(s) URL, got 'llmcost.example.com' (an absolute "
         "URL, such as https://llmcost.example.com)"),
        ("https://u:pw-3@llmcost.example.com/#top", "external_url: must have no fragment (#…), got "
         "'https://[REDACTED]@llmcost.example.com/#top'"),
    ):  # fmt: skip
        config = tmp_path / "config.yml"
        config.write_text(f"external_url: {value}\n")
        done = subprocess.run([*LLMCOST, "check-config", str(config)], capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout.splitlines()[1:]) == (1, [f"  - {said}"])
        assert "pw-3" not in done.stdout + done.stderr


def test_a_litellm_provider_object_is_rejected_with_one_log_line_per_request(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    record = {
        "id": "chatcmpl-1",
        "call_type": "completion",
        "model": "gpt-4o",
        "custom_llm_provider": {"name": "openai"},
        "response_cost": 0.01,
        "endTime": time.time() - 60,
    }
    body = orjson.dumps([{**record, "id": f"chatcmpl-{i}"} for i in range(500)])
    services = Services.build(make_config(sqlite_url))
    with TestClient(build_app(services)) as client, caplog.at_level(logging.DEBUG - 1):
        caplog.clear()
        response = client.post("/v1/usage", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422
        rejected = response.json()["rejected"]
        assert len(rejected) == 500
        assert rejected[0]["error"] == "custom_llm_provider: must be a string, got dict"
        ours = [r for r in caplog.records if r.name.startswith("exporter")]
        assert len(ours) <= 1
        assert not any(r.exc_info for r in ours)
    services.close()


def test_the_placeholder_tokens_of_env_example_are_refused_by_name() -> None:
    """A compose stack started before `.env` was edited: every placeholder token is named, whatever its length."""
    env = dict(
        line.split("=", 1)
        for line in (Path(__file__).resolve().parents[2] / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    tokens = {name: [env[f"LLMCOST_{name.split('_')[0].upper()}_TOKEN"]] for name in ("ingest_tokens", "admin_tokens")}
    with pytest.raises(ConfigError) as refused:
        parse_config({"auth": tokens})
    assert sorted(refused.value.problems) == [
        "auth.admin_tokens: entries [0] are still the placeholder from .env.example; replace them (e.g. with "
        "`openssl rand -hex 32`)",
        "auth.ingest_tokens: entries [0] are still the placeholder from .env.example; replace them (e.g. with "
        "`openssl rand -hex 32`)",
    ]
