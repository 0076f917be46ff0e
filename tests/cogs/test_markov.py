"""/markov generate and /markov stats, through SimCord, over a real Brain."""

from __future__ import annotations

import re
from types import SimpleNamespace

import discord
import pytest
import simcord
from simcord.backend.errors import OptionError

from bot import replies
from bot.core import retention
from bot.core.models import Generated, GenerateStatus, Message
from bot.stats_text import figures
from cogs.common import refuse_channel
from tests.cogs.conftest import VOCABULARY, World, assert_never_pings, corpus


async def learn_corpus(world: World, channel=None, member=None) -> None:
    await world.brain.update_settings("discord", world.gid, order=1)
    await world.enable(channel)
    await world.teach(corpus(), member=member, channel=channel)


def words(text: str) -> set[str]:
    return set(text.split())


async def test_generate_posts_new_text_from_this_channel(world: World) -> None:
    await learn_corpus(world)
    result = await world.bob.slash(world.general, "markov generate")
    assert not result.ephemeral
    text = result.response.content
    assert text and words(text) <= VOCABULARY
    assert text not in corpus()  # the copy guard is on by default
    assert world.public_posts()[-1].content == text
    assert_never_pings(world)


async def test_generate_count_posts_several_messages(world: World) -> None:
    await learn_corpus(world)
    result = await world.bob.slash(world.general, "markov generate", count=3)
    posted = [result.response, *result.followups]
    assert len(posted) == 3
    assert all(not p.ephemeral and p.content and words(p.content) <= VOCABULARY for p in posted)


