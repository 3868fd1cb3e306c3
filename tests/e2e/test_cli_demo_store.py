"""`llmcost demo --db URL` never pours its synthetic events and budgets into a store that holds data
(in-process, through `main`: the refusal comes before the demo binds its address)."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from llmcost.cli import main
from llmcost.services import open_services
from tests.support.helpers import make_config
from tests.support.pg import free_port


def demo(capsys: pytest.CaptureFixture[str], url: str) -> tuple[int, str]:
    # --duration bounds the run should the refusal ever fail to happen.
    code = main(["demo", "--db", url, "--listen", f"127.0.0.1:{free_port()}", "--duration", "1"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out + err


def test_demo_refuses_a_store_that_holds_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calls = tmp_path / "calls.jsonl"
    event = {"provider": "openai", "model": "gpt-4o", "input_tokens": 5, "output_tokens": 1, "timestamp": time.time()}
    calls.write_bytes(orjson.dumps(event) + b"\n")
    db = tmp_path / "mine.db"
    url = f"sqlite:///{db}"
    assert main(["ingest", "--db", url, str(calls)]) == 0
    capsys.readouterr()
    before = db.read_bytes()

    code, said = demo(capsys, url)
    assert code == 2
    assert f"refusing to use {url}: it already holds 1 event" in said
    assert "fresh path" in said
    assert "Serving on" not in said
    assert db.read_bytes() == before


def test_demo_refuses_a_store_that_holds_budgets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'budgets.db'}"
    open_services(make_config(url), start_writer=False).close()  # an empty store, then one budget in it
    argv = ["budgets", "create", "all-spend", "--db", url, "--scope", "global", "--limit", "10", "--period", "daily"]
    assert main(argv) == 0
    capsys.readouterr()
    code, said = demo(capsys, url)
    assert code == 2 and "it already holds 1 budget," in said


def test_demo_refuses_an_unusable_db_url(capsys: pytest.CaptureFixture[str]) -> None:
    code, said = demo(capsys, "garbage")
    assert code == 2 and "--db: is not a database URL" in said
