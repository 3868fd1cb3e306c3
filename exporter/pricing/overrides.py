"""User price overrides (private, negotiated or self-hosted prices): the YAML format and its validation.

The format is documented in `exporter.pricing`. Loading checks every entry and reports all problems
at once, each as `prices[INDEX].FIELD: reason`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from exporter.config import yaml_problem
from exporter.pricing.tariff import MEDIA_KINDS

MEDIA_PRICE_FIELDS = tuple(f"{kind}_per_mtok" for kind in MEDIA_KINDS)
"""The audio, image and video prices (`input_audio_per_mtok`, …), in the order of `tariff.MEDIA_KINDS`."""
AUDIO_PRICE_FIELDS = MEDIA_PRICE_FIELDS[:3]
PRICE_FIELDS = (
    "input_per_mtok",
    "output_per_mtok",
    "cache_read_per_mtok",
    "cache_write_per_mtok",
    *MEDIA_PRICE_FIELDS,
    "web_search_per_thousand",
    "file_search_per_thousand",
)
ENTRY_FIELDS = frozenset(("provider", "model", "valid_from", *PRICE_FIELDS))
_REQUIRED = ("provider", "model", "input_per_mtok", "output_per_mtok")
MAX_PRICE_PER_MTOK = Decimal(1000)
"""The largest price accepted. A call may carry up to 10^12 tokens of each kind (`MAX_TOKENS`), so
beyond ~$1,800 a call's cost in nano-dollars could overflow the 64-bit column, failing the whole batch
it was stored with; $1,000 is already well above any listed model, so a larger one is a typo."""


class PriceOverrideError(ValueError):
    """An override file that cannot be used; `problems` lists every bad entry and field."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        count = len(self.problems)
        super().__init__(f"{source}: {count} problem{'s' if count != 1 else ''} in price overrides:\n{lines}")


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """One user price: USD per million tokens for a provider/model pattern, from `valid_from` on."""

    provider: str
    """Provider name as sent in events, or a glob such as `*`; matched case-insensitively."""
    model: str
    """Model name as sent in events, or a glob such as `ft:gpt-4o*`; matched case-insensitively."""
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_read_per_mtok: Decimal | None = None
    """None = the input price."""
    cache_write_per_mtok: Decimal | None = None
    """None = the input price."""
    input_audio_per_mtok: Decimal | None = None
    """None = no audio price: audio input is charged the input price, and the event says so."""
    cache_read_audio_per_mtok: Decimal | None = None
    """None = no audio price: cached audio is charged the cache read price, and the event says so."""
    output_audio_per_mtok: Decimal | None = None
    """None = no audio price: audio output is charged the output price, and the event says so."""
    input_image_per_mtok: Decimal | None = None
    """None = no image price: image input is charged the input price (as most models bill it)."""
    cache_read_image_per_mtok: Decimal | None = None
    """None = no image price: cached images are charged the cache read price."""
    output_image_per_mtok: Decimal | None = None
    """None = no image price: generated images are charged the output price, and the event says so."""
    input_video_per_mtok: Decimal | None = None
    """None = no video price: video input is charged the input price (as most models bill it)."""
    cache_read_video_per_mtok: Decimal | None = None
    """None = no video price: cached video is charged the cache read price."""
    output_video_per_mtok: Decimal | None = None
    """None = no video price: generated video is charged the output price, and the event says so."""
    web_search_per_thousand: Decimal | None = None
    """USD per 1,000 server-side web searches; None = searches are not charged."""
    file_search_per_thousand: Decimal | None = None
    """USD per 1,000 file searches (OpenAI's file search tool); None = file searches are not charged."""
    valid_from: datetime | None = None
    """Timezone-aware; None = always."""
    origin: str = ""
    """Where the entry was defined, e.g. `prices.yaml prices[3]` (shown by `PriceBook.describe`)."""


class _Loader(yaml.SafeLoader):
    """Safe YAML with timestamps kept as text: `valid_from` is parsed per entry (`_parse_valid_from`).

    PyYAML turns `2026-13-01` into a date itself and raises a bare ValueError for one that does not
    exist, which escaped as a traceback from every command reading the file.
    """


