"""Text to tokens and back.

A token is one of: a word (letters, digits and marks, with inner apostrophes or
hyphens), a URL, a custom emoji (``<:name:id>``), a mention placeholder, or a single
grapheme of anything else (punctuation, emoji).  Mentions, and matrix.to links to users or
rooms, are replaced by neutral placeholders when learning, so a chain never holds a user, role
or channel id.
"""

from __future__ import annotations

import logging
import re
import unicodedata

import regex

log = logging.getLogger(__name__)

#: Placeholders stored instead of mentions; no text can tokenize into one of these.
USER = "<@user>"
ROLE = "<@role>"
CHANNEL = "<#channel>"
EVERYONE = "<@everyone>"
PLACEHOLDERS = frozenset({USER, ROLE, CHANNEL, EVERYONE})

#: How placeholders read in generated text: plain words that cannot ping anyone.
_RENDERED = {
    USER: "@\u200bsomeone",
    ROLE: "@\u200bsome-role",
    CHANNEL: "#\u200bsome-channel",
    EVERYONE: "@\u200beveryone",
}

_CODE_BLOCK = regex.compile(r"```.*?(?:```|\Z)", regex.DOTALL)
# Lone surrogates, control characters and invisible direction/spacing marks carry no words.
_JUNK = regex.compile(r"[\p{Cs}\p{Cc}\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")

_TOKEN = regex.compile(
    r"""
    (?P<mxuser>https?://matrix\.to/\#/(?:@|%40)[^\s<>"]*[^\s<>".,!?;:)\]}%…»'’”*_~|`])
  | (?P<mxroom>https?://matrix\.to/\#/(?:[\#!]|%23|%21)[^\s<>"]*[^\s<>".,!?;:)\]}%…»'’”*_~|`])
  | (?P<url>(?:https?|ftp)://[^\s<>"]*[^\s<>".,!?;:)\]}%…»'’”*_~|`])
  | (?P<emoji><a?:\w{1,32}:\d{1,20}>)
  | (?P<user><@!?\d{1,20}>|@[a-z0-9._=/+-]+:[a-z0-9.-]+(?::\d+)?)
  | (?P<role><@&\d{1,20}>)
  | (?P<channel><\#\d{1,20}>)
  | (?P<everyone>@(?:everyone|here|room)\b)
  | (?P<word>(?:(?=\w)\X)+(?:['’\-](?:(?=\w)\X)+)*)
  | (?P<other>(?!\s)\X)
    """,
    regex.VERBOSE | regex.IGNORECASE,
)

# The same grammar for ASCII-only text (most messages), where a grapheme is one character: the
# stdlib engine runs it about ten times faster than \X with lookaheads. A test holds the two equal.
_ASCII_TOKEN = re.compile(
    r"""
    (?P<mxuser>https?://matrix\.to/\#/(?:@|%40)[^\s<>"]*[^\s<>".,!?;:)\]}%*_~|`'])
  | (?P<mxroom>https?://matrix\.to/\#/(?:[\#!]|%23|%21)[^\s<>"]*[^\s<>".,!?;:)\]}%*_~|`'])
  | (?P<url>(?:https?|ftp)://[^\s<>"]*[^\s<>".,!?;:)\]}%*_~|`'])
  | (?P<emoji><a?:\w{1,32}:\d{1,20}>)
  | (?P<user><@!?\d{1,20}>|@[a-z0-9._=/+-]+:[a-z0-9.-]+(?::\d+)?)
  | (?P<role><@&\d{1,20}>)
  | (?P<channel><\#\d{1,20}>)
  | (?P<everyone>@(?:everyone|here|room)\b)
  | (?P<word>\w+(?:['\-]\w+)*)
  | (?P<other>\S)
    """,
    re.VERBOSE | re.IGNORECASE | re.ASCII,
)

_ASCII_JUNK = re.compile(r"[\x00-\x1f\x7f]")  # _JUNK's ASCII part: the control characters
# ASCII text with no "<", "@" or "://" can hold only words and single characters: the two last
# alternatives of _ASCII_TOKEN, found without a group's name to look up (twice as fast).
_ASCII_PLAIN = re.compile(r"\w+(?:['\-]\w+)*|\S", re.ASCII)

# A matrix.to link names a user (or a room) as surely as a mention does: it is learned as one.
_PLACEHOLDER_OF = {
    "user": USER,
    "mxuser": USER,
    "role": ROLE,
    "channel": CHANNEL,
    "mxroom": CHANNEL,
    "everyone": EVERYONE,
}

# Zero-width and formatting characters that can hide an @everyone from a naive filter.
_INVISIBLE = regex.compile(r"[\p{Cf}\p{Mn}\u115f\u1160\u3164\uffa0]+")
_PING = regex.compile(r"@(?=everyone|here|room)|<(?=[@#][!&]?\d)", regex.IGNORECASE)

_GRAPHEME = regex.compile(r"\X")
_NO_SPACE_BEFORE = frozenset(",.!?;:)]}%…»”’")
_NO_SPACE_AFTER = frozenset("([{«“¿¡")

MAX_TOKEN_CHARS = 200


def tokenize(text: str) -> list[str]:
    """Split text into tokens; code blocks are dropped and mentions become placeholders."""
    if "```" in text:
        text = _CODE_BLOCK.sub(" ", text)
    grammar: re.Pattern[str] | regex.Pattern[str]
    if text.isascii():
        if not text.isprintable():  # the junk is unprintable: most text has none (a sub cost 40% of this)
            text = _ASCII_JUNK.sub(" ", text)
        if "<" not in text and "@" not in text and "://" not in text:
            plain: list[str] = _ASCII_PLAIN.findall(text)
            if len(text) <= MAX_TOKEN_CHARS:
                return plain
            return [token for token in plain if len(token) <= MAX_TOKEN_CHARS]
        grammar = _ASCII_TOKEN
    else:
        text, grammar = (text if text.isprintable() else _JUNK.sub(" ", text)), _TOKEN
    tokens: list[str] = []
    for match in grammar.finditer(text):
        kind = match.lastgroup
        if kind in _PLACEHOLDER_OF:
            tokens.append(_PLACEHOLDER_OF[kind])
        elif len(match.group()) <= MAX_TOKEN_CHARS:  # longer "words" are noise, not language
            # A prepended mark (U+0890, U+0600...) begins a grapheme that takes in the space after it.
            tokens.extend(match.group().split() if kind == "other" else (match.group(),))
    return tokens


def detokenize(tokens: list[str]) -> str:
    """Join tokens with natural spacing; placeholders render as harmless text."""
    parts: list[str] = []
    previous = ""
    for token in tokens:
        shown = _RENDERED.get(token, token)
        glue = token in _NO_SPACE_BEFORE or previous in _NO_SPACE_AFTER
        if parts and not (glue and not _fuses(previous, shown)):
            parts.append(" ")
        parts.append(shown)
        previous = token
    return "".join(parts)


def _fuses(left: str, right: str) -> bool:
    """True when the two would join into one grapheme (a combining mark after '¿'), so need a space."""
    return len(_GRAPHEME.findall(left[-1:] + right[:1])) < 2


def neutralise(text: str) -> str:
    """Defuse anything that could ping: @everyone/@here/@room (however disguised) and <@id> mentions."""
    folded = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))
    if folded != text and _PING.search(folded):
        # A disguised ping: show the folded text, defused, rather than the disguise.
        text = folded
    defused: str = _PING.sub(lambda m: m.group() + "\u200b", text)
    return defused
