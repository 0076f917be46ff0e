"""bot.replies.render: the step every sent text goes through, on each platform."""

from __future__ import annotations

import re

from bot import replies
from bot.replies import CONSOLE, DISCORD, MATRIX, quote, render

PING = re.compile(r"@(everyone|here|room)\b|<@[!&]?\d+>|@[a-z0-9._=/+-]+:[a-z0-9.-]+", re.IGNORECASE)


def test_the_prefix_is_the_one_members_type_there() -> None:
    assert "`!markov optout`" in render(replies.OPTED_IN, MATRIX)
    assert "/markov" not in render(replies.OPTED_IN, MATRIX)
    assert "`/markov optout`" in render(replies.OPTED_IN, DISCORD)
    assert render("see https://example.org/markov", MATRIX) == "see https://example.org/markov"


def test_nothing_pings_or_draws_a_pill() -> None:
    text = "@room @everyone <@123> <@&4> @bob:example.org hi"
    for platform in (DISCORD, MATRIX, CONSOLE):
        assert not PING.search(render(text, platform))


def test_discord_channel_links_stay_links() -> None:
    assert render("Learning is now enabled in <#42>… ok", DISCORD) == "Learning is now enabled in <#42>… ok"


def test_length_is_capped_for_the_platform() -> None:
    assert len(render("x" * 10_000, DISCORD)) == 2000
    assert len(render("x" * 10_000, MATRIX)) == MATRIX.max_chars
    assert render("x" * 10_000, DISCORD).endswith("…")


def test_quoted_input_is_one_short_line() -> None:
    assert quote("a\nb") == "'a b'"
    long = quote("@room " * 2000)
    assert len(long) == replies.QUOTE_CHARS + 2 and long.endswith("…'")
    assert len(replies.unknown_command("@room " * 2000)) < 100
