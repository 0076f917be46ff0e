"""The message size limit lives in the core, so every front end gets it from Brain.learn."""

from __future__ import annotations

import time
from pathlib import Path

from bot.config import Settings
from bot.core.brain import MAX_MESSAGE_CHARS, Brain
from bot.core.models import LearnStatus, Message


def message(text: str, mid: str = "1") -> Message:
    return Message("discord", "g", "c", "alice", mid, text)


async def test_a_message_over_the_limit_is_not_learned_and_says_so(brain: Brain) -> None:
    await brain.opt_in("discord", "g", "alice")
    await brain.set_channel("discord", "g", "c", True)
    assert MAX_MESSAGE_CHARS == 4000
    assert (await brain.learn(message("a" * 3999 + " b", "1"))).status is LearnStatus.TOO_LONG
    assert (await brain.learn(message("word " * 799 + "last", "2"))).queued  # 3,999 characters
    started = time.monotonic()
    assert (await brain.learn(message("word " * 2_000_000, "3"))).status is LearnStatus.TOO_LONG
    assert time.monotonic() - started < 0.1  # refused before it is tokenized
    await brain.flush()
    assert (await brain.counts(message("").chain))["messages_seen"] == 1


async def test_the_limit_is_a_setting_every_front_end_opens_the_brain_with(tmp_path: Path) -> None:
    settings = Settings.from_env({"MARKOV_MAX_MESSAGE_CHARS": "10"}, dotenv=False)
    brain = await Brain.open(tmp_path / "m.db", **settings.store_options)
    try:
        assert brain.max_message_chars == 10
        result = await brain.learn(message("eleven char"), require_consent=False)
        assert result.status is LearnStatus.TOO_LONG
        assert (await brain.learn(message("ten chars!"), require_consent=False)).queued
    finally:
        await brain.close()
