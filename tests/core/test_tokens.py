"""The tokenizer: what counts as a token, spacing on the way back, and defusing pings."""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from bot.core import tokens as tokens_module
from bot.core.tokens import CHANNEL, EVERYONE, PLACEHOLDERS, ROLE, USER, detokenize, neutralise, tokenize


def test_words_and_punctuation_split_and_rejoin_naturally() -> None:
    tokens = tokenize("Hello, world! Don't (really) stop... ok?")
    assert tokens == [
        "Hello",
        ",",
        "world",
        "!",
        "Don't",
        "(",
        "really",
        ")",
        "stop",
        ".",
        ".",
        ".",
        "ok",
        "?",
    ]
    assert detokenize(tokens) == "Hello, world! Don't (really) stop... ok?"


def test_urls_are_one_token_and_lose_trailing_punctuation() -> None:
    tokens = tokenize("see https://example.com/a?b=1&c=(2). then")
    assert tokens == ["see", "https://example.com/a?b=1&c=(2", ")", ".", "then"]
    assert detokenize(["go", "https://x.org/p", "."]) == "go https://x.org/p."


def test_custom_and_unicode_emoji_stay_whole() -> None:
    assert tokenize("nice <:pepe:123456789> 👍🏽 👨‍👩‍👧") == ["nice", "<:pepe:123456789>", "👍🏽", "👨‍👩‍👧"]


def test_mentions_become_placeholders_at_learning_time() -> None:
    tokens = tokenize("hi <@123> <@!45> <@&6> <#7> @everyone @here @bob:matrix.org @room")
    assert tokens == ["hi", USER, USER, ROLE, CHANNEL, EVERYONE, EVERYONE, USER, EVERYONE]
    assert not any(char.isdigit() for token in tokens for char in token)


@pytest.mark.parametrize(
    ("link", "placeholder"),
    [
        ("https://matrix.to/#/@bob:localhost", USER),
        ("http://MATRIX.TO/#/%40bob%3Aexample.org", USER),
        ("https://matrix.to/#/@bob:example.org:8448?via=example.org", USER),
        ("https://matrix.to/#/#room:example.org", CHANNEL),
        ("https://matrix.to/#/!abc:example.org/$event?via=x", CHANNEL),
    ],
)
@pytest.mark.parametrize("tail", ["", " café"])  # the ASCII fast path, and the Unicode grammar
def test_matrix_to_links_become_placeholders(link: str, placeholder: str, tail: str) -> None:
    tokens = tokenize(f"ask {link}, then{tail}")
    assert tokens == ["ask", placeholder, ",", "then", *tail.split()]
    assert "matrix.to" not in detokenize(tokens)


def test_other_links_stay_whole() -> None:
    assert tokenize("see https://matrix.to/#/ and https://example.org/#/@bob:x") == [
        "see",
        "https://matrix.to/#/",
        "and",
        "https://example.org/#/@bob:x",
    ]


def test_code_blocks_are_not_learned() -> None:
    assert tokenize("before ```python\nsecret = 1\n``` after") == ["before", "after"]
    assert tokenize("open ```never closed") == ["open"]


def test_zalgo_and_marks_stay_in_their_word() -> None:
    assert tokenize("z̸̢͓algo ok") == ["z̸̢͓algo", "ok"]


def test_invisible_and_control_characters_are_dropped() -> None:
    assert tokenize("a\u200bb\u202e c\x00d") == ["a", "b", "c", "d"]


def test_overlong_tokens_are_dropped_not_truncated() -> None:
    assert tokenize("x" * 500 + " fine") == ["fine"]


def test_empty_and_whitespace_give_no_tokens() -> None:
    assert tokenize("") == []
    assert tokenize(" \n\t ") == []


def test_placeholders_render_as_text_that_cannot_ping() -> None:
    text = detokenize(["hi", USER, EVERYONE, ROLE, CHANNEL])
    assert "@everyone" not in text
    assert "<@" not in text


@settings(max_examples=2000, deadline=None)
@given(st.text())
@example("¿ \U0001cf00")  # a combining mark after opening punctuation must not fuse with it
def test_round_trip_through_text_keeps_the_tokens(text: str) -> None:
    tokens = tokenize(text)
    assume(not PLACEHOLDERS.intersection(tokens))
    assert tokenize(detokenize(tokens)) == tokens