async def test_a_slow_generation_is_deferred_within_discords_three_seconds_then_posted(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await learn_corpus(world)
    # say, the walker replaced after it stopped answering
    result = await world.slash_past_deadline(world.bob, "markov generate", monkeypatch, slow="generate_many")
    assert not result.ephemeral
    text = result.response.content
    assert text and words(text) <= VOCABULARY
    assert world.public_posts()[-1].content == text
    assert world.env.errors == []


async def test_generate_from_a_start_word(world: World) -> None:
    await learn_corpus(world)
    result = await world.bob.slash(world.general, "markov generate", start="river")
    assert "river" in result.response.content.split()


async def test_generate_unknown_start_word_is_explained(world: World) -> None:
    await learn_corpus(world)
    result = await world.bob.slash(world.general, "markov generate", start="zebra")
    assert result.ephemeral
    assert result.response.content == replies.generated(
        Generated(GenerateStatus.UNKNOWN_START), start="zebra"
    )
    assert world.public_posts() == []


async def test_generate_without_a_chain_says_so(world: World) -> None:
    result = await world.bob.slash(world.general, "markov generate")
    assert result.ephemeral
    assert result.response.content == "I haven't learned anything in this channel yet."


async def test_generate_copy_guard_refusal_is_explained(world: World) -> None:
    await world.enable()
    await world.teach(["one single lonely message here"])
    result = await world.bob.slash(world.general, "markov generate")
    assert result.ephemeral
    assert "tries repeated a learned message" in result.response.content
    assert world.public_posts() == []


async def test_generate_member_must_have_opted_in(world: World) -> None:
    await learn_corpus(world)
    result = await world.alice.slash(world.general, "markov generate", member=world.bob)
    assert result.ephemeral
    assert "hasn't opted in" in result.response.content
    assert world.public_posts() == []


async def test_generate_member_uses_only_their_part(world: World) -> None:
    await learn_corpus(world)
    await world.bob.slash(world.general, "markov optin")
    bob_lines = corpus(
        20,
        ["zeta", "omega", "kappa", "alpha", "beta"],
        ["eats", "sees", "hears", "finds", "loses"],
        ["gamma", "delta", "sigma", "lambda", "theta"],
        end="again",
    )
    await world.teach(bob_lines, member=world.bob)
    bob_words = {w for line in bob_lines for w in line.split()}
    for _ in range(3):
        result = await world.alice.slash(world.general, "markov generate", member=world.bob)
        assert not result.ephemeral, result.response.content
        assert words(result.response.content) <= bob_words
        await world.env.advance_time(5)


async def test_generate_cooldown_is_per_member_and_expires(world: World) -> None:
    await learn_corpus(world)
    first = await world.bob.slash(world.general, "markov generate")
    assert not first.ephemeral
    again = await world.bob.slash(world.general, "markov generate")
    assert again.ephemeral
    assert again.response.content == replies.slow_down("generate", 5, 5.0)
    assert "generate and stats" in again.response.content  # says what the cooldown covers
    other = await world.alice.slash(world.general, "markov generate")
    assert not other.ephemeral  # alice has her own cooldown
    await world.env.advance_time(3)
    later = await world.bob.slash(world.general, "markov generate")
    assert later.response.content == replies.slow_down("generate", 2, 5.0)
    await world.env.advance_time(2)
    assert not (await world.bob.slash(world.general, "markov generate")).ephemeral
    assert len(world.public_posts()) == 3


async def test_refusals_do_not_start_the_cooldown(world: World) -> None:
    result = await world.bob.slash(world.general, "markov generate")
    assert result.ephemeral  # nothing learned yet
    await learn_corpus(world)
    assert not (await world.bob.slash(world.general, "markov generate")).ephemeral


async def test_generate_from_another_readable_channel(world: World) -> None:
    other = world.guild.create_text_channel("other")
    await learn_corpus(world, channel=other)
    result = await world.bob.slash(world.general, "markov generate", channel=other)
    assert not result.ephemeral
    assert words(result.response.content) <= VOCABULARY
    assert world.public_posts(world.general)  # posted where it was asked


async def test_generate_refuses_a_channel_whose_history_the_invoker_cannot_read(world: World) -> None:
    hidden = world.guild.create_text_channel(
        "staff",
        overwrites={world.bob: discord.PermissionOverwrite(read_message_history=False)},
    )
    await learn_corpus(world, channel=hidden)
    result = await world.bob.slash(world.general, "markov generate", channel=hidden)
    assert result.ephemeral
    assert (
        result.response.content == "You can't read that channel's history, so I won't use its chain for you."
    )
    assert world.public_posts() == []
    stats = await world.bob.slash(world.general, "markov stats", channel=hidden)
    assert stats.ephemeral and "can't read that channel" in stats.response.content


async def invoker(world: World, member) -> discord.Member:
    """The bot's discord.Member for an actor (from a message they sent; no members intent)."""
    sent = await member.send(world.general, "hello")
    cached = discord.utils.get(world.bot.cached_messages, id=sent.id)
    assert cached is not None and isinstance(cached.author, discord.Member)
    return cached.author


async def test_guard_refuses_invisible_channels_and_other_servers(world: World) -> None:
    # SimCord (like the Discord client) will not even offer these channels, so the guard is
    # exercised directly, with the bot's own discord.py objects of the simulated world.
    secret = world.guild.create_text_channel(
        "secret", overwrites={world.guild.default_role: discord.PermissionOverwrite(view_channel=False)}
    )
    elsewhere = world.env.create_guild("Elsewhere").create_text_channel("lobby")
    bob = await invoker(world, world.bob)
    here = world.bot_channel(world.general)
    asked = SimpleNamespace(guild=here.guild, user=bob, channel=here)
    assert refuse_channel(asked, here, posting=True) is None
    assert "can't read" in refuse_channel(asked, world.bot_channel(secret), posting=True)
    assert "another server" in refuse_channel(asked, world.bot_channel(elsewhere), posting=True)
    assert "another server" in refuse_channel(asked, world.bot_channel(elsewhere), posting=False)


async def test_nsfw_chain_is_only_posted_in_nsfw_channels(world: World) -> None:
    late = world.guild.create_text_channel("late-night")
    also = world.guild.create_text_channel("also-nsfw")
    world.bot_channel(late).nsfw = True  # SimCord does not model the flag: set it on the bot's cache
    world.bot_channel(also).nsfw = True
    await learn_corpus(world, channel=late)
    refused = await world.bob.slash(world.general, "markov generate", channel=late)
    assert refused.ephemeral
    assert "age-restricted" in refused.response.content
    assert world.public_posts(world.general) == []
    allowed = await world.bob.slash(also, "markov generate", channel=late)
    assert not allowed.ephemeral and words(allowed.response.content) <= VOCABULARY
    await world.env.advance_time(5)
    inside = await world.bob.slash(late, "markov generate")
    assert not inside.ephemeral


async def test_generate_in_a_thread_uses_the_parent_channel(world: World) -> None:
    await learn_corpus(world)
    thread = world.env.backend.create_thread(world.general.id, "chat", world.alice.id)
    await world.env.settle()
    handle = next(t for t in world.general.threads if t.id == thread.id)
    result = await world.bob.slash(handle, "markov generate")
    assert not result.ephemeral
    assert words(result.response.content) <= VOCABULARY


async def test_generated_mentions_never_ping(world: World) -> None:
    await world.brain.update_settings("discord", world.gid, copy_guard=False)
    await world.enable()
    await world.teach([f"@everyone look <@{world.bob.id}> here"])
    result = await world.alice.slash(world.general, "markov generate")
    text = result.response.content
    assert text == "@\u200beveryone look @someone here"  # the core defused both
    assert_never_pings(world)  # and sent with allowed_mentions parse []


async def test_stats_reports_the_figures_and_attaches_the_card(world: World) -> None:
    await learn_corpus(world)
    result = await world.bob.slash(world.general, "markov stats")
    assert not result.ephemeral
    embed = result.response.embeds[0]
    report = await world.brain.stats(world.chain())  # cached: the same report the bot used
    assert embed.description == retention.summary(report)
    assert [(f.name, f.value) for f in embed.fields] == figures(report)
    assert retention.BYTES_METHOD in embed.footer.text
    [card] = result.response.attachments
    assert card.filename == "markov-stats.png"
    assert embed.image.url == "attachment://markov-stats.png"
    assert_never_pings(world)


async def test_stats_of_an_empty_channel_has_no_card(world: World) -> None:
    result = await world.bob.slash(world.general, "markov stats")
    embed = result.response.embeds[0]
    assert embed.description == retention.summary(retention.RetentionReport.empty())
    assert result.response.attachments == []


@pytest.mark.parametrize("name", ["markov generate", "markov stats"])
async def test_commands_answer_inside_threads_and_other_channels(world: World, name: str) -> None:
    other = world.guild.create_text_channel("random")
    result = await world.bob.slash(other, name)
    assert result.acknowledged


async def test_a_missing_permission_is_explained_not_raised_at_the_user(world: World) -> None:
    await learn_corpus(world)
    world.env.inject_error("POST", "/webhooks/*", status=403, code=50013, message="Missing Permissions")
    result = await world.bob.slash(world.general, "markov generate", count=2)
    assert not result.response.ephemeral  # the first message went out
    [explained] = result.followups
    assert explained.ephemeral
    assert explained.content.startswith(f"I'm missing a permission in <#{world.general.id}>")
    [error] = world.env.errors  # what the tree's error handler received
    assert isinstance(error.original, discord.Forbidden)


async def test_an_unexpected_error_gets_a_short_reply_and_is_logged(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    await learn_corpus(world)  # so that nothing refuses the request before it is generated
    monkeypatch.setattr(world.brain, "generate", broken)
    result = await world.bob.slash(world.general, "markov generate")
    assert result.ephemeral
    assert (
        result.response.content == "Something went wrong on my side; it was logged. Please try again later."
    )
    assert "/markov generate failed" in caplog.text and "boom" in caplog.text
    assert len(world.env.errors) == 1


# ---------------------------------------------------------------- who may see another channel's text

PING = re.compile(r"@(everyone|here|room)\b|<@[!&]?\d+>|@[a-z0-9._=/+-]+:[a-z0-9.-]+", re.IGNORECASE)


async def learn_directly(world: World, channel) -> None:
    """Fill a channel's chain through the Brain (the bot need not see the channel for this)."""
    await world.brain.update_settings("discord", world.gid, order=1)
    await world.brain.set_channel("discord", world.gid, str(channel.id), True)
    for i, line in enumerate(corpus()):
        await world.brain.learn(
            Message("discord", world.gid, str(channel.id), str(world.alice.id), f"s{i}", line)
        )
    await world.brain.flush()


def staff_only(world: World) -> simcord.ChannelHandle:
    """#secret: hidden from @everyone, readable by the Mods role (the admin)."""
    mods = world.guild.roles["Mods"]
    return world.guild.create_text_channel(
        "secret",
        overwrites={
            world.guild.default_role: discord.PermissionOverwrite(view_channel=False),
            mods: discord.PermissionOverwrite(view_channel=True),
        },
    )


@pytest.mark.parametrize("command", ["markov generate", "markov stats"])
async def test_a_private_channel_is_shown_only_to_the_invoker_elsewhere(world: World, command: str) -> None:
    secret = staff_only(world)
    await learn_directly(world, secret)
    result = await world.admin.slash(world.general, command, channel=secret)
    assert result.ephemeral
    posted = [result.response, *result.followups]
    assert posted[0].content.startswith("Shown only to you because not everyone who can see this channel")
    assert f"<#{secret.id}>" in posted[0].content  # a channel link, left a link
    assert all(p.ephemeral for p in posted)
    if command == "markov stats":
        assert posted[0].embeds and posted[0].attachments
    else:
        assert words(posted[1].content) <= VOCABULARY
    assert world.public_posts(world.general) == []
    await world.env.advance_time(5)
    inside = await world.admin.slash(secret, command)  # its own channel: everyone there can read it
    assert not inside.ephemeral
    assert "Shown only to you" not in (inside.response.content or "")


async def test_a_channel_denied_to_one_member_is_not_posted_publicly(world: World) -> None:
    almost = world.guild.create_text_channel(
        "almost-public", overwrites={world.bob: discord.PermissionOverwrite(read_message_history=False)}
    )
    await learn_directly(world, almost)
    result = await world.alice.slash(world.general, "markov generate", channel=almost)
    assert result.ephemeral and result.response.content.startswith("Shown only to you")
    assert world.public_posts(world.general) == []


async def test_an_open_channel_is_posted_publicly_elsewhere(world: World) -> None:
    other = world.guild.create_text_channel("other")
    await learn_directly(world, other)
    result = await world.bob.slash(world.general, "markov stats", channel=other)
    assert not result.ephemeral
    assert world.public_posts(world.general)


async def test_refusals_come_before_the_cooldown(world: World) -> None:
    await learn_corpus(world)
    hidden = world.guild.create_text_channel(
        "staff", overwrites={world.bob: discord.PermissionOverwrite(read_message_history=False)}
    )
    assert not (await world.bob.slash(world.general, "markov generate")).ephemeral
    refused = await world.bob.slash(world.general, "markov generate", channel=hidden)
    assert refused.response.content == replies.CANNOT_READ
    not_in = await world.alice.slash(world.general, "markov generate")
    assert not not_in.ephemeral
    imitate = await world.alice.slash(world.general, "markov generate", member=world.bob)
    assert "hasn't opted in" in imitate.response.content
    # bob is cooling down; a start word nobody ever said is still refused as such, not slowed down.
    unknown = await world.bob.slash(world.general, "markov generate", start="zyzzyva")
    assert unknown.ephemeral and "don't know the word 'zyzzyva'" in unknown.response.content
    slowed = await world.bob.slash(world.general, "markov generate")
    assert slowed.response.content.startswith("Slow down")


async def test_stats_has_a_cooldown_of_its_own(world: World) -> None:
    await learn_corpus(world)
    assert not (await world.bob.slash(world.general, "markov stats")).ephemeral
    assert not (await world.bob.slash(world.general, "markov generate")).ephemeral
    again = await world.bob.slash(world.general, "markov stats")
    assert again.ephemeral and again.response.content == replies.slow_down("stats", 5, 5.0)


# ---------------------------------------------------------------- nothing quoted back pings


async def test_a_long_ping_laden_start_gets_a_short_reply_that_pings_nobody(world: World) -> None:
    await learn_corpus(world)
    start = f"@room @everyone <@{world.bob.id}> @bob:example.org " + "x" * 140  # the option's 200 max
    assert len(start) <= 200
    result = await world.alice.slash(world.general, "markov generate", start=start)
    text = result.response.content
    assert result.ephemeral and text.startswith("I don't know the word '@")
    assert len(text) < 150
    assert not PING.search(text), text
    assert_never_pings(world)


async def test_discord_refuses_a_start_longer_than_the_option_allows(world: World) -> None:
    await learn_corpus(world)
    with pytest.raises(OptionError, match="at most 200 characters"):  # as Discord itself refuses it
        await world.alice.slash(world.general, "markov generate", start="@room " * 2000)
    assert world.public_posts() == []
