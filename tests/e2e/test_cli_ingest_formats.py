"""`llmcost ingest FILE... --format auto|jsonl|csv|litellm|openai-usage|otel`, each value through the real command.

The contract names the six `--format` values; the readers behind them are tested in
`tests/exporter/test_readers.py`, this file runs the `llmcost` process an outside checker runs: every value is
accepted, stores what its file holds, counts a second load as duplicates (the same idempotency as the HTTP
API) and `auto` recognises every one of those files by itself.
"""

from __future__ import annotations

import re
import subprocess
from itertools import islice
from pathlib import Path

import pytest

from tests.support.paths import DATA, RECORDED_USAGE
from tests.support.procs import LLMCOST

pytestmark = pytest.mark.real_process

COUNTS = re.compile(r": (\d+) accepted, (\d+) duplicates, (\d+) rejected")


def _jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "calls.jsonl"
    path.write_text(
        '{"request_id": "j1", "provider": "openai", "model": "gpt-4o", "input_tokens": 100, "output_tokens": 10}\n'
        '{"request_id": "j2", "provider": "anthropic", "model": "claude-sonnet-4", "input_tokens": 5}\n'
    )
    return path


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "calls.csv"
    path.write_text("request_id,provider,model,input_tokens,output_tokens,project\nc1,openai,gpt-4o-mini,10,5,p\n")
    return path


def _openai_usage(tmp_path: Path) -> Path:
    path = tmp_path / "recorded.jsonl"
    with RECORDED_USAGE.open() as source:
        path.write_text("".join(islice(source, 20)))
    return path


FILES = {
    "jsonl": (_jsonl, 2),
    "csv": (_csv, 1),
    "litellm": (lambda _tmp: DATA / "normalize" / "litellm_standard_logging.jsonl", 3),
    "openai-usage": (_openai_usage, 20),
    "otel": (lambda _tmp: DATA / "normalize" / "otel_export.json", 2),
}


def ingest(db: Path, *argv: str) -> tuple[int, list[tuple[int, int, int]]]:
    """Exit status and the (accepted, duplicates, rejected) counts of each file `llmcost ingest` printed."""
    done = subprocess.run(
        [*LLMCOST, "ingest", "--db", f"sqlite:///{db}", *argv], capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in done.stdout + done.stderr
    files = [line for line in done.stdout.splitlines() if not line.startswith("total:")]
    found = [m.groups() for line in files if (m := COUNTS.search(line))]
    return done.returncode, [(int(a), int(d), int(r)) for a, d, r in found]


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_each_format_loads_its_file_and_a_second_load_is_duplicates(tmp_path: Path, fmt: str) -> None:
    make, records = FILES[fmt]
    path = str(make(tmp_path))
    db = tmp_path / "store.db"
    assert ingest(db, path, "--format", fmt) == (0, [(records, 0, 0)])
    assert ingest(db, path, "--format", fmt) == (0, [(0, records, 0)])


def test_auto_recognises_every_format(tmp_path: Path) -> None:
    paths = [str(make(tmp_path)) for make, _records in FILES.values()]
    code, counts = ingest(tmp_path / "store.db", *paths, "--format", "auto")
    assert code == 0
    assert counts == [(records, 0, 0) for _make, records in FILES.values()]
    # `auto` is the default.
    assert ingest(tmp_path / "store.db", *paths) == (0, [(0, records, 0) for _make, records in FILES.values()])


def test_an_unknown_format_is_refused_before_the_store_is_made(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    code, counts = ingest(db, str(_jsonl(tmp_path)), "--format", "parquet")
    assert (code, counts) == (2, [])
    assert not db.exists()
