"""Hostile input through the Brain and the text commands: no crash, no ping, clear replies."""

from __future__ import annotations

import io
import random
import re
import sqlite3
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.console import Console
from bot.core.brain import Brain
from bot.core.models import ChainKey, LearnStatus, Message
from bot.core.tokens import detokenize, neutralise, tokenize

PING = re.compile(r"@(everyone|here|room)|<@[!&]?\d+>|<#\d+>", re.IGNORECASE)

NASTY = [
    "",
    " \n\t ",
    "x" * 4000,
    ("word " * 800)[:4000],
    "\u200b\u200c\u200d\u2060\ufeff",
    "\u202eevil right-to-left \u202c text \u200f",
    "z̸̢̛̺̞̰̣̀͗͋ͅa̶̧̛̗͎̟̓͊l̷̰̓g̵̛̜̈o̴̩̒ ̶͚̈́t̷̙̾e̸̱̅x̸̟̑t̵̢̆",
    "😀😃😄😁😆😅😂🤣🥲☺️😊👨‍👩‍👧‍👦🏳️‍🌈",
    "<@123> <@!456> <@&789> <#1011> @everyone @here",
    "@еveryone @evеryone ＠everyone @every\u200bone @e\u200dveryone @ｈｅｒｅ",
    "```\ncode\n``` ``` unclosed **bold** __u__ ~~s~~ ||spoiler|| > quote # heading [link](http://x.y)",
    "'); DROP TABLE tokens;-- SELECT * FROM messages; \" OR 1=1 --",
    "\x00\x01\x02 control \x7f chars",
    "\ud800 lone surrogate",
    "a" * 201 + " " + "https://example.com/" + "p" * 300,
]


async def test_nasty_messages_are_learned_or_refused_clearly_and_never_ping(
    brain: Brain, db_path: Path
) -> None:
    await brain.opt_in("t", "g", "u")
    await brain.set_channel("t", "g", "c", True)
    for i, text in enumerate(NASTY):
        result = await brain.learn(Message("t", "g", "c", "u", str(i), text))
        assert result.status in (LearnStatus.QUEUED, LearnStatus.EMPTY)
        assert result.queued == bool(tokenize(text))
    await brain.flush()
    rng = random.Random(0)
    for start in (None, "@everyone", "DROP", "😀", "zalgo", "'); --"):
        result = await brain.generate(ChainKey("t", "g", "c"), start=start, rng=rng, guard=False)
        assert result.text is None or not PING.search(result.text)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert {"tokens", "messages", "transitions"} <= {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master")
        }


async def test_nasty_commands_get_clear_replies(brain: Brain, tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(brain, "c", out=out, card_dir=tmp_path)
    await console.setup()
    commands = [
        "/markov",
        "/markov generate count:-1",
        "/markov generate count:999999999999999999999",
        "/markov generate count:abc",
        "/markov generate start:" + "x" * 4000,
        "/markov generate @everyone",
        '/markov generate "unbalanced',
        "/markov settings order 1e9",
        "/markov settings run_length -5",
        "/markov settings chime_chance nan",
        "/markov settings copy_guard maybe",
        "/markov settings '); DROP TABLE chains;-- 1",
        "/markov channel explode",
        "/markov \u202e\u200b",
    ]
    for line in commands:
        before = out.tell()
        assert await console.handle(line)
        reply = out.getvalue()[before:]
        assert reply.strip(), f"no reply to {line!r}"
        assert not PING.search(reply)
    assert (await brain.settings("local", "local")).order == 2


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_unicode_tokenizes_and_renders_without_a_ping(text: str) -> None:
    rendered = neutralise(detokenize(tokenize(text)))
    assert not PING.search(rendered)
    assert not PING.search(neutralise(text))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.text(max_size=200), min_size=1, max_size=8), st.integers(0, 2**16))
def test_any_unicode_through_a_real_database(tmp_path_factory: object, texts: list[str], seed: int) -> None:
    import asyncio
    import tempfile

    async def go() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            brain = await Brain.open(Path(tmp) / "h.db", flush_interval=0.05)
            try:
                await brain.opt_in("t", "g", "u")
                await brain.set_channel("t", "g", "c", True)
                for i, text in enumerate(texts):
                    await brain.learn(Message("t", "g", "c", "u", str(i), text))
                await brain.flush()
                result = await brain.generate(ChainKey("t", "g", "c"), rng=random.Random(seed), guard=False)
                assert result.text is None or not PING.search(result.text)
                for i, text in enumerate(texts):
                    await brain.unlearn(Message("t", "g", "c", "u", str(i), text))
                assert (await brain.counts(ChainKey("t", "g", "c")))["messages_seen"] == 0
            finally:
                await brain.close()

    asyncio.run(go())
