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
# Characters that show something other than what the text holds: bidi controls (U+202E turns "gnissecorp"
# into "processing" on screen) and every other Default_Ignorable_Code_Point of Unicode's
# DerivedCoreProperties.txt (zero-width characters, variation selectors, Hangul fillers, tag characters,
# the soft hyphen: renderers draw them as nothing, so `sea\ufe0frch` reads as `search`), plus the
# interlinear annotation characters U+FFF9-U+FFFB, which are not default ignorable but draw as nothing
# too. The standard library has no such property (the `regex` module does, but is no runtime dependency
# of ours); the table is Unicode 15's, which reserves these ranges for ignorables in later versions too.
_IGNORABLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff"
)
# A subdivision flag (🏴 England, Scotland, Wales) is a black flag, tag letters and a cancel tag: kept whole.
_TAG_FLAG = "\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f"
_INVISIBLE = re.compile(f"{_TAG_FLAG}|[{_IGNORABLE}]")
_ZWJ: Final = "\u200d"
_VS15: Final = "\ufe0e"  # text presentation: ☺︎
_VS16: Final = "\ufe0f"  # emoji presentation, as in the rainbow flag: white flag, VS16, ZWJ, rainbow
_KEYCAP: Final = "\u20e3"  # 1️⃣ is "1", VS16, combining enclosing keycap
_KEYCAP_BASES: Final = frozenset("0123456789#*")
# Emoji that take a presentation selector but are no symbol (So) nor math symbol (Sm) to unicodedata:
# ‼ ⁉ ℹ 〰 〽 (Unicode's emoji-variation-sequences.txt).
_OTHER_VARIATION_BASES: Final = frozenset("\u203c\u2049\u2139\u3030\u303d")


def visible(text: str) -> str:
    """Show bidi controls and other invisible characters as `[U+202E]`, so a name reads as what it holds.

    What draws as nothing (zero-width characters, variation selectors, Hangul fillers, tag characters) is
    shown, except where it is part of an emoji: a zero-width joiner between two (👨+ZWJ+👩+ZWJ+👧 for a
    family, 🏳️+ZWJ+🌈 for the rainbow flag), a presentation selector after one (❤️, ☺️, the keycap 1️⃣)
    and the tags of a subdivision flag (🏴 England, Scotland, Wales).

    Alertmanager's labels and annotations are whatever its rules and targets say; an on-call person must
    not read `search` for a label that holds something else. Only what people read changes: fingerprints,
    silences and PagerDuty's `custom_details` keep the values as received.
    """
    return _INVISIBLE.sub(_shown, text)


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def terminal_text(text: str) -> str:
    """`text` fit for a terminal: control characters shown as `[U+001B]`, then what `visible` shows.

    A terminal acts on what it is sent: an escape sequence in an Alertmanager label clears the screen,
    retitles the window or moves the cursor to draw a row that is not there, a newline starts a row of its
    own, and C1 controls (U+009B) are escape sequences to some terminals. For the command line's tables.
    """
    return _UNPRINTABLE.sub(lambda match: f"[U+{ord(match.group()):04X}]", visible(text))


def _shown(match: re.Match[str]) -> str:
    char = match.group()
    if len(char) > 1:  # a subdivision flag
        return char
    if char == _ZWJ and _joins_emoji(match.string, match.start()):
        return char
    if char in (_VS15, _VS16) and _selects_emoji(match.string, match.start()):
        return char
    return f"[U+{ord(char):04X}]"


def _joins_emoji(text: str, at: int) -> bool:
    """Whether the ZWJ at `at` joins two emoji (👨+ZWJ+👩, 🏳️+ZWJ+🌈, 🧑🏽+ZWJ+💻): part of a name, not a spoof.

    Between letters a ZWJ is invisible and makes two names read alike, so it stays shown there.
    """
    before = text[at - 1] if at > 0 else ""
    if before == _VS16 and at > 1:
        before = text[at - 2]
    after = text[at + 1] if at + 1 < len(text) else ""
    return _pictographic(before) and _pictographic(after)


def _selects_emoji(text: str, at: int) -> bool:
    """Whether the presentation selector at `at` follows an emoji (❤️, ☺︎, ↔️, 1️⃣), where it picks a glyph.

    After a letter (`sea` VS16 `rch`) it draws as nothing and makes two names read alike.
    """
    before = text[at - 1] if at > 0 else ""
    if before in _KEYCAP_BASES:
        return text[at + 1 : at + 2] == _KEYCAP
    return (
        _pictographic(before)
        or (bool(before) and unicodedata.category(before) == "Sm")
        or (before in _OTHER_VARIATION_BASES)
    )


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