def _timestamp_as_text(loader: _Loader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]  # a timestamp node is a scalar


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def load_overrides(path: str | Path) -> list[PriceOverride]:
    """Read and validate an override file (`prices:` list at the top level)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceOverrideError(source, [f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise PriceOverrideError(source, [f"not valid YAML: {yaml_problem(exc)}"]) from None
    if document is None:
        return []
    if not isinstance(document, dict):
        problem = f"the file must be a mapping with a `prices` list, got {_kind(document)}"
        raise PriceOverrideError(source, [problem])
    unknown = sorted(str(key) for key in document if key != "prices")
    problems = [f"{key}: unknown top-level key (expected `prices`)" for key in unknown]
    try:
        overrides = parse_overrides(document.get("prices") or [], source=source)
    except PriceOverrideError as exc:
        problems += exc.problems
        overrides = []
    if problems:
        raise PriceOverrideError(source, problems)
    return overrides


def parse_overrides(entries: Any, *, source: str = "price overrides") -> list[PriceOverride]:
    """Validate already-parsed override entries (the list under `prices:`)."""
    if not isinstance(entries, list):
        raise PriceOverrideError(source, [f"prices: must be a list of entries, got {_kind(entries)}"])
    problems: list[str] = []
    overrides: list[PriceOverride] = []
    seen: dict[tuple[str, str, datetime | None], int] = {}
    for index, entry in enumerate(entries):
        where = f"prices[{index}]"
        override = _parse_entry(entry, where, f"{source} {where}", problems)
        if override is None:
            continue
        key = (override.provider.lower(), override.model.lower(), override.valid_from)
        if key in seen:
            problems.append(f"{where}: same provider, model and valid_from as prices[{seen[key]}]")
        else:
            seen[key] = index
        overrides.append(override)
    if problems:
        raise PriceOverrideError(source, problems)
    return overrides


def _parse_entry(entry: Any, where: str, origin: str, problems: list[str]) -> PriceOverride | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a mapping, got {_kind(entry)}")
        return None
    before = len(problems)
    for key in sorted(str(key) for key in entry if key not in ENTRY_FIELDS):
        problems.append(f"{where}.{key}: unknown field (expected one of {', '.join(sorted(ENTRY_FIELDS))})")
    for key in _REQUIRED:
        if entry.get(key) is None:
            problems.append(f"{where}.{key}: is required")
    names: dict[str, str] = {}
    for key in ("provider", "model"):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            names[key] = value.strip()
        elif value is not None:
            problems.append(f"{where}.{key}: must be a non-empty string, got {value!r}")
    prices = {key: _parse_price(entry.get(key), f"{where}.{key}", problems) for key in PRICE_FIELDS}
    valid_from = _parse_valid_from(entry.get("valid_from"), f"{where}.valid_from", problems)
    if len(problems) > before:
        return None
    return PriceOverride(
        provider=names["provider"],
        model=names["model"],
        input_per_mtok=prices["input_per_mtok"],
        output_per_mtok=prices["output_per_mtok"],
        cache_read_per_mtok=prices["cache_read_per_mtok"],
        cache_write_per_mtok=prices["cache_write_per_mtok"],
        **{name: prices[name] for name in MEDIA_PRICE_FIELDS},
        web_search_per_thousand=prices["web_search_per_thousand"],
        file_search_per_thousand=prices["file_search_per_thousand"],
        valid_from=valid_from,
        origin=origin,
    )


def _parse_price(value: Any, where: str, problems: list[str]) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problems.append(f"{where}: must be a number ({_unit(where)}), got {_kind(value)}")
        return None
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{where}: must be a finite number, got {value}")
        return None
    try:
        # str() of a float is its shortest round-trip form: 0.2 stays 0.2, not 0.2000000000000000111.
        price = Decimal(str(value).strip())
    except InvalidOperation:
        problems.append(f"{where}: is not a number: {value!r}")
        return None
    if not price.is_finite() or price < 0:
        problems.append(f"{where}: must be a finite number >= 0, got {value!r}")
        return None
    if price > MAX_PRICE_PER_MTOK:
        problems.append(f"{where}: must be at most {MAX_PRICE_PER_MTOK} {_unit(where)}, got {value!r}")
        return None
    return price


def _parse_valid_from(value: Any, where: str, problems: list[str]) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            problems.append(f"{where}: must be a date (2025-01-01) or an RFC 3339 time, got {text[:64]!r}")
            return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    problems.append(f"{where}: must be a date (2025-01-01) or an RFC 3339 time, got {_kind(value)}")
    return None


def _unit(where: str) -> str:
    return "USD per 1,000 searches" if where.endswith("search_per_thousand") else "USD per million tokens"


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
