"""The Matrix adapter against a real Synapse: two people, one bot, every command path."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from nio import AsyncClient, RoomCreateResponse

from bot import matrix_app, replies
from bot.config import Settings
from bot.core import schema
from bot.core.brain import Brain
from bot.core.messagekeys import message_key
from bot.core.models import ChainKey, Message
from bot.matrix_app import MatrixBot, login, run_matrix, serve
from tests.core.dump import logical_dump
from tests.lockholder import holding_the_database
from tests.matrix.conftest import BotFactory, Human, RunningBot, stop_bot
from tests.matrix.synapse import SynapseServer

PLATFORM = "matrix"


async def make_room(owner: Human, invite: list[str], *, encrypted: bool = False) -> str:
    """A room where owner is moderator (100), everybody else at 0."""
    state = [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]
    response = await owner.client.room_create(
        name="markov test", invite=invite, initial_state=state if encrypted else []
    )
    assert isinstance(response, RoomCreateResponse), response
    return str(response.room_id)


async def join(human: Human, room_id: str) -> None:
    await human.client.join(room_id)
    await human.client.sync(timeout=0)


def notices(human: Human, running: RunningBot, room_id: str) -> list[str]:
    return [
        c.get("body", "") for c in human.from_user(running.user_id, room_id) if c.get("msgtype") == "m.notice"
    ]


async def command(
    human: Human, running: RunningBot, room_id: str, text: str, *, replies: int = 1
) -> list[str]:
    """Send a command and wait for `replies` new notices from the bot."""
    await human.client.sync(timeout=0)  # catch up first, so only answers to this command count
    before = len(notices(human, running, room_id))
    await human.say(room_id, text)
    await human.wait_for(lambda _: len(notices(human, running, room_id)) >= before + replies)
    return notices(human, running, room_id)[before:]


async def setup_room(start_bot: BotFactory, people: tuple[Human, Human]) -> tuple[RunningBot, str]:
    alice, bob = people
    running = await start_bot()
    room = await make_room(alice, [bob.user_id, running.user_id])
    await join(bob, room)
    # The bot joins on its own when invited; its first answer proves it is in.
    await command(alice, running, room, "!markov help")
    return running, room


async def test_learn_generate_stats_forget_redact_and_refusals(
    start_bot: BotFactory, people: tuple[Human, Human]
) -> None:
    alice, bob = people
    running, room = await setup_room(start_bot, people)
    brain, guild = running.brain, running.bot.server_name

    (refused,) = await command(bob, running, room, "!markov channel enable")
    assert "Only moderators" in refused
    assert not await brain.is_enabled(PLATFORM, guild, room)

    (enabled,) = await command(alice, running, room, "!markov channel enable")
    assert "Learning is now enabled" in enabled
    (opted,) = await command(alice, running, room, "!markov optin")
    assert "opted in" in opted

    texts = [
        "the quick brown fox jumps over the lazy dog",
        "the lazy cat sleeps all day long",
        "a quick brown cat jumps over the fence",
        "the dog and the cat are friends now",
        "every fox likes a lazy afternoon nap",
    ]
    ids = [await alice.say(room, t) for t in texts]
    await bob.say(room, "bob never opted in so this is not learned")
    # A command round trip after the messages: by then the bot has handled them.
    await command(alice, running, room, "!markov me")
    await brain.flush()
    assert (await brain.member_info(PLATFORM, guild, alice.user_id)).messages == len(texts)
    assert (await brain.member_info(PLATFORM, guild, bob.user_id)).messages == 0

    (generated,) = await command(alice, running, room, "!markov generate the")
    assert generated
    sent = [c for c in alice.from_user(running.user_id, room) if c.get("body") == generated][-1]
    assert sent["msgtype"] == "m.notice" and sent["m.mentions"] == {}
    assert "formatted_body" not in sent

    stats = await command(alice, running, room, "!markov stats")
    assert "seen: 5 messages" in stats[0]
    await alice.wait_for(
        lambda _: any(c.get("msgtype") == "m.image" for c in alice.from_user(running.user_id, room))
    )
    image: dict[str, Any] = next(
        c for c in alice.from_user(running.user_id, room) if c.get("msgtype") == "m.image"
    )
    assert image["url"].startswith("mxc://") and image["info"]["mimetype"] == "image/png"

    # A redaction unlearns the message (the bot saw its text).
    await alice.client.room_redact(room, ids[0], reason="oops")
    await command(alice, running, room, "!markov me")
    await brain.flush()
    assert not await brain.is_learned(PLATFORM, ids[0])
    assert (await brain.member_info(PLATFORM, guild, alice.user_id)).messages == len(texts) - 1

    # An edit replaces the learned version.
    edit = {
        "msgtype": "m.text",
        "body": "* zebras are striped",
        "m.new_content": {"msgtype": "m.text", "body": "zebras are striped"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": ids[1]},
    }
    await alice.client.room_send(room, "m.room.message", edit)
    await command(alice, running, room, "!markov me")
    await brain.flush()
    assert (await brain.generate(ChainKey(PLATFORM, guild, room), start="zebras", guard=False)).ok
    assert not (await brain.generate(ChainKey(PLATFORM, guild, room), start="sleeps", guard=False)).ok

    (ask,) = await command(alice, running, room, "!markov forget")
    assert "forget confirm" in ask
    assert (await brain.member_info(PLATFORM, guild, alice.user_id)).messages == len(texts) - 1
    (done,) = await command(alice, running, room, "!markov forget confirm")
    assert "forgot 4 of your messages" in done
    assert (await brain.member_info(PLATFORM, guild, alice.user_id)).messages == 0
    assert not await brain.is_opted_in(PLATFORM, guild, alice.user_id)


async def test_restart_does_not_relearn_or_answer_old_events(
    start_bot: BotFactory, people: tuple[Human, Human]
) -> None:
    alice, _ = people
    running, room = await setup_room(start_bot, people)
    await command(alice, running, room, "!markov channel enable")
    await command(alice, running, room, "!markov optin")
    await alice.say(room, "one message before the restart")
    await command(alice, running, room, "!markov me")
    answered = len(notices(alice, running, room))
    await stop_bot(running)

    again = await start_bot()
    (me,) = await command(alice, again, room, "!markov me")
    assert "learned 1 of your messages" in me
    # Only the new command was answered: none of the old ones came back.
    assert len(notices(alice, again, room)) == answered + 1


def replacement(original: str, body: str) -> dict[str, Any]:
    """An m.replace edit of an event."""
    return {
        "msgtype": "m.text",
        "body": f"* {body}",
        "m.new_content": {"msgtype": "m.text", "body": body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    }


async def test_redactions_and_edits_after_a_restart_are_applied_exactly(
    start_bot: BotFactory, people: tuple[Human, Human], tmp_path: Path
) -> None:
    alice, bob = people
    running, room = await setup_room(start_bot, people)
    await command(alice, running, room, "!markov channel enable")
    await command(alice, running, room, "!markov optin")
    await command(bob, running, room, "!markov optin")
    texts = [
        "the quick brown fox jumps",
        "the lazy cat sleeps all day",
        "every fox likes a nap",
        "an old message from before",
    ]
    ids = [await alice.say(room, t) for t in texts]
    (me,) = await command(alice, running, room, "!markov me")
    assert "learned 4 of your messages" in me
    guild = running.bot.server_name
    await stop_bot(running)
    with sqlite3.connect(running.settings.db_path) as db:  # as if learned before the edit window
        db.execute("DELETE FROM recent_messages WHERE id = ?", (message_key(PLATFORM, ids[3]),))

    again = await start_bot()  # nothing of the texts is in memory any more
    await alice.client.room_redact(room, ids[0], reason="oops")
    await alice.client.room_send(room, "m.room.message", replacement(ids[1], "zebras are striped"))
    # The homeserver lets anyone send an edit: bob's edit of alice's message changes nothing.
    await bob.client.room_send(room, "m.room.message", replacement(ids[2], "bob rewrites alice"))
    # Past the window: the original's text comes from the homeserver.
    await alice.client.room_send(room, "m.room.message", replacement(ids[3], "a new text for it"))
    (me,) = await command(alice, again, room, "!markov me")  # by then the bot handled all four
    assert "learned 3 of your messages" in me
    key = again.brain.store.key
    await stop_bot(again)

    never = await Brain.open(tmp_path / "never.sqlite3", key=key)
    try:
        for event_id, text in (
            (ids[1], "zebras are striped"),
            (ids[2], texts[2]),
            (ids[3], "a new text for it"),
        ):
            await never.learn(
                Message(PLATFORM, guild, room, alice.user_id, event_id, text), require_consent=False
            )
    finally:
        await never.close()
    assert logical_dump(again.settings.db_path, key) == logical_dump(tmp_path / "never.sqlite3", key)


async def test_with_a_window_of_zero_only_texts_seen_since_the_start_are_unlearned(
    start_bot: BotFactory, people: tuple[Human, Human]
) -> None:
    alice, _ = people
    running, room = await setup_room(start_bot, people)
    await command(alice, running, room, "!markov channel enable")
    await command(alice, running, room, "!markov optin")
    settings = dataclasses.replace(running.settings, edit_window_days=0)
    await stop_bot(running)
    brain = await Brain.open(settings.db_path, **settings.store_options)
    client = AsyncClient(settings.matrix_homeserver or "", settings.matrix_user_id or "")
    assert await login(client, brain, settings) is None
    bot = MatrixBot(brain, client)
    zero = RunningBot(bot, brain, settings, asyncio.create_task(bot.sync_forever()))
    try:
        ids = [await alice.say(room, t) for t in ("seen by this run", "also seen by this run")]
        await command(alice, zero, room, "!markov me")
        await alice.client.room_redact(room, ids[0])
        (me,) = await command(alice, zero, room, "!markov me")
        assert "learned 1 of your messages" in me  # unlearned from the text kept in memory
        with sqlite3.connect(settings.db_path) as db:
            assert db.execute("SELECT count(*) FROM recent_messages").fetchone() == (0,)
    finally:
        await stop_bot(zero)


async def test_encrypted_rooms_are_refused_once_and_out_loud(
    start_bot: BotFactory, people: tuple[Human, Human]
) -> None:
    alice, _ = people
    running = await start_bot()
    room = await make_room(alice, [running.user_id], encrypted=True)
    # Said as soon as the bot joins, before anyone posts.
    await alice.wait_for(lambda _: len(notices(alice, running, room)) >= 1)
    await alice.say(room, "!markov optin")
    await alice.say(room, "!markov generate")
    await alice.say(room, "hello again")
    await alice.client.sync(timeout=1500)
    said = notices(alice, running, room)
    assert len(said) == 1 and "encrypted" in said[0]
    assert not await running.brain.is_opted_in(PLATFORM, running.bot.server_name, alice.user_id)


async def test_encryption_turned_on_later_is_noticed_without_a_post(
    start_bot: BotFactory, people: tuple[Human, Human]
) -> None:
    alice, _ = people
    running, room = await setup_room(start_bot, people)
    before = len(notices(alice, running, room))
    await alice.client.room_put_state(room, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"})
    await alice.wait_for(lambda _: len(notices(alice, running, room)) > before)
    assert "encrypted" in notices(alice, running, room)[-1]


def test_missing_settings_get_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.from_env(
        {"MARKOV_DB": str(tmp_path / "m.db"), "MATRIX_HOMESERVER": "http://127.0.0.1:9"}
    )
    assert run_matrix(settings) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "MATRIX_USER_ID" in err


def test_a_rejected_login_gets_one_clear_line(
    synapse: SynapseServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    user_id, _ = synapse.register(f"rejected-{uuid.uuid4().hex[:6]}", "right-password")
    settings = Settings.from_env(
        {
            "MARKOV_DB": str(tmp_path / "m.db"),
            "MATRIX_HOMESERVER": synapse.base_url,
            "MATRIX_USER_ID": user_id,
            "MATRIX_PASSWORD": "wrong-password",
        }
    )
    assert run_matrix(settings) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "rejected the login" in err
    assert "wrong-password" not in err


async def test_the_running_bot_logs_no_per_event_chatter(
    synapse: SynapseServer,
    people: tuple[Human, Human],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logging.getLogger("nio"), "level", logging.NOTSET)
    caplog.set_level(logging.INFO)  # the default LOG_LEVEL
    alice, _ = people
    user_id, _ = synapse.register(f"quiet-{uuid.uuid4().hex[:6]}", "bot-password")
    settings = Settings.from_env(
        {
            "MARKOV_DB": str(tmp_path / "m.db"),
            "MATRIX_HOMESERVER": synapse.base_url,
            "MATRIX_USER_ID": user_id,
            "MATRIX_PASSWORD": "bot-password",
        }
    )
    running = asyncio.create_task(serve(settings))
    room = await make_room(alice, [user_id])
    await alice.say(room, "!markov help")
    await alice.wait_for(lambda seen: any(r == room and s == user_id for r, s, _ in seen))
    os.kill(os.getpid(), signal.SIGTERM)  # as a service manager stops it
    assert await running == 0
    assert any(r.name == "bot.matrix_app" and r.levelno == logging.INFO for r in caplog.records)
    # matrix-nio logs every request and event at INFO: kept to warnings unless debugging.
    assert not [r for r in caplog.records if r.name.startswith("nio") and r.levelno < logging.WARNING]


def test_a_database_from_a_newer_version_gets_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "m.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    settings = Settings.from_env(
        {
            "MARKOV_DB": str(db),
            "MATRIX_HOMESERVER": "http://127.0.0.1:9",
            "MATRIX_USER_ID": "@bot:localhost",
            "MATRIX_PASSWORD": "x",
        }
    )
    assert run_matrix(settings) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "schema version 99" in err and "Traceback" not in err


async def test_a_slow_report_holds_up_neither_other_rooms_nor_the_room_it_was_asked_in(
    start_bot: BotFactory, people: tuple[Human, Human], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = people
    running, room = await setup_room(start_bot, people)
    await command(alice, running, room, "!markov channel enable")
    await command(bob, running, room, "!markov optin")
    other = await make_room(bob, [running.user_id])
    await command(bob, running, other, "!markov help")  # the bot is in
    started, release = asyncio.Event(), asyncio.Event()
    report = running.bot.commands.stats

    async def held(*args: Any) -> Any:  # a report that takes as long as the test says
        started.set()
        await release.wait()
        return await report(*args)

    monkeypatch.setattr(running.bot.commands, "stats", held)
    await alice.say(room, "!markov stats")
    await asyncio.wait_for(started.wait(), 20)
    await alice.say(room, "!markov me")  # hers come in the order she asked
    (helped,) = await command(bob, running, other, "!markov help")
    assert "!markov generate" in helped
    await bob.say(room, "bob says something while the report is made")
    (mine,) = await command(bob, running, room, "!markov me")
    assert "learned 1 of your messages" in mine  # learned, and answered, while the report waits
    assert not [n for n in notices(alice, running, room) if "seen:" in n or "not opted in" in n]
    release.set()
    await alice.wait_for(lambda _: any("not opted in" in n for n in notices(alice, running, room)))
    answers = notices(alice, running, room)
    stats = next(i for i, n in enumerate(answers) if "seen: 1 message" in n)
    assert stats < next(i for i, n in enumerate(answers) if "not opted in" in n)


async def wait_for_log(caplog: pytest.LogCaptureFixture, running: RunningBot, text: str) -> None:
    """Until a record holding text is logged (while the bot keeps handling events)."""
    deadline = asyncio.get_running_loop().time() + 60
    while not any(text in r.getMessage() for r in caplog.records):
        assert asyncio.get_running_loop().time() < deadline, [r.getMessage() for r in caplog.records]
        await asyncio.wait({running.task}, timeout=0.1)  # woken early if the bot stops
        assert not running.task.done(), f"the bot stopped handling events: {running.task.exception()!r}"


async def impatient_room(
    start_bot: BotFactory, people: tuple[Human, Human], monkeypatch: pytest.MonkeyPatch
) -> tuple[RunningBot, str]:
    """A room that learns from alice, where a database another process holds is given up on after
    0.1 s, not 5, and an event waiting on it goes on beside the room's next ones after 1 s, not 10."""
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr(matrix_app, "INLINE_SECONDS", 1.0)
    running, room = await setup_room(start_bot, people)
    await command(people[0], running, room, "!markov channel enable")
    await command(people[0], running, room, "!markov optin")
    return running, room


