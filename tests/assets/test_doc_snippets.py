"""The snippets of README.md and docs/ work as a newcomer pastes them.

- Every link from one doc to another (or to a file of the repository) opens, at its section.
- Every ```yaml block that is an llmcost config (or a price overrides file) passes `llmcost check-config`.
  Blocks of other programs' files (LiteLLM, the OpenTelemetry Collector, Prometheus) are told apart by
  their top-level keys, which llmcost does not know; a block mixing both fails.
- Every `curl` to llmcost in a ```sh or ```bash block, run as written against a real `llmcost serve`
  (only its address changed; a file it posts, `@calls.jsonl`, is in its working directory), answers JSON
  that is not an error, and the answer shown under it when the block shows one without `...`.

The PromQL blocks are checked in tests/assets/test_prometheus_rules.py (parse, known metrics) and
tests/e2e/test_live_stack.py (data on a live Prometheus).
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from llmcost.cli import main
from tests.support.monitoring_assets import markdown_anchors
from tests.support.paths import REPO
from tests.support.procs import LlmcostProcess

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Snippet:
    """One fenced block of a doc, named by file and line for failure messages."""

    where: str
    lang: str
    body: str


def snippets(*langs: str) -> list[Snippet]:
    """Every fenced block of README.md and docs/*.md in one of `langs`."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for block in _BLOCK.finditer(text):
            if block.group("lang") in langs:
                line = text.count("\n", 0, block.start()) + 2
                body = textwrap.dedent(block.group("body"))  # a block indented inside a list item
                found.append(Snippet(f"{path.relative_to(REPO)}:{line}", block.group("lang"), body))
    return found


# --- links ---------------------------------------------------------------------------------------------


def test_every_link_between_the_docs_opens_a_file_and_its_section() -> None:
    broken = []
    for path in DOCS:
        prose = _BLOCK.sub("", path.read_text(encoding="utf-8"))
        for link in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", link):  # https:, http:, mailto:
                continue
            target, _, section = link.partition("#")
            file = (path.parent / target).resolve() if target else path
            if not file.exists() or (section and file.suffix == ".md" and section not in markdown_anchors(file)):
                broken.append(f"{path.relative_to(REPO)}: {link}")
    assert broken == []


# --- config blocks -------------------------------------------------------------------------------------

# Files a config block names that are on the reader's server, not here (their absence is the only problem
# allowed); relative files (prices.yml) are written beside the block from the docs' own examples.
_MISSING_SERVER_FILE = re.compile(r"cannot read (/\S+): No such file")


def _check_config(path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    capsys.readouterr()
    status = main(["check-config", str(path)])
    out = capsys.readouterr().out
    problems = [line[4:] for line in out.splitlines() if line.startswith("  - ")]
    assert (status == 0) == (not problems), out
    return problems


def test_every_config_block_in_the_docs_passes_check_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = snippets("yaml")
    prices = [b for b in blocks if set(yaml.safe_load(b.body)) == {"prices"}]
    assert prices, "the docs show no price overrides file"
    (tmp_path / "prices.yml").write_text(prices[0].body, encoding="utf-8")
    checked, others = [], []
    for block in blocks:
        # Secrets given as `<key>_env: NAME` are set, as the reader's environment would have them.
        for name in re.findall(r"_env:\s*([A-Z][A-Z0-9_]*)", block.body):
            value = f"sqlite:///{tmp_path / 'x.db'}" if "DB_URL" in name else "s3cret-value-0123456789"
            value = "R" * 32 if "ROUTING_KEY" in name else value  # an integration key is 32 characters
            monkeypatch.setenv(name, value)
        path = tmp_path / "llmcost.yml"
        if block in prices:
            (tmp_path / "block-prices.yml").write_text(block.body, encoding="utf-8")
            path.write_text("pricing: {overrides_file: block-prices.yml}\n", encoding="utf-8")
        else:
            path.write_text(block.body, encoding="utf-8")
        problems = _check_config(path, capsys)
        unknown = [p for p in problems if ": unknown section (known: " in p]
        keys = set(yaml.safe_load(block.body))
        if unknown and len(unknown) == len(keys):
            others.append(block.where)  # another program's file: LiteLLM, the Collector, Prometheus
            continue
        real = [p for p in problems if not _MISSING_SERVER_FILE.search(p)]
        assert real == [], f"{block.where}: llmcost check-config finds problems in\n{block.body}"
        checked.append(block.where)
    assert len(checked) >= 10, checked
    assert all(not where.startswith("docs/configuration.md") for where in others), others


# --- curl against llmcost ------------------------------------------------------------------------------

_LLMCOST_ADDRESS = re.compile(r"(?:http://)?(?:127\.0\.0\.1|localhost):9800")
# Placeholders of the runbook's commands, filled as a reader would on this server.
_PLACEHOLDERS = {"<budget>": "search-daily", "<key>": "search", "<model>": "gpt-4o", "<name>": "search-weekly"}
_SERVER_CONFIG = {
    "budgets": [
        {"name": "search-daily", "scope": "project", "key": "search", "period": "daily", "limit": 50, "mode": "hard"},
        {"name": "per-project-daily", "scope": "project", "key": "*", "period": "daily", "limit": 200},
    ]
}


def curl_commands() -> list[tuple[str, str, str]]:
    """(where, command, answer shown under it or '') of every curl to llmcost in a shell block."""
    found = []
    for block in snippets("sh", "bash"):
        lines = block.body.splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].lstrip().startswith("curl ") or not _LLMCOST_ADDRESS.search(block.body):
                i += 1
                continue
            command = [lines[i]]
            quote = lines[i].count("'") % 2
            while lines[i].rstrip().endswith("\\") or quote:  # continued, or inside a quoted JSON body
                i += 1
                command.append(lines[i])
                quote = (quote + lines[i].count("'")) % 2
            i += 1
            shown = lines[i] if i < len(lines) and lines[i].startswith(("{", "[")) else ""
            if _LLMCOST_ADDRESS.search("\n".join(command)):
                found.append((block.where, "\n".join(command), shown))
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmcostProcess]:
    workdir = tmp_path_factory.mktemp("doc-snippets")
    (workdir / "llmcost.yml").write_text(yaml.safe_dump(_SERVER_CONFIG), encoding="utf-8")
    process = LlmcostProcess(f"sqlite:///{workdir / 'llmcost.db'}", config=workdir / "llmcost.yml")
    process.start(workdir)
    try:
        yield process
    finally:
        process.stop()


# The file a `--data-binary @calls.jsonl` posts: two events of the docs' shape, one a line.
_CALLS_JSONL = "".join(
    json.dumps(
        {
            "request_id": f"doc-file-{n}",
            "provider": "openai",
            "model": "gpt-4o",
            "input_tokens": 1200,
            "output_tokens": 80,
            "project": "search",
        }
    )
    + "\n"
    for n in range(2)
)


@pytest.mark.real_process
def test_every_curl_to_llmcost_in_the_docs_answers_as_shown(server: LlmcostProcess, tmp_path: Path) -> None:
    (tmp_path / "calls.jsonl").write_text(_CALLS_JSONL, encoding="utf-8")
    commands = curl_commands()
    assert {where.split(":")[0] for where, _, _ in commands} >= {"README.md", "docs/sending-data.md", "docs/runbook.md"}
    # A loopback server without tokens, as `llmcost serve` starts: the token headers the docs send pass.
    env = {"PATH": "/usr/bin:/bin", "LLMCOST_TOKEN": "", "ADMIN": "", "INGEST": ""}
    for where, command, shown in commands:
        runnable = _LLMCOST_ADDRESS.sub(server.base, command)
        for placeholder, value in _PLACEHOLDERS.items():
            runnable = runnable.replace(placeholder, value)
        result = subprocess.run(
            ["bash", "-c", runnable], capture_output=True, text=True, env=env, timeout=30, cwd=tmp_path
        )
        assert result.returncode == 0, f"{where}: {command}\n{result.stderr}"
        answer = json.loads(result.stdout)
        assert not (isinstance(answer, dict) and "error" in answer), f"{where}: {command}\n{result.stdout}"
        if shown and "..." not in shown:
            assert answer == json.loads(shown), f"{where}: {command}\nanswered {result.stdout}\nthe docs show {shown}"
