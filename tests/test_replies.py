"""bot.replies.render: the step every sent text goes through, on each platform."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from bot import replies
from bot.core.brain import Brain
from bot.core.schema import DatabaseBusy, DiskFull, StoreError
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


def test_a_refused_change_says_why_and_that_nothing_changed() -> None:
    said = [replies.not_saved(error("x")) for error in (DatabaseBusy, DiskFull, StoreError)]
    assert said == [replies.DATABASE_BUSY, replies.DISK_FULL, replies.NOT_SAVED]
    assert all("nothing was changed" in text and "\n" not in text for text in said)


async def test_what_is_stored_names_every_table_that_holds_a_members_data(tmp_path: Path) -> None:
    # The opt-in reply and /markov me say exactly what the tables hold of a member: a table that
    # starts holding something per author must be named there too.
    said = {
        "transitions": "how often each word follows",
        "transitions_back": "how often each word follows",  # the same counts, keyed backward
        "messages": "the id and length of each message",
        "windows": "fingerprints of each message and of its runs of words",
        "recent_messages": "its words as encrypted numbers",
    }
    await (await Brain.open(tmp_path / "m.sqlite3")).close()
    with sqlite3.connect(tmp_path / "m.sqlite3") as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        per_author = {
            t for t in tables if any(c[1] == "author_id" for c in db.execute(f'PRAGMA table_info("{t}")'))
        }
    assert per_author == set(said)
    for phrase in said.values():
        assert phrase in replies.STORED
    assert replies.STORED in replies.OPTED_IN
