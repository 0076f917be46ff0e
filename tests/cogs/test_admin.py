"""Manage Server commands: channel enable|disable, settings, train, reset."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import AsyncMock

import discord
import pytest
import simcord

from bot import replies
from bot.core.models import GuildSettings
from bot.replies import MANAGER_ONLY, describe_settings
from cogs.admin import Admin, CancelView, TrainProgress
from tests.cogs.conftest import World, assert_never_pings, assert_refused_in_one_line, corpus
from tests.lockholder import holding_the_database

LINES = corpus(10)


def admin_cog(world: World) -> Admin:
    # load_extension executes cogs/admin.py as a fresh module, so compare by name, not class.
    cog = world.bot.get_cog("Admin")
    assert type(cog).__name__ == "Admin"
    return cog  # type: ignore[return-value]


# ---------------------------------------------------------------- who may


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("markov channel enable", {}),
        ("markov channel disable", {}),
        ("markov settings", {}),
        ("markov settings", {"order": 1}),
        ("markov train", {}),
        ("markov reset", {}),
    ],
)
async def test_members_without_manage_server_are_refused(world: World, command: str, options: dict) -> None:
    await world.enable()
    await world.teach(LINES[:3])
    result = await world.bob.slash(world.general, command, **options)
    assert result.ephemeral
    assert result.response.content == MANAGER_ONLY
    assert await world.brain.is_enabled("discord", world.gid, str(world.general.id))
    assert await world.brain.settings("discord", world.gid) == GuildSettings()
    assert await world.messages_seen() == 3


# ---------------------------------------------------------------- channel enable|disable


async def test_enable_and_disable_learning_in_a_channel(world: World) -> None:
    not_yet = await world.teach(["before enabling"])
    result = await world.admin.slash(world.general, "markov channel enable")
    assert result.ephemeral and "Learning is now enabled" in result.response.content
    assert await world.brain.is_enabled("discord", world.gid, str(world.general.id))
    learned = await world.teach(["after enabling"])
    again = await world.admin.slash(world.general, "markov channel enable")
    assert again.response.content == f"Learning was already enabled in <#{world.general.id}>."
    off = await world.admin.slash(world.general, "markov channel disable")
    assert "Learning is now disabled" in off.response.content
    after = await world.teach(["after disabling"])
    assert [await world.learned(m) for m in (*not_yet, *learned, *after)] == [False, True, False]


async def test_enable_another_channel_and_a_thread_means_its_parent(world: World) -> None:
    other = world.guild.create_text_channel("other")
    result = await world.admin.slash(world.general, "markov channel enable", channel=other)
    assert f"<#{other.id}>" in result.response.content
    assert await world.brain.enabled_channels("discord", world.gid) == {str(other.id)}
    thread = world.env.backend.create_thread(world.general.id, "chat", world.alice.id)
    await world.env.settle()
    handle = next(t for t in world.general.threads if t.id == thread.id)
    await world.admin.slash(world.general, "markov channel enable", channel=handle)
    assert await world.brain.enabled_channels("discord", world.gid) == {str(other.id), str(world.general.id)}


async def test_enable_refuses_a_channel_the_admin_cannot_read(world: World) -> None:
    closed = world.guild.create_text_channel(
        "closed", overwrites={world.admin: discord.PermissionOverwrite(read_message_history=False)}
    )
    result = await world.admin.slash(world.general, "markov channel enable", channel=closed)
    assert result.ephemeral and "can't read that channel" in result.response.content
    assert await world.brain.enabled_channels("discord", world.gid) == set()


async def test_enable_warns_when_the_bot_cannot_read_the_channel(world: World) -> None:
    blind = world.guild.create_text_channel(
        "blind", overwrites={world.guild.me: discord.PermissionOverwrite(read_message_history=False)}
    )
    result = await world.admin.slash(world.general, "markov channel enable", channel=blind)
    assert "I can't read that channel yet" in result.response.content


# ---------------------------------------------------------------- settings


async def test_settings_without_options_shows_them(world: World) -> None:
    result = await world.admin.slash(world.general, "markov settings")
    assert result.ephemeral
    assert result.response.content == describe_settings(GuildSettings())


async def test_settings_change_what_was_given(world: World) -> None:
    result = await world.admin.slash(
        world.general, "markov settings", order=1, chime_chance=0.25, reply_on_mention=False
    )
    expected = GuildSettings(order=1, reply_on_mention=False, chime_chance=0.25)
    assert await world.brain.settings("discord", world.gid) == expected
    assert result.response.content == "Saved.\n" + describe_settings(expected)
    more = await world.admin.slash(world.general, "markov settings", run_length=12, copy_guard=False)
    assert await world.brain.settings("discord", world.gid) == GuildSettings(
        order=1, reply_on_mention=False, chime_chance=0.25, run_length=12, copy_guard=False
    )
    assert more.response.content.startswith("Saved.")


@pytest.mark.parametrize(
    ("command", "slow", "options", "expected"),
    [
        ("markov channel enable", "set_channel", {}, "Learning is now enabled"),
        (
            "markov settings",
            "update_settings",
            {"order": 1},
            "Saved.\n" + describe_settings(GuildSettings(order=1)),
        ),
    ],
)
async def test_admin_commands_waiting_for_the_write_lock_are_deferred_then_answered(
    world: World, monkeypatch: pytest.MonkeyPatch, command: str, slow: str, options: dict, expected: str
) -> None:
    result = await world.slash_past_deadline(world.admin, command, monkeypatch, slow, **options)
    assert result.ephemeral and expected in result.response.content
    assert world.env.errors == []


def settings_options(world: World) -> dict[str, dict]:
    markov = world.bot.tree.get_command("markov")
    payload = markov.to_dict(world.bot.tree)
    [settings] = [c for c in payload["options"] if c["name"] == "settings"]
    return {o["name"]: o for o in settings["options"]}


async def test_settings_ranges_are_declared_to_discord(world: World) -> None:
    options = settings_options(world)
    assert (options["order"]["min_value"], options["order"]["max_value"]) == (1, 3)
    assert (options["chime_chance"]["min_value"], options["chime_chance"]["max_value"]) == (0.0, 0.5)
    assert (options["run_length"]["min_value"], options["run_length"]["max_value"]) == (3, 32)


async def test_out_of_range_settings_never_reach_the_database(world: World) -> None:
    with pytest.raises(simcord.OptionError) as refused:
        await world.admin.slash(world.general, "markov settings", order=7)
    assert "order" in str(refused.value)
    assert await world.brain.settings("discord", world.gid) == GuildSettings()


# ---------------------------------------------------------------- train


async def post_history(world: World) -> tuple[list[discord.Message], list[discord.Message]]:
    """Alice (opted in) and Bob (not) talk before learning is enabled; then it is."""
    alice = [await world.alice.send(world.general, line) for line in LINES[:6]]
    bob = [await world.bob.send(world.general, line) for line in LINES[6:9]]
    await world.enable()
    assert await world.messages_seen() == 0
    return alice, bob


async def test_train_learns_opted_in_history_and_skips_the_rest(world: World) -> None:
    alice, bob = await post_history(world)
    bot_user = world.guild.add_member(world.env.create_user("otherbot", bot=True))
    await bot_user.send(world.general, "beep boop from another bot")
    hook = world.guild.create_webhook(world.general)
    await hook.send("posted by a webhook")
    result = await world.admin.slash(world.general, "markov train")
    assert result.ephemeral
    shown = world.message(result.response.id, viewer=world.admin)
    assert shown.content == (
        "Done: read 11 messages: learned 6, already learned 0, not opted in 3, skipped 2 "
        f"(bots, webhooks, system or empty). That was the whole history of <#{world.general.id}>; new "
        "messages are learned as they come (`from_newest:True` reads it all again, skipping what was learned)."
    )
    assert all([await world.learned(m) for m in alice])
    assert not any([await world.learned(m) for m in bob])
    assert await world.messages_seen() == 6
    assert_never_pings(world)


async def test_train_while_another_process_holds_the_database_waits_its_turn_and_learns_all(
    impatient: None, world: World, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alice, _ = await post_history(world)
    async with holding_the_database(db_path):  # an import beside the bot, say
        training = asyncio.create_task(world.admin.slash(world.general, "markov train"))
        while not any("waits: could not write" in r.getMessage() for r in caplog.records):
            assert not (await asyncio.wait({training}, timeout=0.1))[0], training.result()
    result = await training
    assert final_text(world, result).startswith("Done: read 9 messages: learned 6,")
    await world.brain.flush()
    assert all([await world.learned(m) for m in alice])
    assert await world.messages_seen() == 6
    assert world.env.errors == []


def final_text(world: World, result) -> str:
    return world.message(result.response.id, viewer=world.admin).content


async def test_train_reads_newest_first_and_resumes_where_it_stopped(world: World) -> None:
    alice, _ = await post_history(world)  # oldest to newest: alice's 6, then bob's 3
    first = await world.admin.slash(world.general, "markov train", limit=4)
    text = final_text(world, first)
    assert text.startswith(
        "Stopped after 4 messages: read 4 messages: learned 1, already learned 0, not opted in 3,"
    )
    assert [await world.learned(m) for m in alice] == [False] * 5 + [True]
    second = await world.admin.slash(world.general, "markov train", limit=4)
    assert final_text(world, second).startswith("Stopped after 4 messages: read 4 messages: learned 4,")
    assert [await world.learned(m) for m in alice] == [False] + [True] * 5
    third = await world.admin.slash(world.general, "markov train", limit=4)
    text = final_text(world, third)
    assert text.startswith("Done: read 1 messages: learned 1,"), text
    assert "whole history" in text
    fourth = await world.admin.slash(world.general, "markov train")
    assert final_text(world, fourth).startswith("Done: read 0 messages")
    assert await world.messages_seen() == 6


async def test_train_from_newest_skips_what_was_learned(world: World) -> None:
    await post_history(world)
    await world.admin.slash(world.general, "markov train")
    await world.teach(["a new message learned live"])
    result = await world.admin.slash(world.general, "markov train", from_newest=True)
    text = final_text(world, result)
    assert text.startswith("Done: read 10 messages: learned 0, already learned 7, not opted in 3,"), text
    assert await world.messages_seen() == 7


async def test_train_edits_its_reply_with_progress(world: World) -> None:
    await post_history(world)
    admin_cog(world).progress_interval = 0.0  # every message (the default is every 3 s)
    await world.admin.slash(world.general, "markov train")
    edits = world.requests("PATCH", "/messages/@original")
    progress = [e.json["content"] for e in edits if e.json["content"].startswith("Reading")]
    assert len(progress) == 9
    assert progress[0] == (
        f"Reading <#{world.general.id}>… read 1 messages: learned 0, already learned 0, not opted in 1, "
        "skipped 0 (bots, webhooks, system or empty)."
    )
    assert progress[-1].startswith(f"Reading <#{world.general.id}>… read 9 messages: learned 6,")
    assert edits[-1].json["content"].startswith("Done: read 9 messages")


async def test_train_progress_is_throttled(world: World) -> None:
    await post_history(world)
    await world.admin.slash(world.general, "markov train")  # 9 messages, well under 3 s of virtual time
    edits = world.requests("PATCH", "/messages/@original")
    assert [e.json["content"][:4] for e in edits] == ["Done"]


async def test_train_cancel_stops_and_the_next_run_resumes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _ = await post_history(world)
    cog = admin_cog(world)
    learn_one = cog._learn_one

    async def learn_then_cancel(message: discord.Message, progress: TrainProgress) -> None:
        await learn_one(message, progress)
        if progress.read == 5:
            [view] = cog.running.values()
            view.cancelled = True  # what pressing Cancel does (SimCord runs a command to its end)

    monkeypatch.setattr(cog, "_learn_one", learn_then_cancel)
    result = await world.admin.slash(world.general, "markov train")
    assert final_text(world, result).startswith("Cancelled: read 5 messages: learned 2, already learned 0,")
    assert [await world.learned(m) for m in alice] == [False] * 4 + [True, True]
    monkeypatch.undo()
    resumed = await world.admin.slash(world.general, "markov train")
    assert final_text(world, resumed).startswith("Done: read 4 messages: learned 4,")
    assert all([await world.learned(m) for m in alice])


async def test_cancel_button_only_answers_the_invoker() -> None:
    view = CancelView(owner_id=1)
    stranger = SimpleNamespace(user=SimpleNamespace(id=2), response=SimpleNamespace(send_message=AsyncMock()))
    assert not await view.interaction_check(stranger)  # type: ignore[arg-type]
    assert not view.cancelled
    owner = SimpleNamespace(user=SimpleNamespace(id=1), response=SimpleNamespace(edit_message=AsyncMock()))
    assert await view.interaction_check(owner)  # type: ignore[arg-type]
    await view.cancel.callback(owner)  # type: ignore[arg-type]
    assert view.cancelled and view.is_finished()
    assert owner.response.edit_message.await_args.kwargs["content"] == "Cancelling…"


async def test_train_refuses_a_channel_that_is_not_enabled(world: World) -> None:
    await world.teach(LINES[:3])
    result = await world.admin.slash(world.general, "markov train")
    assert result.ephemeral
    assert "isn't enabled" in result.response.content
    assert await world.messages_seen() == 0


async def test_train_explains_when_the_bot_cannot_read_history(world: World) -> None:
    blind = world.guild.create_text_channel(
        "blind", overwrites={world.guild.me: discord.PermissionOverwrite(read_message_history=False)}
    )
    await world.admin.slash(world.general, "markov channel enable", channel=blind)
    result = await world.admin.slash(world.general, "markov train", channel=blind)
    assert result.response.content == (
        f"I can't read the history of <#{blind.id}>: give me View Channel and Read Message History there."
    )


async def test_train_turns_a_forbidden_history_into_a_clear_message(world: World) -> None:
    await post_history(world)
    world.env.inject_error("GET", "/channels/*/messages", status=403, code=50001, message="Missing Access")
    result = await world.admin.slash(world.general, "markov train")
    text = final_text(world, result)
    assert text.startswith(f"I can't read the history of <#{world.general.id}>"), text
    assert await world.messages_seen() == 0


async def test_train_refuses_a_second_run_on_the_same_channel(world: World) -> None:
    await post_history(world)
    cog = admin_cog(world)
    cog.running[(world.guild.id, world.general.id)] = CancelView(owner_id=0)
    result = await world.admin.slash(world.general, "markov train")
    assert "already reading" in result.response.content
    assert await world.messages_seen() == 0


async def test_train_a_thread_into_its_parent_chain(world: World) -> None:
    await world.enable()
    thread = world.env.backend.create_thread(world.general.id, "chat", world.alice.id)
    await world.env.settle()
    handle = next(t for t in world.general.threads if t.id == thread.id)
    await world.admin.slash(world.general, "markov channel disable")
    sent = [await world.alice.send(handle, line) for line in LINES[:3]]
    await world.enable()
    result = await world.admin.slash(world.general, "markov train", channel=handle)
    assert final_text(world, result).startswith("Done: read 3 messages: learned 3,")
    assert all([await world.learned(m) for m in sent])
    assert await world.messages_seen(world.general) == 3


# ---------------------------------------------------------------- reset


async def test_reset_after_confirming_deletes_the_chain(world: World) -> None:
    await world.enable()
    sent = await world.teach(LINES)
    prompt = await world.admin.slash(world.general, "markov reset")
    assert not prompt.ephemeral  # moderators see resets happen
    assert "(10 learned messages)" in prompt.response.content
    await world.admin.click(prompt.response, label="Reset")
    assert await world.messages_seen() == 0
    assert not any([await world.learned(m) for m in sent])
    assert world.message(prompt.response.id).content.startswith(
        f"Deleted the chain of <#{world.general.id}>: 10 learned messages removed."
    )
    again = await world.teach(["learning goes on"])
    assert await world.learned(again[0])
    assert_never_pings(world)


async def test_reset_under_a_slow_flush_is_deferred_then_asks_and_deletes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.enable()
    await world.teach(LINES)
    prompt = await world.slash_past_deadline(world.admin, "markov reset", monkeypatch)  # a flood queued
    assert not prompt.ephemeral
    assert "(10 learned messages)" in prompt.response.content
    await world.admin.click(prompt.response, label="Reset")
    assert await world.messages_seen() == 0
    assert world.message(prompt.response.id).content.startswith(
        f"Deleted the chain of <#{world.general.id}>: 10 learned messages removed."
    )
    assert world.env.errors == []


async def test_reset_on_a_database_another_process_holds_says_so_and_keeps_the_chain(
    impatient: None, world: World, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await world.enable()
    await world.teach(LINES)
    prompt = await world.admin.slash(world.general, "markov reset")
    async with holding_the_database(db_path):  # an import beside the bot, say
        await world.admin.click(prompt.response, label="Reset")
    assert world.message(prompt.response.id).content == replies.DATABASE_BUSY
    assert await world.messages_seen() == 10
    async with holding_the_database(db_path):
        result = await world.admin.slash(world.general, "markov settings", order=3)
    assert result.response.content == replies.DATABASE_BUSY
    assert (await world.brain.settings("discord", world.gid)).order == GuildSettings().order
    assert_refused_in_one_line(world, caplog)


async def test_reset_cancel_and_timeout_keep_the_chain(world: World) -> None:
    await world.enable()
    await world.teach(LINES)
    prompt = await world.admin.slash(world.general, "markov reset")
    await world.admin.click(prompt.response, label="Cancel")
    assert (
        world.message(prompt.response.id).content
        == f"Cancelled: the chain of <#{world.general.id}> was not touched."
    )
    late = await world.admin.slash(world.general, "markov reset")
    await world.env.advance_time(61)
    assert world.message(late.response.id).content == "Timed out: nothing was changed."
    assert await world.messages_seen() == 10


async def test_reset_cannot_be_confirmed_by_someone_else(world: World) -> None:
    await world.enable()
    await world.teach(LINES)
    other_mods = world.guild.roles["Mods"]
    other_admin = world.guild.add_member(world.env.create_user("admin2"), roles=[other_mods])
    prompt = await world.admin.slash(world.general, "markov reset")
    refused = await other_admin.click(prompt.response, label="Reset")
    assert refused.ephemeral
    assert refused.response.content == "Only the member who ran this command can answer it."
    stranger = await world.bob.click(prompt.response, label="Reset")
    assert stranger.ephemeral
    assert await world.messages_seen() == 10
    await world.admin.click(prompt.response, label="Cancel")
    assert await world.messages_seen() == 10


async def test_reset_another_channel_forgets_its_train_cursor(world: World) -> None:
    other = world.guild.create_text_channel("other")
    await world.admin.slash(world.general, "markov channel enable", channel=other)
    await world.teach(LINES[:3], channel=other)
    await world.admin.slash(world.general, "markov train", channel=other)
    assert await world.brain.store.get_meta(f"discord.train_cursor:{world.gid}:{other.id}")
    prompt = await world.admin.slash(world.general, "markov reset", channel=other)
    await world.admin.click(prompt.response, label="Reset")
    assert await world.messages_seen(other) == 0
    assert not await world.brain.store.get_meta(f"discord.train_cursor:{world.gid}:{other.id}")
    relearn = await world.admin.slash(world.general, "markov train", channel=other)
    assert final_text(world, relearn).startswith("Done: read 3 messages: learned 3,")
