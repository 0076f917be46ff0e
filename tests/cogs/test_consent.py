"""/markov optin, optout, me and forget, through SimCord, over a real Brain."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from unittest.mock import AsyncMock

import discord
import pytest
import simcord

from bot import replies
from bot.core.models import ForgetResult, MemberInfo
from bot.core.tokens import tokenize
from cogs.common import ConfirmView
from tests.cogs.conftest import World, assert_never_pings, assert_refused_in_one_line, corpus
from tests.lockholder import holding_the_database

LINES = corpus(6)


def info_tokens(lines: list[str]) -> int:
    return sum(len(tokenize(line)) for line in lines)


async def test_optin_then_messages_are_learned(world: World) -> None:
    await world.enable()
    before = await world.teach(["said before opting in"], member=world.bob)
    result = await world.bob.slash(world.general, "markov optin")
    assert result.ephemeral and result.response.content == replies.OPTED_IN
    assert await world.brain.is_opted_in("discord", world.gid, str(world.bob.id))
    after = await world.teach(["said after opting in"], member=world.bob)
    assert not await world.learned(before[0])
    assert await world.learned(after[0])
    again = await world.bob.slash(world.general, "markov optin")
    assert again.response.content == replies.ALREADY_OPTED_IN


async def test_optout_stops_learning_at_once(world: World) -> None:
    await world.enable()
    first = await world.teach(["learned while opted in"])
    result = await world.alice.slash(world.general, "markov optout")
    assert result.ephemeral and result.response.content == replies.OPTED_OUT
    later = await world.teach(["said after opting out"])
    assert await world.learned(first[0])  # what was learned stays until forget
    assert not await world.learned(later[0])
    again = await world.alice.slash(world.general, "markov optout")
    assert again.response.content == replies.NOT_OPTED_IN


async def test_consent_is_per_server(world: World) -> None:
    other = world.env.create_guild("Other Server")
    lobby = other.create_text_channel("lobby")
    mods = other.create_role("Mods", permissions=discord.Permissions(manage_guild=True))
    boss = other.add_member(world.env.create_user("boss"), roles=[mods])
    alice_there = other.add_member(world.alice.user)  # the same person, opted in only in the first server
    await boss.slash(lobby, "markov channel enable")
    sent = await alice_there.send(lobby, "not opted in over here")
    assert not await world.learned(sent)
    assert not await world.brain.is_opted_in("discord", str(other.id), str(world.alice.id))


async def test_me_reports_what_was_learned(world: World) -> None:
    await world.enable()
    await world.teach(LINES[:2])
    result = await world.alice.slash(world.general, "markov me")
    assert result.ephemeral
    info = await world.brain.member_info("discord", world.gid, str(world.alice.id))
    assert info.messages == 2
    assert result.response.content == replies.member(info)
    nobody = await world.bob.slash(world.general, "markov me")
    assert nobody.response.content == replies.member(MemberInfo(False, 0, 0, 0))


async def test_forget_after_confirming_removes_everything(world: World) -> None:
    await world.enable()
    sent = await world.teach(LINES)
    prompt = await world.alice.slash(world.general, "markov forget")
    assert prompt.ephemeral
    assert "removes all 6 of your learned messages" in prompt.response.content
    done = await world.alice.click(prompt.response, label="Forget me")
    assert done.acknowledged
    info = await world.brain.member_info("discord", world.gid, str(world.alice.id))
    assert info == MemberInfo(False, 0, 0, 0)
    assert await world.messages_seen() == 0
    assert not any([await world.learned(m) for m in sent])
    shown = world.message(prompt.response.id, viewer=world.alice)
    assert shown.content == replies.forgot(ForgetResult(6, info_tokens(LINES), 1))
    assert shown.components == []  # the buttons are gone
    assert_never_pings(world)


async def test_me_and_forget_under_a_slow_flush_are_deferred_then_answered(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.enable()
    await world.teach(LINES)
    me = await world.slash_past_deadline(world.alice, "markov me", monkeypatch)  # a flood queued
    assert me.ephemeral
    assert me.response.content == replies.member(MemberInfo(True, 6, info_tokens(LINES), 1))
    prompt = await world.slash_past_deadline(world.alice, "markov forget", monkeypatch)
    assert prompt.ephemeral
    assert "removes all 6 of your learned messages" in prompt.response.content
    await world.alice.click(prompt.response, label="Forget me")
    assert await world.messages_seen() == 0
    shown = world.message(prompt.response.id, viewer=world.alice)
    assert shown.content == replies.forgot(ForgetResult(6, info_tokens(LINES), 1))
    assert world.env.errors == []


@pytest.mark.parametrize(
    ("who", "command", "slow", "expected", "opted_in"),
    [
        ("bob", "markov optin", "opt_in", replies.OPTED_IN, True),
        ("alice", "markov optout", "opt_out", replies.OPTED_OUT, False),
    ],
)
async def test_optin_and_optout_waiting_for_the_write_lock_are_deferred_then_answered(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    who: str,
    command: str,
    slow: str,
    expected: str,
    opted_in: bool,
) -> None:
    member = getattr(world, who)
    result = await world.slash_past_deadline(member, command, monkeypatch, slow)  # a forget holds the lock
    assert result.ephemeral and result.response.content == expected
    assert await world.brain.is_opted_in("discord", world.gid, str(member.id)) == opted_in
    assert world.env.errors == []


async def test_forget_on_a_database_another_process_holds_says_so_and_keeps_everything(
    impatient: None, world: World, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await world.enable()
    await world.teach(LINES)
    prompt = await world.alice.slash(world.general, "markov forget")
    async with holding_the_database(db_path):  # an import beside the bot, say
        await world.alice.click(prompt.response, label="Forget me")
    shown = world.message(prompt.response.id, viewer=world.alice)
    assert shown.content == replies.DATABASE_BUSY and shown.components == []
    assert await world.brain.member_info("discord", world.gid, str(world.alice.id)) == MemberInfo(
        True, 6, info_tokens(LINES), 1
    )
    again = await world.alice.slash(world.general, "markov forget")  # once the file is free
    await world.alice.click(again.response, label="Forget me")
    assert await world.messages_seen() == 0
    assert_refused_in_one_line(world, caplog)


@pytest.mark.parametrize(("who", "command"), [("bob", "markov optin"), ("alice", "markov optout")])
async def test_consent_on_a_database_another_process_holds_says_so_and_changes_nothing(
    impatient: None, world: World, db_path: Path, caplog: pytest.LogCaptureFixture, who: str, command: str
) -> None:
    member = getattr(world, who)
    before = await world.brain.is_opted_in("discord", world.gid, str(member.id))
    async with holding_the_database(db_path):
        result = await member.slash(world.general, command)
    assert result.ephemeral and result.response.content == replies.DATABASE_BUSY
    assert await world.brain.is_opted_in("discord", world.gid, str(member.id)) == before
    assert_refused_in_one_line(world, caplog)


async def test_forget_cancel_keeps_everything(world: World) -> None:
    await world.enable()
    await world.teach(LINES)
    prompt = await world.alice.slash(world.general, "markov forget")
    await world.alice.click(prompt.response, label="Cancel")
    info = await world.brain.member_info("discord", world.gid, str(world.alice.id))
    assert info.opted_in and info.messages == 6
    shown = world.message(prompt.response.id, viewer=world.alice)
    assert shown.content == "Cancelled: nothing was forgotten."
    assert shown.components == []


async def test_forget_times_out_and_keeps_everything(world: World) -> None:
    await world.enable()
    await world.teach(LINES)
    prompt = await world.alice.slash(world.general, "markov forget")
    await world.env.advance_time(61)
    shown = world.message(prompt.response.id, viewer=world.alice)
    assert shown.content == "Timed out: nothing was changed."
    assert shown.components == []
    info = await world.brain.member_info("discord", world.gid, str(world.alice.id))
    assert info.opted_in and info.messages == 6


async def test_nobody_else_can_answer_a_forget(world: World) -> None:
    await world.enable()
    await world.teach(LINES)
    prompt = await world.alice.slash(world.general, "markov forget")
    # The prompt is ephemeral: Discord does not even show it to anyone else.
    with pytest.raises(simcord.SetupError):
        await world.bob.click(prompt.response, label="Forget me")
    info = await world.brain.member_info("discord", world.gid, str(world.alice.id))
    assert info.opted_in and info.messages == 6


async def test_confirm_view_refuses_other_members() -> None:
    # Belt and braces behind the ephemeral prompt (and the public /markov reset prompt):
    # the view itself checks who pressed.
    view = ConfirmView(owner_id=1)
    stranger = SimpleNamespace(user=SimpleNamespace(id=2), response=SimpleNamespace(send_message=AsyncMock()))
    assert not await view.interaction_check(stranger)  # type: ignore[arg-type]
    stranger.response.send_message.assert_awaited_once()
    assert stranger.response.send_message.await_args.kwargs["ephemeral"] is True
    owner = SimpleNamespace(user=SimpleNamespace(id=1))
    assert await view.interaction_check(owner)  # type: ignore[arg-type]
    assert view.result is None and not view.is_finished()