def assert_one_line_each(caplog: pytest.LogCaptureFixture) -> None:
    """The bot's warnings and errors were one line each, without a traceback."""
    problems = [r for r in caplog.records if r.name.startswith("bot") and r.levelno >= logging.WARNING]
    assert all("\n" not in r.getMessage() and not r.exc_info for r in problems), problems


async def test_a_redaction_while_another_process_holds_the_database_waits_its_turn_and_the_bot_goes_on(
    start_bot: BotFactory,
    people: tuple[Human, Human],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, _ = people
    running, room = await impatient_room(start_bot, people, monkeypatch)
    ids = [await alice.say(room, t) for t in ("one thing said here", "another thing said here")]
    (me,) = await command(alice, running, room, "!markov me")
    assert "learned 2 of your messages" in me
    caplog.set_level(logging.INFO, logger="bot")
    async with holding_the_database(running.settings.db_path):  # as an import's transaction would
        await alice.client.room_redact(room, ids[0])
        await wait_for_log(caplog, running, f"unlearning message {ids[0]} waits")
        (help_,) = await command(alice, running, room, "!markov help")  # the bot answers meanwhile
        assert "generate" in help_
    await wait_for_log(caplog, running, f"unlearning message {ids[0]} went through")
    (me,) = await command(alice, running, room, "!markov me")
    assert "learned 1 of your messages" in me
    assert_one_line_each(caplog)


async def test_a_first_message_while_another_process_holds_the_database_waits_and_a_change_says_busy(
    start_bot: BotFactory,
    people: tuple[Human, Human],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob = people
    running, room = await impatient_room(start_bot, people, monkeypatch)
    caplog.set_level(logging.INFO, logger="bot")
    async with holding_the_database(running.settings.db_path):  # as an import's transaction would
        first = await alice.say(room, "my very first words in this room")  # writes her author row
        await wait_for_log(caplog, running, f"learning message {first} waits")
        (busy,) = await command(bob, running, room, "!markov optin")
        assert busy == replies.DATABASE_BUSY
    await wait_for_log(caplog, running, f"learning message {first} went through")
    (me,) = await command(alice, running, room, "!markov me")
    assert "learned 1 of your messages" in me
    (bobs,) = await command(bob, running, room, "!markov me")
    assert "not opted in" in bobs
    assert_one_line_each(caplog)
