"""Where the tests find the repository and their recorded data, wherever a test file sits."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
"""The repository root (the shipped assets, docs/, bench/ and the Makefile live here)."""

DATA = REPO / "tests" / "data"
"""Recorded inputs shared by every layer: provider usage objects, price files, the Compose schema."""

RECORDED_USAGE = DATA / "recorded-usage" / "usage_records.jsonl"
"""718 usage objects recorded from real provider APIs (see tests/data/recorded-usage/LICENSE)."""


def load_bench_script(stem: str) -> ModuleType:
    """`bench/<stem>.py` imported as module `stem` (bench/ is not a package; the scripts are run directly)."""
    spec = importlib.util.spec_from_file_location(stem, REPO / "bench" / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[stem] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module
