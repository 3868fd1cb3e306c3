"""Where the tests find the repository and their recorded data, wherever a test file sits."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository root (the shipped assets, docs/, bench/ and the Makefile live here)."""

DATA = REPO / "tests" / "data"
"""Recorded inputs shared by every layer: provider usage objects, price files, the Compose schema."""

RECORDED_USAGE = DATA / "recorded-usage" / "usage_records.jsonl"
"""718 usage objects recorded from real provider APIs (see tests/data/recorded-usage/LICENSE)."""
