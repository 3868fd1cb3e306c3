"""`llmcost ingest --format csv` on a file with a quote that never closes, through the real command.

Defect: a cell opened with a quote that never closes read the rest of the file into that one record,
rejected for a reason far from the cause (`model: contains control characters`), and every good row after
it was lost. Now the row is rejected naming its line, the cell and how far the quote ran, and the lines
after it are read as rows of their own; quoted cells spanning lines (LiteLLM's spend logs, a JSON cell
written over several lines) are read as before.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.support.procs import LLMCOST

pytestmark = pytest.mark.real_process

HEADER = "request_id,timestamp,provider,model,input_tokens,output_tokens,project,metadata\n"


def row(rid: str, model: str = "gpt-4o-mini", metadata: str = "") -> str:
    return f"{rid},2026-12-01T10:00:00Z,openai,{model},100,10,search,{metadata}\n"


def ingest(tmp_path: Path, text: str) -> tuple[int, str, list[str]]:
    """Exit status, output, and the request ids stored, of `llmcost ingest --format csv` on `text`."""
    path, db = tmp_path / "calls.csv", tmp_path / "llmcost.db"
    path.write_text(text)
    done = subprocess.run(
        [*LLMCOST, "ingest", "--db", f"sqlite:///{db}", "--format", "csv", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    with sqlite3.connect(db) as conn:
        stored = sorted(rid for (rid,) in conn.execute("SELECT request_id FROM usage_events"))
    return done.returncode, done.stdout, stored


def test_a_quote_never_closed_rejects_its_row_and_the_rows_after_it_are_stored(tmp_path: Path) -> None:
    status, out, stored = ingest(
        tmp_path,
        HEADER
        + row("r1")  # line 2
        + row("r2", model='"gpt-4o-mini')  # line 3: the quote never closes
        + row("r3")
        + row("r4", metadata='"{""note"":\n""two lines""}"')  # lines 5-6: a quoted cell over two lines
        + row("r5"),  # line 7
    )
    assert status == 1
    assert "1 rejected" in out and "4 accepted" in out
    assert stored == ["r1", "r3", "r4", "r5"]
    assert (
        "record 2: line 3: model: the quote opening cell 4 on this line is never closed (a quoted cell ends with "
        "a quote followed by a comma or the line's end), so the cell ran over the next 2 lines, to line 5; this "
        "row is rejected and those lines are read as rows of their own" in out
    )


def test_a_quote_never_closed_up_to_the_end_of_the_file_says_so(tmp_path: Path) -> None:
    status, out, stored = ingest(tmp_path, HEADER + row("r1", model='"gpt-4o-mini') + row("r2") + row("r3"))
    assert status == 1 and stored == ["r2", "r3"]
    assert "record 1: line 2: model: the quote opening cell 4" in out
    assert "ran over the next 2 lines, to line 4 (the end of the file)" in out
