"""Make untrusted text (labels, annotations) safe for Slack mrkdwn and mail headers, and keep it in limits.

Labels and annotations come from budget names, model names and Alertmanager payloads: anyone who can name a
budget could otherwise ping `<!channel>`, smuggle a `<http://evil|link>` or inject a mail header.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Final, TypeVar

T = TypeVar("T")

# Slack's documented limits (Block Kit reference, chat.postMessage).
SLACK_HEADER_TEXT_MAX: Final = 150
SLACK_SECTION_TEXT_MAX: Final = 3000
SLACK_FIELD_TEXT_MAX: Final = 2000
SLACK_FIELDS_PER_SECTION: Final = 10
SLACK_BLOCKS_MAX: Final = 50
SLACK_BUTTON_TEXT_MAX: Final = 75
SLACK_BUTTON_URL_MAX: Final = 3000
SLACK_MESSAGE_TEXT_MAX: Final = 40_000

ELLIPSIS: Final = "…"

_MRKDWN_ENTITIES: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MRKDWN_SPECIAL = re.compile(r"[&<>]")
# An entity cut in half by truncation: "&", "&a", "&am", "&amp" (without the closing ";").
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
_WEB_URL = re.compile(r"(?i)https?://[^\s<>|\"']+")
# Bidi controls (U+202E turns "gnissecorp" into "processing" on screen) and zero-width characters (two
# labels that read alike): text that shows something other than what it holds.
_INVISIBLE = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_ZWJ: Final = "\u200d"
_VS16: Final = "\ufe0f"  # emoji presentation, as in the rainbow flag: white flag, VS16, ZWJ, rainbow


def visible(text: str) -> str:
    """Show bidi controls and zero-width characters as `[U+202E]`, so a name reads as what it holds.

    A zero-width joiner between two emoji is part of one (👨+ZWJ+👩+ZWJ+👧 for a family, 🏳️+ZWJ+🌈 for the
    rainbow flag) and stays as it is.

    Alertmanager's labels and annotations are whatever its rules and targets say; an on-call person must
    not read `search` for a label that holds something else. Only what people read changes: fingerprints,
    silences and PagerDuty's `custom_details` keep the values as received.
    """
    return _INVISIBLE.sub(_shown, text)


def _shown(match: re.Match[str]) -> str:
    if match.group() == _ZWJ and _joins_emoji(match.string, match.start()):
        return _ZWJ
    return f"[U+{ord(match.group()):04X}]"


def _joins_emoji(text: str, at: int) -> bool:
    """Whether the ZWJ at `at` joins two emoji (👨+ZWJ+👩, 🏳️+ZWJ+🌈, 🧑🏽+ZWJ+💻): part of a name, not a spoof.

    Between letters a ZWJ is invisible and makes two names read alike, so it stays shown there.
    """
    before = text[at - 1] if at > 0 else ""
    if before == _VS16 and at > 1:
        before = text[at - 2]
    after = text[at + 1] if at + 1 < len(text) else ""
    return _pictographic(before) and _pictographic(after)


def _pictographic(char: str) -> bool:
    # Python's unicodedata has no Emoji property: every element of Unicode's emoji ZWJ sequences is a
    # symbol (category So: 👨, ❤, ♀, 🌈), or in plane 1's emoji blocks, which also hold the skin tones
    # (🏽, Sk) and emoji newer than this Python's Unicode tables (unassigned to it, Cn).
    return bool(char) and (unicodedata.category(char) == "So" or 0x1F000 <= ord(char) <= 0x1FAFF)


def escape_mrkdwn(text: str) -> str:
    """Escape Slack's control characters so text shows as written and never pings, links or mentions.

    `&`, `<` and `>` are the only characters Slack asks apps to escape; with them escaped `<!channel>`,
    `<@U123>` and `<http://evil|click>` render literally; bidi and zero-width characters show (`visible`).
    Formatting characters (`*`, `_`, `~`, `` ` ``)
    have no escape in mrkdwn and are left alone: at worst they change emphasis.
    """
    return _MRKDWN_SPECIAL.sub(lambda m: _MRKDWN_ENTITIES[m.group()], visible(text))


def truncate(text: str, limit: int, marker: str = ELLIPSIS) -> str:
    """Cut `text` to at most `limit` characters, ending with `marker` when anything was cut."""
    if len(text) <= limit:
        return text
    if limit <= len(marker):
        return marker[:limit]
    return text[: limit - len(marker)].rstrip() + marker


def truncate_mrkdwn(text: str, limit: int, marker: str = ELLIPSIS) -> str:
    """Like `truncate`, for already escaped mrkdwn: never leaves half an entity such as `&am`."""
    if len(text) <= limit:
        return text
    cut = _PARTIAL_ENTITY.sub("", text[: max(limit - len(marker), 0)]).rstrip()
    return cut + marker


def split_overflow(items: Sequence[T], limit: int) -> tuple[list[T], int]:
    """Return the items that fit and how many did not; the last slot goes to a "+N more" note if needed."""
    if len(items) <= limit:
        return list(items), 0
    shown = max(limit - 1, 0)
    return list(items[:shown]), len(items) - shown


def more_note(hidden: int, noun: str) -> str:
    """Say how many items were left out: `+3 more labels`."""
    return f"+{hidden} more {noun}"


def web_url(value: str, limit: int = SLACK_BUTTON_URL_MAX) -> str:
    """Return `value` when it is a plausible http(s) URL to link to, else "" (no `javascript:` links)."""
    url = value.strip()
    if len(url) > limit or not _WEB_URL.fullmatch(url):
        return ""
    return url


def sanitize_header(value: str, limit: int = 200) -> str:
    """Make text safe as one mail header value: no CR/LF or other controls, single spaces, bounded."""
    flat = _CONTROL.sub(" ", visible(value))
    return truncate(_SPACES.sub(" ", flat).strip(), limit)
