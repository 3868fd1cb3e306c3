"""docker-compose.yml: valid against the Compose spec, self-contained, and wired to the other configs.

Docker is not needed: the file is validated with jsonschema against tests/data/compose-spec.json, the
Compose Specification's JSON schema (Copyright The Compose Specification Authors, Apache License 2.0,
from https://github.com/compose-spec/compose-spec, schema/compose-spec.json at 170098b; licence in
tests/data/LICENSE-compose-spec-Apache-2.0).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from alerting.links import dashboard_url
from llmcost.cli import main
from llmcost.config import parse_config
from tests.support import monitoring_assets as assets
from tests.support.paths import DATA

SCHEMA = DATA / "compose-spec.json"
ENV_EXAMPLE = assets.REPO / ".env.example"
DOCKERFILE = assets.REPO / "Dockerfile"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}; $$ escapes a $.
INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>[^}]*)\}|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
)


@cache
def _compose() -> dict[str, Any]:
    return assets.load_yaml(assets.COMPOSE_FILE)


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def _interpolate(text: str, env: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group() == "$$":
            return "$"
        return env[match.group("braced") or match.group("plain")]

    return INTERPOLATION.sub(replace, text)


def _bind_sources() -> Iterator[tuple[str, str, str]]:
    """(service, host path, container path) for every bind mount."""
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source, target = volume.split(":")[:2]
                if source.startswith((".", "/")):
                    yield name, source, target
            elif volume.get("type") == "bind":
                yield name, volume["source"], volume["target"]


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(_compose())
    ]
    assert errors == []


def test_services_are_the_whole_stack() -> None:
    assert set(_compose()["services"]) == {"llmcost", "postgres", "prometheus", "alertmanager", "grafana"}
    assert _compose()["services"]["postgres"]["image"].startswith("postgres:15")


def test_every_service_has_a_healthcheck_and_a_pinned_image() -> None:
    for name, service in _compose()["services"].items():
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"


def test_data_lives_in_named_volumes() -> None:
    declared = set(_compose()["volumes"])
    used = {
        volume.split(":")[0]
        for service in _compose()["services"].values()
        for volume in service.get("volumes", [])
        if isinstance(volume, str) and not volume.startswith((".", "/"))
    }
    assert used == declared == {"postgres-data", "prometheus-data", "alertmanager-data", "grafana-data"}


def test_every_mounted_file_and_directory_exists_in_the_repo() -> None:
    mounts = list(_bind_sources())
    assert mounts
    for service, source, _ in mounts:
        assert not source.startswith("/"), f"{service}: {source} is outside the repository"
        assert (assets.REPO / source).exists(), f"{service}: {source} does not exist"
    for kind in ("configs", "secrets"):
        for name, entry in _compose().get(kind, {}).items():
            if "file" in entry:
                assert (assets.REPO / entry["file"]).exists(), f"{kind}.{name}: {entry['file']}"


def test_llmcost_is_built_from_the_repo_dockerfile() -> None:
    service = _compose()["services"]["llmcost"]
    assert service["build"] == "."
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    assert re.search(r"^RUN pip install \.", text, re.MULTILINE)
    assert 'ENTRYPOINT ["llmcost"]' in text
    for source in re.findall(r"^COPY (.+) \S+$", text, re.MULTILINE):
        for path in source.split():
            if path != "README.md":  # required by pyproject.toml; written with the project docs
                assert list(assets.REPO.glob(path)), path  # a path or a glob (docs/*.md)
    command = service["command"]
    assert command[0] == "serve"
    assert "--db" not in command  # the URL, password included, is in the mounted config
    assert command[command.index("--listen") + 1] == "0.0.0.0:9800"


def test_every_variable_is_defined_in_env_example() -> None:
    text = assets.COMPOSE_FILE.read_text(encoding="utf-8")
    used = {m.group("braced") or m.group("plain") for m in INTERPOLATION.finditer(text) if m.group() != "$$"}
    used |= {secret["environment"] for secret in _compose()["secrets"].values() if "environment" in secret}
    defined = _env_example()
    assert used, "compose reads its secrets from .env"
    assert used <= set(defined), f"missing from .env.example: {sorted(used - set(defined))}"
    assert set(defined) <= used, f"unused in docker-compose.yml: {sorted(set(defined) - used)}"


def test_env_example_ships_placeholders_not_secrets() -> None:
    for name, value in _env_example().items():
        assert value.startswith("change-me"), f"{name} must be a placeholder"
    assert not (assets.REPO / ".env").exists() or ".env" in (assets.REPO / ".gitignore").read_text(encoding="utf-8")


def test_secrets_never_appear_in_plain_environment_values() -> None:
    for name, service in _compose()["services"].items():
        environment = service.get("environment", {})
        for key, value in environment.items():
            if re.search(r"PASSWORD|TOKEN|SECRET|KEY", key):
                assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), f"{name}: {key}"


def test_no_secret_is_on_a_command_line() -> None:
    """A command line is visible to every user of the host (`ps`); the database password went there."""
    for name, service in _compose()["services"].items():
        for argument in service.get("command", []):
            assert not re.search(r"\$\{\w*(PASSWORD|TOKEN|SECRET|KEY)", str(argument)), f"{name}: {argument}"


def test_llmcost_reads_its_database_url_from_the_mounted_config() -> None:
    content = _compose()["configs"]["llmcost-config"]["content"]
    config = yaml.safe_load(_interpolate(content, _env_example()))
    url = config["database"]["url"]
    assert url == f"postgresql+psycopg://llmcost:{_env_example()['POSTGRES_PASSWORD']}@postgres:5432/llmcost"


def test_published_ports_bind_to_loopback_only() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_llmcost_config_sets_every_token_from_the_environment() -> None:
    content = _compose()["configs"]["llmcost-config"]["content"]
    config = yaml.safe_load(_interpolate(content, _env_example()))
    assert config["auth"] == {
        "ingest_tokens": ["change-me-ingest"],
        "admin_tokens": ["change-me-admin"],
        "webhook_tokens": ["change-me-webhook"],
    }
    service = _compose()["services"]["llmcost"]
    [mount] = service["configs"]
    assert mount["source"] == "llmcost-config"
    assert service["command"][service["command"].index("--config") + 1] == mount["target"]


def test_alertmanager_webhook_reaches_llmcost_with_the_shared_token() -> None:
    config = assets.load_yaml(assets.ALERTMANAGER_CONFIG)
    compose = _compose()
    webhooks = [hook for receiver in config["receivers"] for hook in receiver.get("webhook_configs", [])]
    assert webhooks
    for hook in webhooks:
        url = urlsplit(hook["url"])
        assert (url.hostname, url.port, url.path) == ("llmcost", 9800, "/v1/alertmanager")
        path = Path(hook["http_config"]["authorization"]["credentials_file"])
        assert path.parent == Path("/run/secrets")
        assert path.name in compose["services"]["alertmanager"]["secrets"]
        # The file Alertmanager reads holds the token llmcost accepts on /v1/alertmanager.
        assert compose["secrets"][path.name]["environment"] == "LLMCOST_WEBHOOK_TOKEN"
    assert "${LLMCOST_WEBHOOK_TOKEN" in compose["configs"]["llmcost-config"]["content"]


@pytest.mark.parametrize(
    ("service", "directory", "config_flag"),
    [
        ("prometheus", "./prometheus", "--config.file=/etc/prometheus/prometheus.yml"),
        ("alertmanager", "./alertmanager", "--config.file=/etc/alertmanager/alertmanager.yml"),
    ],
)
def test_prometheus_and_alertmanager_read_the_repo_configs(service: str, directory: str, config_flag: str) -> None:
    spec = _compose()["services"][service]
    mount = next(target for name, source, target in _bind_sources() if name == service and source == directory)
    assert config_flag in spec["command"]
    config_path = config_flag.split("=", 1)[1]
    assert config_path.startswith(f"{mount}/")
    assert (assets.REPO / directory / Path(config_path).relative_to(mount)).is_file()


def test_scrape_targets_and_datasource_point_at_compose_services() -> None:
    services = _compose()["services"]
    config = assets.load_yaml(assets.PROMETHEUS_CONFIG)
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    targets += [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    for target in targets:
        host = target.split(":")[0]
        assert host == "localhost" or host in services, target
    datasource = assets.load_yaml(assets.GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    assert urlsplit(datasource["datasources"][0]["url"]).hostname in services
    mounts = {(name, target) for name, _, target in _bind_sources()}
    assert ("grafana", "/etc/grafana/provisioning") in mounts


@pytest.mark.parametrize("service", ["prometheus", "alertmanager"])
def test_links_prometheus_and_alertmanager_put_in_alerts_open_from_the_host(service: str) -> None:
    """Without --web.external-url each links to http://<container id>:<port>: the Source button of every
    rule alert in Slack, PagerDuty's client_url and mail (Prometheus' generatorURL), and the links of
    Alertmanager's own notifications (the llmcost-fallback receiver)."""
    spec = _compose()["services"][service]
    [published] = spec["ports"]
    host, host_port, _container_port = published.split(":")
    flags = [arg for arg in spec["command"] if arg.startswith("--web.external-url=")]
    assert flags == [f"--web.external-url=http://localhost:{host_port}"], spec["command"]
    assert host == "127.0.0.1"