@settings(max_examples=2000, deadline=None)
@given(st.text())
def test_tokens_are_never_empty_and_never_contain_whitespace(text: str) -> None:
    for token in tokenize(text):
        assert token
        assert not any(char.isspace() for char in token)


PING = re.compile(r"@(everyone|here|room)\b|<@[!&]?\d+>|<#\d+>", re.IGNORECASE)


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "@everyone",
                "@here",
                "@room",
                "<@123>",
                "<@&9>",
                "<#5>",
                "@\u200beveryone",
                "＠everyone",
                "@every\u200done",
                "@ｅｖｅｒｙｏｎｅ",
                "hi",
                " ",
                "`",
                "**",
                "\u202e",
            ]
        )
        | st.text(max_size=5)
    ).map("".join)
)
def test_neutralised_text_has_no_ping(text: str) -> None:
    assert not PING.search(neutralise(text))


_ASCII_PIECES = st.sampled_from(
    ["http://a.b/c", "https://x.y/z).", "ftp://h/p'", "<:e:1>", "<a:e_2:34>", "<@12>", "<@!3>", "<@&4>",
     "<#5>", "@everyone", "@HERE", "@roomy", "@u:h.org", "@u:h:80", "don't", "x-ray", "a_b", "'", "-",
     "```c```", "\r\n", "\t", " ", "...", "%", "`", "~", "https://matrix.to/#/@b:l", "http://matrix.to/#/%40b",
     "https://matrix.to/#/#r:l.", "https://matrix.to/#/!r:l?via=l", "https://matrix.to/#/x"]
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.one_of(_ASCII_PIECES, st.text(st.characters(max_codepoint=127))), max_size=12))
def test_the_ascii_fast_path_tokenizes_exactly_like_the_unicode_grammar(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert text.isascii()
    from bot.core import tokens

    cleaned = tokens._JUNK.sub(" ", tokens._CODE_BLOCK.sub(" ", text))
    fast = [(m.lastgroup, m.group()) for m in tokens._ASCII_TOKEN.finditer(cleaned)]
    slow = [(m.lastgroup, m.group()) for m in tokens._TOKEN.finditer(cleaned)]
    assert fast == slow
    placeholders = {**tokens._PLACEHOLDER_OF, "user": USER, "role": ROLE, "channel": CHANNEL}
    reference = [
        placeholders.get(kind or "", token)
        for kind, token in slow
        if len(token) <= tokens.MAX_TOKEN_CHARS or kind in placeholders
    ]
    assert tokenize(text) == reference


_PLAIN_PIECES = st.sampled_from(
    ["don't", "x-ray", "a_b", "'", "-", "...", "%", "`", "~", ":/", "//", "\t", " ", "\x01", "w" * 201,
     "ab" * 100, "1.5", "e.g.", "a--b", "a'-b", "?!"]
)  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.one_of(_PLAIN_PIECES, st.text(st.characters(max_codepoint=127, exclude_characters="<@"))),
        max_size=12,
    )
)
def test_plain_ascii_text_tokenizes_as_the_whole_grammar_would(pieces: list[str]) -> None:
    text = "".join(pieces)
    from bot.core import tokens

    cleaned = tokens._JUNK.sub(" ", tokens._CODE_BLOCK.sub(" ", text))
    whole = [m.group() for m in tokens._TOKEN.finditer(cleaned)]
    assert tokenize(text) == [token for token in whole if len(token) <= tokens.MAX_TOKEN_CHARS]


def test_a_prepended_mark_before_a_space_is_not_a_token_with_a_space() -> None:
    assert tokenize("\u0890 x") == ["\u0890", "x"]
    assert tokenize("a \u0600 b") == ["a", "\u0600", "b"]


def test_every_junk_character_is_unprintable_so_printable_text_is_never_cleaned_in_vain() -> None:
    # tokenize skips the junk pass for text that str.isprintable() passes: exact only if no
    # character the junk patterns drop is printable. Checked for every code point.
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    for junk in (tokens_module._JUNK, tokens_module._ASCII_JUNK):
        dropped = junk.findall(every)
        assert dropped, junk.pattern
        assert not any(c.isprintable() for c in dropped)
    assert tokenize("a\tb\x7fc\u200bd\ufeffe") == ["a", "b", "c", "d", "e"]
