"""The listeners: learning, edits, deletes, mention replies and chiming in."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import discord
import pytest
from simcord.enums import MessageType

from bot.core import patience
from bot.core.deferred import Kind
from bot.core.models import GenerateStatus
from tests.cogs.conftest import VOCABULARY, World, assert_never_pings, corpus
from tests.lockholder import holding_the_database

LINES = corpus(25)


def learning_cog(world: World):
    cog = world.bot.get_cog("Learning")
    assert type(cog).__name__ == "Learning"
    return cog


async def learn_corpus(world: World) -> None:
    await world.brain.update_settings("discord", world.gid, order=1)
    await world.enable()
    await world.teach(LINES)


# ---------------------------------------------------------------- what is learned


async def test_learns_opted_in_members_in_enabled_channels_only(world: World) -> None:
    quiet = world.guild.create_text_channel("quiet")
    await world.enable()
    yes = await world.alice.send(world.general, "alice in an enabled channel")
    not_opted = await world.bob.send(world.general, "bob never opted in")
    disabled = await world.alice.send(quiet, "alice in a channel that is not enabled")
    assert await world.learned(yes)
    assert not await world.learned(not_opted)
    assert not await world.learned(disabled)
    assert await world.messages_seen() == 1
    assert await world.messages_seen(quiet) == 0


async def test_never_learns_bots_webhooks_or_system_messages(world: World) -> None:
    await world.enable()
    robot = world.env.create_user("robot", bot=True)
    robot_member = world.guild.add_member(robot)
    await world.brain.opt_in("discord", world.gid, str(robot.id))  # even if a bot were opted in
    from_bot = await robot_member.send(world.general, "beep boop i am a bot")
    hook = world.guild.create_webhook(world.general)
    from_hook = await hook.send("a webhook speaks")
    pinned = await world.bob.send(world.general, "pin me")
    system = world.guild.create_system_message(
        world.general, MessageType.PINS_ADD, author=world.alice, referenced_message=pinned
    )
    assert system.content  # "pinned a message to this channel.", by alice, who opted in
    await world.env.settle()
    for message in (from_bot, from_hook, system):
        assert not await world.learned(message)
    assert await world.messages_seen() == 0


async def test_never_learns_its_own_output(world: World) -> None:
    await learn_corpus(world)
    await world.bob.slash(world.general, "markov generate")
    [posted] = world.public_posts()
    assert not await world.learned(posted)
    assert await world.messages_seen() == len(LINES)


async def test_direct_messages_are_not_learned(world: World) -> None:
    await world.enable()
    dm = await world.alice.send_dm("a private message")
    assert not await world.learned(dm)


async def test_threads_learn_into_their_parent_channel(world: World) -> None:
    await world.enable()
    thread = world.env.backend.create_thread(world.general.id, "chat", world.alice.id)
    await world.env.settle()
    handle = next(t for t in world.general.threads if t.id == thread.id)
    sent = await world.alice.send(handle, "said inside a thread")
    assert await world.learned(sent)
    assert await world.messages_seen(world.general) == 1


async def test_messages_addressed_to_the_bot_are_not_learned(world: World) -> None:
    await world.enable()
    await world.brain.update_settings("discord", world.gid, reply_on_mention=False)
    sent = await world.alice.send(world.general, f"<@{world.bot.user.id}> what do you think")
    assert not await world.learned(sent)


# ---------------------------------------------------------------- edits and deletes


async def test_an_edit_is_unlearned_and_relearned(world: World) -> None:
    await world.enable()
    [sent] = await world.teach(["one two three"])
    assert (await world.brain.counts(world.chain()))["tokens_seen"] == 3
    await world.alice.edit(sent, "one two three four five six")
    await world.brain.flush()
    counts = await world.brain.counts(world.chain())
    assert (counts["messages_seen"], counts["tokens_seen"]) == (1, 6)
    assert await world.learned(sent)


async def test_an_edit_of_an_uncached_message_is_relearned_by_id(world: World) -> None:
    await world.enable()
    [sent] = await world.teach(["one two three"])
    world.bot._connection._messages.clear()  # the message fell out of the cache
    await world.alice.edit(sent, "four five six seven")
    await world.brain.flush()
    counts = await world.brain.counts(world.chain())
    assert (counts["messages_seen"], counts["tokens_seen"]) == (1, 4)  # the old version is gone
    assert (await world.brain.generate(world.chain(), start="one", guard=False)).status is (
        GenerateStatus.UNKNOWN_START
    )


async def test_an_edit_of_an_uncached_message_learned_before_the_window_keeps_it(world: World) -> None:
    await world.enable()
    [sent] = await world.teach(["one two three"])
    world.bot._connection._messages.clear()
    with sqlite3.connect(world.brain.store.path) as db:  # as if learned before the window, or this version
        db.execute("DELETE FROM recent_messages")
    await world.alice.edit(sent, "one two three four five six")
    await world.brain.flush()
    assert (await world.brain.counts(world.chain()))["tokens_seen"] == 3  # old text unknown: kept


async def test_an_edit_of_an_unlearned_message_learns_it(world: World) -> None:
    sent = await world.alice.send(world.general, "said before learning was enabled")
    await world.enable()
    await world.alice.edit(sent, "edited after learning was enabled")
    assert await world.learned(sent)


async def test_a_delete_unlearns(world: World) -> None:
    await world.enable()
    keep, gone = await world.teach(["keep this one", "delete this one"])
    await world.alice.delete(gone)
    assert not await world.learned(gone)
    assert await world.learned(keep)
    assert await world.messages_seen() == 1


async def test_a_delete_of_an_uncached_message_unlearns_it_by_id(world: World) -> None:
    await world.enable()
    keep, gone = await world.teach(["keep this one", "delete this one"])
    world.bot._connection._messages.clear()
    await world.alice.delete(gone)
    assert not await world.learned(gone)
    assert await world.learned(keep)
    assert await world.messages_seen() == 1


async def test_a_bulk_delete_unlearns_each_message_cached_or_not(world: World) -> None:
    await world.enable()
    sent = await world.teach(["first of four", "second of four", "third of four", "fourth of four"])
    cache = world.bot._connection._messages
    assert cache is not None
    cache.remove(next(m for m in cache if m.id == sent[0].id))  # one not cached, one cached
    world.env.backend.bulk_delete_messages(world.general.id, [m.id for m in sent[:2]])
    await world.env.settle()
    assert [await world.learned(m) for m in sent] == [False, False, True, True]
    assert await world.messages_seen() == 2


async def test_a_bulk_delete_unlearns_each_cached_message(world: World) -> None:
    await world.enable()
    sent = await world.teach(["first of three", "second of three", "third of three"])
    world.env.backend.bulk_delete_messages(world.general.id, [m.id for m in sent[:2]])
    await world.env.settle()
    assert [await world.learned(m) for m in sent] == [False, False, True]
    assert await world.messages_seen() == 1


# ---------------------------------------------------------------- mentions and chiming in


async def test_answers_a_mention_starting_from_a_known_word(world: World) -> None:
    await learn_corpus(world)
    mention = await world.bob.send(world.general, f"<@{world.bot.user.id}> tell me about the zzz river")
    answer = world.general.history()[-1]
    assert answer.author.id == world.bot.user.id
    assert answer.reference is not None and answer.reference.message_id == mention.id
    words = answer.content.split()
    assert set(words) <= VOCABULARY
    assert "river" in words or "the" in words  # seeded by a word of the mention the chain knows
    assert_never_pings(world)


async def test_a_mention_with_no_known_word_starts_anywhere(world: World) -> None:
    await learn_corpus(world)
    await world.bob.send(world.general, f"<@{world.bot.user.id}> xyzzy plugh")
    answer = world.general.history()[-1]
    assert answer.author.id == world.bot.user.id
    assert set(answer.content.split()) <= VOCABULARY


async def test_a_mention_in_a_channel_without_a_chain_is_answered_plainly(world: World) -> None:
    await world.bob.send(world.general, f"<@{world.bot.user.id}> hello?")
    assert world.general.history()[-1].content == "I haven't learned anything in this channel yet."


async def test_no_answer_when_the_server_turned_replies_off(world: World) -> None:
    await learn_corpus(world)
    await world.admin.slash(world.general, "markov settings", reply_on_mention=False)
    await world.bob.send(world.general, f"<@{world.bot.user.id}> hello?")
    assert world.public_posts() == []


async def test_mention_replies_share_the_member_cooldown(world: World) -> None:
    await learn_corpus(world)
    for _ in range(3):
        await world.bob.send(world.general, f"<@{world.bot.user.id}> the cat")
    assert len(world.public_posts()) == 1
    await world.env.advance_time(5)
    await world.bob.send(world.general, f"<@{world.bot.user.id}> the cat")
    assert len(world.public_posts()) == 2


class Always:
    """A random source whose draws are always 0 (every chance succeeds)."""

    def random(self) -> float:
        return 0.0

    def shuffle(self, items: list) -> None:
        pass

    def __getattr__(self, name: str):
        import random

        return getattr(random.Random(0), name)


async def test_chimes_in_at_the_configured_chance(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    await learn_corpus(world)
    assert world.public_posts() == []  # chance 0 by default
    await world.admin.slash(world.general, "markov settings", chime_chance=0.5)
    monkeypatch.setattr(learning_cog(world), "rng", Always())
    said = await world.alice.send(world.general, "the cat sat on the log today")
    [chimed] = world.public_posts()
    assert chimed.id > said.id and set(chimed.content.split()) <= VOCABULARY


async def test_chime_chance_draws_from_the_seeded_random_source(world: World) -> None:
    await learn_corpus(world)
    await world.admin.slash(world.general, "markov settings", chime_chance=0.5)
    for line in corpus(10, end="tonight"):
        await world.alice.send(world.general, line)
    assert 0 < len(world.public_posts()) < 10  # about half of ten, reproducibly


async def test_cannot_send_is_logged_not_raised(world: World, caplog: pytest.LogCaptureFixture) -> None:
    await learn_corpus(world)
    muted = world.guild.create_text_channel(
        "muted", overwrites={world.guild.me: discord.PermissionOverwrite(send_messages=False)}
    )
    caplog.set_level(logging.WARNING, logger="cogs.learning")
    await world.bob.send(muted, f"<@{world.bot.user.id}> hello?")
    assert any("cannot answer a mention" in r.getMessage() for r in caplog.records)
    assert world.public_posts(muted) == []
    assert world.env.errors == []


async def wait_for_log(caplog: pytest.LogCaptureFixture, text: str) -> None:
    """Until a record holding text is logged (the listener runs in a task of discord.py's)."""
    deadline = asyncio.get_running_loop().time() + 120
    while not any(text in r.getMessage() for r in caplog.records):
        assert asyncio.get_running_loop().time() < deadline, [r.getMessage() for r in caplog.records]
        await asyncio.sleep(0.1)  # polled: the condition, not the pause, is what is waited for


async def test_a_delete_while_another_process_holds_the_database_is_unlearned_once_it_is_free(
    impatient: None, world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(patience, "BACKOFF_MIN", 60.0)  # SimCord's clock runs the wait out
    await world.enable()
    keep, gone = await world.teach(["keep this one", "delete this one"])
    caplog.set_level(logging.INFO, logger="bot")
    async with holding_the_database(world.bot.settings.db_path):  # as an import's transaction would
        await world.alice.delete(gone)
        await wait_for_log(caplog, f"unlearning message {gone.id} waits")
    await world.env.advance_time(61)
    await wait_for_log(caplog, f"unlearning message {gone.id} went through")
    assert not await world.learned(gone)
    assert await world.learned(keep)


async def test_a_delete_that_waited_in_vain_is_logged_in_one_line_and_kept_for_later(
    impatient: None, world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(patience, "PATIENCE", 0.0)
    monkeypatch.setattr(patience, "BACKOFF_MAX", 3600.0)  # the kept change is tried again only later
    await world.enable()
    (gone,) = await world.teach(["delete this one"])
    async with holding_the_database(world.bot.settings.db_path):
        await world.alice.delete(gone)
        await wait_for_log(caplog, "still learned")
        assert await world.brain.is_learned("discord", str(gone.id))
    lines = [r.getMessage() for r in caplog.records if "still learned" in r.getMessage()]
    assert len(lines) == 1 and str(gone.id) in lines[0] and "\n" not in lines[0]
    assert "kept, to be made once the database takes it" in lines[0]
    assert not any(r.exc_info for r in caplog.records)
    kept = [change.message.id for _, change in await world.brain.store.deferred()]
    assert kept == [str(gone.id)]  # made once the file is free (tests/core/test_patience.py)


async def test_a_new_members_first_message_while_another_process_holds_the_database_is_learned_once_free(
    impatient: None, world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(patience, "BACKOFF_MIN", 60.0)  # SimCord's clock runs the wait out
    await world.enable()  # alice opted in; her first message writes her author row and the chain's
    caplog.set_level(logging.INFO, logger="bot")
    async with holding_the_database(world.bot.settings.db_path):  # as an import's transaction would
        sent = await world.alice.send(world.general, "my very first words in this channel")
        await wait_for_log(caplog, f"learning message {sent.id} waits")
    await world.env.advance_time(61)
    await wait_for_log(caplog, f"learning message {sent.id} went through")
    await world.brain.flush()
    assert await world.learned(sent)
    assert not any(r.exc_info for r in caplog.records)


async def test_a_first_message_that_waited_in_vain_is_logged_in_one_line_and_kept_for_later(
    impatient: None, world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(patience, "PATIENCE", 0.0)
    monkeypatch.setattr(patience, "BACKOFF_MAX", 3600.0)  # the kept change is tried again only later
    await world.enable()
    async with holding_the_database(world.bot.settings.db_path):
        sent = await world.alice.send(world.general, "my very first words in this channel")
        await wait_for_log(caplog, f"could not learn message {sent.id}")
    lines = [r.getMessage() for r in caplog.records if "could not learn" in r.getMessage()]
    assert len(lines) == 1 and "database is locked" in lines[0] and "\n" not in lines[0]
    assert not any(r.exc_info for r in caplog.records)
    assert not await world.brain.is_learned("discord", str(sent.id))
    kept = [(change.kind, change.message.text) for _, change in await world.brain.store.deferred()]
    assert kept == [(Kind.LEARN, "my very first words in this channel")]