def test_the_image_installs_every_data_file_of_the_packages() -> None:
    # The Dockerfile's `pip install .` (and `pip install llmcost`) installs what `package-data` lists; the
    # licence of the bundled Azure trace (CC-BY-4.0, whose terms travel with the data) matched no pattern,
    # so the installed demo shipped the trace without it. Every package directory is a package
    # (setuptools finds namespace packages), so a pattern is matched against the file's name in it.
    import fnmatch
    import tomllib

    setuptools = tomllib.loads((assets.REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns: dict[str, list[str]] = setuptools["package-data"]
    left_out = []
    for root in ("exporter", "alerting", "llmcost"):
        for path in sorted((assets.REPO / root).rglob("*")):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            package = ".".join(path.parent.relative_to(assets.REPO).parts)
            wanted = [*patterns.get("*", []), *patterns.get(package, [])]
            if not any(fnmatch.fnmatch(path.name, pattern) for pattern in wanted):
                left_out.append(str(path.relative_to(assets.REPO)))
    assert left_out == []


def test_alerts_and_the_console_link_to_the_published_grafana() -> None:
    """The stack runs Grafana with the dashboards, but llmcost's config had no `grafana_url`: budget and spike
    alerts came without their Dashboard link, and the console without its Grafana link. Read as llmcost reads
    it, the config now links a budget alert to the Budgets dashboard on Grafana's published port."""
    secrets = {name: f"{index:02d}" * 16 for index, name in enumerate(_env_example())}  # .env filled in
    content = _interpolate(_compose()["configs"]["llmcost-config"]["content"], secrets)
    config = parse_config(yaml.safe_load(content))
    [published] = _compose()["services"]["grafana"]["ports"]
    _host, host_port, _container_port = published.split(":")
    link = urlsplit(dashboard_url(config, "LLMBudgetExceeded", {"budget": "daily-total"}))
    assert (link.scheme, link.hostname, link.port) == ("http", "localhost", int(host_port))
    uids = {json.loads(path.read_text(encoding="utf-8"))["uid"] for path in assets.DASHBOARDS_DIR.glob("*.json")}
    assert link.path.removeprefix("/d/") in uids
    assert link.query == "var-budget=daily-total"


def test_docs_apply_a_changed_inline_config_by_recreating_the_container() -> None:
    """llmcost's config is inline in the compose file, written into the container when Compose creates it.
    The runbook said to apply a new budget limit with `docker compose kill -s HUP llmcost`, which reloads
    that old copy (so does a restart, and a plain `up -d` does not recreate the container for it): no
    page sends a signal or a restart to the stack's llmcost; the runbook recreates the container."""
    assert "content" in _compose()["configs"]["llmcost-config"]
    stale = re.compile(r"docker compose (?:kill|restart)\b[^`\n]*\bllmcost\b")
    pages = [assets.COMPOSE_FILE, assets.REPO / "README.md", *sorted((assets.REPO / "docs").glob("*.md"))]
    found = [f"{page.name}: {m.group()}" for page in pages for m in stale.finditer(page.read_text(encoding="utf-8"))]
    assert found == []
    runbook = assets.RUNBOOK.read_text(encoding="utf-8")
    assert "docker compose up -d --force-recreate llmcost" in runbook
    assert "#changing-llmcosts-config-in-the-compose-stack" in runbook


def test_the_rules_alerts_link_to_the_grafana_llmcost_links_to() -> None:
    """Prometheus loads the shipped rules (./prometheus is mounted): their alerts' Dashboard links open on the
    Grafana that llmcost's `grafana_url` names, so every alert of the stack opens its dashboard in one place."""
    content = _compose()["configs"]["llmcost-config"]["content"]
    grafana_url = yaml.safe_load(INTERPOLATION.sub("x", content))["grafana_url"]
    root = grafana_url.split("/d/", 1)[0]
    assert ("prometheus", "./prometheus", "/etc/prometheus") in set(_bind_sources())
    for rule in assets.alerting_rules():
        assert rule["annotations"]["dashboard_url"].startswith(f"{root}/d/"), rule["alert"]


def test_check_config_warns_of_the_postgres_password_placeholder_without_printing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `cp .env.example .env`, the tokens replaced (refused while placeholders) but not POSTGRES_PASSWORD:
    # the stack ran its store with a password published in this repository, and check-config said OK.
    env = _env_example() | {name: f"{name.lower()}-0123456789abcdef" for name in _env_example() if "TOKEN" in name}
    config = tmp_path / "llmcost.yml"
    config.write_text(_interpolate(_compose()["configs"]["llmcost-config"]["content"], env))
    assert main(["check-config", str(config)]) == 0  # a warning: the database was created with it
    out = capsys.readouterr().out
    assert "OK, 1 warning(s)" in out
    assert "warning: database.url: its password is still the POSTGRES_PASSWORD placeholder" in out
    assert env["POSTGRES_PASSWORD"] not in out
    env["POSTGRES_PASSWORD"] = "0123456789abcdef0123456789abcdef"
    config.write_text(_interpolate(_compose()["configs"]["llmcost-config"]["content"], env))
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{config}: OK"  # the routing lines follow; no warning
    assert "  - warning:" not in out
