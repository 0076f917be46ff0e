"""The Brain: consent and data rules, exact forgetting and unlearning, generation invariants.

The store's contract: every test whose Brain is the module's `brain` fixture, or opened at `where`
or in `places`, runs on SQLite and on a real PostgreSQL server (tests/core/conftest.py).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import chain as chainmod
from bot.core import generation, walker
from bot.core import store as store_module
from bot.core.brain import Brain
from bot.core.generation import RECHECK_TRIES
from bot.core.messagekeys import message_key
from bot.core.models import ChainKey, GenerateStatus, LearnStatus, Message, UnlearnStatus
from bot.core.sealed import Sealer
from bot.core.store import PRUNE_SECONDS
from bot.core.tokens import tokenize
from tests.core.dump import counts_without_rows, hub_errors
from tests.core.enginebrains import (
    Databases,
    Where,
    dump_of,
    key_path,
    orphan_recent_tokens,
    places,
    recent_keys,
    rows_of,
    set_recent,
)

P, G = "test", "guild"
FINGERPRINT_KEY = b"0123456789abcdef"
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "!", ",", "and", "then", "slept"]


def msg(author: str, mid: str, text: str, channel: str = "c1", guild: str = G) -> Message:
    return Message(P, guild, channel, author, mid, text)


PG_EXAMPLES = 12  # hypothesis examples per property on PostgreSQL: each makes two databases


def examples(databases: Databases | None, on_sqlite: int) -> int:
    """How many examples a property runs on this engine."""
    return on_sqlite if databases is None else PG_EXAMPLES


@pytest.fixture
def brain(engine_brain: Brain) -> Brain:
    """This module's Brain: on each engine in turn."""
    return engine_brain


async def open_brain(where: Where, tmp: Path, **options: object) -> Brain:
    """A Brain keyed with FINGERPRINT_KEY over a SQLite file or a PostgreSQL database."""
    options = {"flush_interval": 0.05, "key": FINGERPRINT_KEY, **key_path(where, tmp), **options}
    return await Brain.open(where, **options)  # type: ignore[arg-type]


async def learn_all(brain: Brain, messages: list[Message]) -> None:
    for m in messages:
        await brain.opt_in(m.platform, m.guild, m.author)
        await brain.set_channel(m.platform, m.guild, m.channel, True)
        await brain.learn(m)
    await brain.flush()


# ------------------------------------------------------------------ consent and channel rules


async def test_nothing_is_learned_before_optin(brain: Brain) -> None:
    await brain.set_channel(P, G, "c1", True)
    result = await brain.learn(msg("alice", "1", "hello there"))
    await brain.flush()
    assert result.status is LearnStatus.NOT_OPTED_IN
    assert not await brain.is_learned(P, "1")
    assert (await brain.counts(ChainKey(P, G, "c1")))["messages_seen"] == 0


async def test_only_enabled_channels_are_learned(brain: Brain) -> None:
    await brain.opt_in(P, G, "alice")
    result = await brain.learn(msg("alice", "1", "hello there"))
    assert result.status is LearnStatus.CHANNEL_DISABLED
    await brain.set_channel(P, G, "c1", True)
    assert (await brain.learn(msg("alice", "2", "hello there"))).queued
    await brain.flush()
    assert not await brain.is_learned(P, "1")
    assert await brain.is_learned(P, "2")


async def test_optout_stops_learning_at_once(brain: Brain) -> None:
    await learn_all(brain, [msg("alice", "1", "first words")])
    assert await brain.opt_out(P, G, "alice")
    assert (await brain.learn(msg("alice", "2", "second words"))).status is LearnStatus.NOT_OPTED_IN
    info = await brain.member_info(P, G, "alice")
    assert (info.opted_in, info.messages) == (False, 1)


async def test_consent_is_per_guild(brain: Brain) -> None:
    await brain.opt_in(P, "g1", "alice")
    await brain.set_channel(P, "g2", "c", True)
    assert (
        await brain.learn(msg("alice", "1", "hi", channel="c", guild="g2"))
    ).status is LearnStatus.NOT_OPTED_IN


async def test_direct_messages_are_never_learned(brain: Brain) -> None:
    assert (await brain.learn(msg("alice", "1", "hi", guild=""))).status is LearnStatus.NO_GUILD


async def test_empty_message_is_refused_clearly(brain: Brain) -> None:
    await brain.opt_in(P, G, "alice")
    await brain.set_channel(P, G, "c1", True)
    assert (await brain.learn(msg("alice", "1", "  \u200b ```code only``` "))).status is LearnStatus.EMPTY


async def test_a_message_is_never_learned_twice(brain: Brain) -> None:
    await learn_all(brain, [msg("alice", "1", "one two three")])
    await learn_all(brain, [msg("alice", "1", "one two three")])
    assert (await brain.counts(ChainKey(P, G, "c1")))["messages_seen"] == 1


async def test_settings_reject_bad_values_and_change_nothing(brain: Brain) -> None:
    before = await brain.settings(P, G)
    for bad in ({"order": 4}, {"run_length": 2}, {"chime_chance": 0.9}, {"colour": "red"}):
        try:
            await brain.update_settings(P, G, **bad)
        except ValueError as exc:
            assert str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")
    assert await brain.settings(P, G) == before
    assert (await brain.update_settings(P, G, order=3)).order == 3


async def test_chain_order_and_run_length_come_from_settings_at_creation(brain: Brain) -> None:
    await brain.update_settings(P, G, order=1, run_length=4)
    await learn_all(brain, [msg("alice", "1", "a b c d e f")])
    info = await brain.store.find_chain(ChainKey(P, G, "c1"))
    assert info is not None and (info.order, info.run_length) == (1, 4)
    await brain.update_settings(P, G, order=3)
    assert (await brain.store.find_chain(ChainKey(P, G, "c1"))) == info


# ------------------------------------------------------------------ unlearning, edits, forgetting


async def test_unlearn_needs_the_learned_text(brain: Brain) -> None:
    await learn_all(brain, [msg("alice", "1", "the cat sat")])
    assert await brain.unlearn(msg("alice", "1", "the dog sat")) is UnlearnStatus.TEXT_MISMATCH
    assert await brain.unlearn(msg("bob", "1", "the cat sat")) is UnlearnStatus.TEXT_MISMATCH
    assert await brain.is_learned(P, "1")
    assert await brain.unlearn(msg("alice", "1", "the cat sat")) is UnlearnStatus.UNLEARNED
    assert await brain.unlearn(msg("alice", "1", "the cat sat")) is UnlearnStatus.NOT_LEARNED


async def test_edit_replaces_the_learned_version(brain: Brain, where: Where) -> None:
    await learn_all(brain, [msg("alice", "1", "the cat sat")])
    await brain.edit(msg("alice", "1", "the cat sat"), msg("alice", "1", "the dog ran"))
    await brain.flush()
    tokens = (await dump_of(where, brain.store.key))["tokens"]
    assert set(tokens) == {"the", "dog", "ran"}


async def test_edit_with_unknown_old_text_keeps_the_old_version(where: Where, tmp_path: Path) -> None:
    brain = await open_brain(where, tmp_path, edit_window_days=0)  # no recent rows
    try:
        await learn_all(brain, [msg("alice", "1", "the cat sat")])
        result = await brain.edit(None, msg("alice", "1", "the dog ran"))
        await brain.flush()
        assert result.status is LearnStatus.ALREADY_LEARNED
        assert (await brain.counts(ChainKey(P, G, "c1")))["tokens_seen"] == 3
        assert await brain.unlearn_id(P, "1") is UnlearnStatus.NOT_KEPT
        assert await brain.is_learned(P, "1")
    finally:
        await brain.close()


async def test_forget_only_touches_that_guild(brain: Brain) -> None:
    await learn_all(
        brain, [msg("alice", "1", "hello g1", guild="g1"), msg("alice", "2", "hello g2", guild="g2")]
    )
    result = await brain.forget(P, "g1", "alice")
    assert (result.messages, result.chains) == (1, 1)
    assert not await brain.is_learned(P, "1")
    assert await brain.is_learned(P, "2")
    assert not await brain.is_opted_in(P, "g1", "alice")
    assert await brain.is_opted_in(P, "g2", "alice")


async def test_reset_deletes_one_chain(brain: Brain, where: Where) -> None:
    await learn_all(
        brain, [msg("alice", "1", "alpha beta", channel="a"), msg("alice", "2", "gamma delta", channel="b")]
    )
    assert await brain.reset(ChainKey(P, G, "a")) == 1
    assert set((await dump_of(where, brain.store.key))["tokens"]) == {"gamma", "delta"}
    assert (await brain.generate(ChainKey(P, G, "a"))).status is GenerateStatus.NO_CHAIN


messages_strategy = st.lists(
    st.tuples(
        st.sampled_from(["alice", "bob", "carol"]),
        st.sampled_from(["c1", "c2"]),
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join),
    ),
    min_size=1,
    max_size=25,
)


def as_messages(raw: list[tuple[str, str, str]]) -> list[Message]:
    return [msg(author, str(i), text, channel=channel) for i, (author, channel, text) in enumerate(raw)]


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def dumps_after(
    databases: Databases | None, learned: list[Message], then: object, expected: list[Message], order: int
) -> tuple[object, object]:
    with tempfile.TemporaryDirectory() as tmp:
        async with places(Path(tmp), databases, 2) as (first, second):
            a = await open_brain(first, Path(tmp), hub_rows=1)  # every context a hub (SQLite's only)
            b = await open_brain(second, Path(tmp))
            try:
                for brain in (a, b):
                    await brain.update_settings(P, G, order=order, run_length=3)
                await learn_all(a, learned)
                await then(a)  # type: ignore[operator]
                await learn_all(b, expected)
            finally:
                await a.close()
                await b.close()
            if isinstance(first, Path):
                assert hub_errors(first) == []
            return await dump_of(first, FINGERPRINT_KEY), await dump_of(second, FINGERPRINT_KEY)


def test_forget_is_exactly_never_having_learned_the_member(databases: Databases | None) -> None:
    @settings(
        max_examples=examples(databases, 40), deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(messages_strategy, st.integers(1, 3))
    def check(raw: list[tuple[str, str, str]], order: int) -> None:
        messages = as_messages(raw)
        others = [m for m in messages if m.author != "alice"]

        async def forget(brain: Brain) -> None:
            await brain.forget(P, G, "alice")

        after_forget, never = run(dumps_after(databases, messages, forget, others, order))  # type: ignore[misc]
        assert after_forget == never

    check()


def test_unlearn_is_exactly_never_having_learned_the_message(databases: Databases | None) -> None:
    @settings(
        max_examples=examples(databases, 40), deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(messages_strategy, st.integers(1, 3), st.data())
    def check(raw: list[tuple[str, str, str]], order: int, data: st.DataObject) -> None:
        messages = as_messages(raw)
        gone = data.draw(st.sets(st.sampled_from(range(len(messages)))))
        kept = [m for i, m in enumerate(messages) if i not in gone]

        async def unlearn(brain: Brain) -> None:
            for i in sorted(gone):
                assert await brain.unlearn(messages[i]) is UnlearnStatus.UNLEARNED

        after, never = run(dumps_after(databases, messages, unlearn, kept, order))  # type: ignore[misc]
        assert after == never

    check()


def ngrams(tokens: list[str], order: int, complete: bool) -> set[tuple[str, ...]]:
    padded = ["<BEGIN>"] * order + tokens + (["<END>"] if complete else [])
    return {tuple(padded[i - order : i + 1]) for i in range(order, len(padded))}


def test_generation_only_walks_learned_transitions_and_is_reproducible(databases: Databases | None) -> None:
    @settings(
        max_examples=examples(databases, 30), deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(
        messages_strategy, st.integers(1, 3), st.integers(0, 2**32), st.sampled_from([None, "cat", "sat on"])
    )
    def check(raw: list[tuple[str, str, str]], order: int, seed: int, start: str | None) -> None:
        walks_only_learned_transitions(databases, raw, order, seed, start)

    check()


def walks_only_learned_transitions(
    databases: Databases | None, raw: list[tuple[str, str, str]], order: int, seed: int, start: str | None
) -> None:
    messages = [m for m in as_messages(raw) if m.channel == "c1"] or [msg("alice", "x", "the cat sat on")]
    learned: set[tuple[str, ...]] = set()
    for m in messages:
        learned |= ngrams(tokenize(m.text), order, complete=True)

    async def go() -> tuple[object, object]:
        with tempfile.TemporaryDirectory() as tmp:
            async with places(Path(tmp), databases, 1) as (where,):
                brain = await open_brain(where, Path(tmp))
                try:
                    await brain.update_settings(P, G, order=order)
                    await learn_all(brain, messages)
                    key = ChainKey(P, G, "c1")
                    one = await brain.generate(key, start=start, rng=random.Random(seed), guard=False)
                    two = await brain.generate(key, start=start, rng=random.Random(seed), guard=False)
                    return one, two
                finally:
                    await brain.close()

    one, two = run(go())  # type: ignore[misc]
    assert one == two
    if one.status is GenerateStatus.UNKNOWN_START:
        assert start is not None
        return
    assert one.ok
    tokens = list(one.tokens)
    complete = len(tokens) < chainmod.MAX_WALK
    assert ngrams(tokens, order, complete) <= learned
    if start:
        assert " ".join(tokens).find(start) >= 0


async def test_unknown_start_word_is_reported(brain: Brain) -> None:
    await learn_all(brain, [msg("alice", "1", "the cat sat")])
    result = await brain.generate(ChainKey(P, G, "c1"), start="zebra")
    assert result.status is GenerateStatus.UNKNOWN_START


async def test_start_word_matches_other_case(brain: Brain) -> None:
    await learn_all(brain, [msg("alice", "1", "Cats are great and cats nap")])
    result = await brain.generate(ChainKey(P, G, "c1"), start="CATS", guard=False, rng=random.Random(1))
    assert result.ok and any(t.lower() == "cats" for t in result.tokens)


async def test_start_word_in_the_middle_walks_back_to_the_beginning(brain: Brain) -> None:
    await learn_all(brain, [msg("alice", "1", "one two three four five six")])
    result = await brain.generate(ChainKey(P, G, "c1"), start="four", guard=False)
    assert result.tokens == ("one", "two", "three", "four", "five", "six")


async def test_member_generation_uses_only_their_part(brain: Brain) -> None:
    await learn_all(brain, [msg("alice", "1", "alpha beta gamma"), msg("bob", "2", "delta epsilon zeta")])
    key = ChainKey(P, G, "c1")
    for seed in range(10):
        result = await brain.generate(key, author="alice", guard=False, rng=random.Random(seed))
        assert result.ok and set(result.tokens) <= {"alpha", "beta", "gamma"}
    started = await brain.generate(key, start="beta", author="alice", guard=False)
    assert started.tokens == ("alpha", "beta", "gamma")
    assert (await brain.generate(key, author="nobody")).status is GenerateStatus.NO_MEMBER_DATA


async def test_chains_never_mix(brain: Brain) -> None:
    await learn_all(
        brain,
        [msg("alice", "1", "red green blue", channel="a"), msg("alice", "2", "one two three", channel="b")]
        + [msg("alice", f"g{i}", "north south", channel="a", guild="other") for i in range(3)],
    )
    for seed in range(20):
        result = await brain.generate(ChainKey(P, G, "a"), guard=False, rng=random.Random(seed))
        assert set(result.tokens) <= {"red", "green", "blue"}
    assert (await brain.generate(ChainKey(P, "other", "b"))).status is GenerateStatus.NO_CHAIN


async def test_a_tiny_chain_refuses_to_copy_and_says_so(brain: Brain) -> None:
    await learn_all(brain, [msg("alice", "1", "only one message here to copy")])
    result = await brain.generate(ChainKey(P, G, "c1"))
    assert result.status is GenerateStatus.COPY_GUARD
    assert result.text is None


async def test_the_copy_guard_gives_up_when_its_time_budget_is_spent(brain: Brain) -> None:
    await learn_all(brain, [msg("alice", "1", "only one message here to copy")])
    patient, hasty = Brain(brain.store, guard_budget=3600.0), Brain(brain.store, guard_budget=0.0)
    assert (await patient.generate(ChainKey(P, G, "c1"), tries=7)).tries == 7
    result = await hasty.generate(ChainKey(P, G, "c1"), tries=7)
    assert result.status is GenerateStatus.COPY_GUARD and result.tries == walker.MIN_GUARD_TRIES


async def test_a_chain_found_to_replay_its_source_is_rechecked_briefly_until_the_verdict_expires(
    brain: Brain, monkeypatch: pytest.MonkeyPatch
) -> None:
    brain.guard_budget = 60.0  # tries are what is pinned here, not the time they take (see above)
    await learn_all(brain, [msg("alice", "1", "only one message here to copy")])
    key = ChainKey(P, G, "c1")
    assert (await brain.generate(key, tries=7)).tries == 7, "the first verdict takes every try"
    again = await brain.generate(key, tries=7)
    assert again.status is GenerateStatus.COPY_GUARD and again.tries == RECHECK_TRIES
    other_start = await brain.generate(key, start="message", tries=7)
    assert other_start.tries == 7, "a start word is its own verdict"
    assert (await brain.generate(key, guard=False)).ok, "the guard off ignores the verdict"
    monkeypatch.setattr(generation, "REPLAY_VERDICT_SECONDS", 0.0)
    assert (await brain.generate(key, tries=7)).tries == 7, "expired: examined in full again"


async def test_generated_text_never_pings(brain: Brain) -> None:
    await learn_all(
        brain, [msg("alice", "1", "hey @everyone look <@123> and @here"), msg("alice", "2", "hey look")]
    )
    for seed in range(10):
        result = await brain.generate(ChainKey(P, G, "c1"), guard=False, rng=random.Random(seed))
        assert result.text is not None
        assert "@everyone" not in result.text and "@here" not in result.text and "<@" not in result.text


# ------------------------------------------------------------------ caching of wide states


async def wide_chain(brain: Brain) -> tuple[ChainKey, bytes]:
    """A chain whose opening state has more successors than walker.WIDE_STATE, read once."""
    messages = [msg("bob", f"b{i}", f"opener{i} and so on") for i in range(walker.WIDE_STATE + 8)]
    await learn_all(brain, [*messages, msg("alice", "z", "zebra crossing ahead")])
    key = ChainKey(P, G, "c1")
    info = await brain.store.find_chain(key)
    assert info is not None
    begin = chainmod.pack([chainmod.BEGIN] * info.order)
    ids, _ = await brain.store.walker.successors(info.id, begin)
    assert len(ids) > walker.WIDE_STATE
    return key, begin


async def test_a_wide_state_read_before_new_learning_may_lag_it_briefly(
    brain: Brain, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, begin = await wide_chain(brain)
    info = await brain.store.find_chain(key)
    assert info is not None
    before = await brain.store.walker.successors(info.id, begin)
    await learn_all(brain, [msg("bob", "late", "latecomer and so on")])
    assert await brain.store.walker.successors(info.id, begin) is before, "reused, not re-read"
    late = await brain.store.token_id("latecomer")
    monkeypatch.setattr(walker, "STALE_SECONDS", 0.0)
    assert late in (await brain.store.walker.successors(info.id, begin))[0], "re-read once stale"


async def test_forget_and_unlearn_invalidate_cached_wide_states_at_once(brain: Brain) -> None:
    key, begin = await wide_chain(brain)
    info = await brain.store.find_chain(key)
    assert info is not None
    successors = brain.store.walker.successors
    zebra, opener0 = await brain.store.token_id("zebra"), await brain.store.token_id("opener0")
    assert {zebra, opener0} <= set((await successors(info.id, begin))[0]), "cached with both"
    await brain.forget(P, G, "alice")
    assert zebra not in (await successors(info.id, begin))[0]
    assert await brain.unlearn(msg("bob", "b0", "opener0 and so on")) is UnlearnStatus.UNLEARNED
    openers = set((await successors(info.id, begin))[0])
    assert opener0 not in openers
    assert await brain.store.token_id("opener1") in openers


async def test_a_forget_rewrites_blocks_the_walker_has_cached(brain: Brain) -> None:
    """A forget rewrites a chain's blocks in place (ids kept): the walker reads them again."""
    words = "one two three"
    await learn_all(brain, [msg("alice", "a", f"{words} sat down"), msg("bob", "b", f"{words} ran off")])
    info = await brain.store.find_chain(ChainKey(P, G, "c1"))
    assert info is not None
    ids = [await brain.store.token_id(w) for w in words.split()[-info.order :]]
    ctx = chainmod.pack([chainmod.BEGIN] * (info.order - len(ids)) + ids)  # type: ignore[operator]
    sat, ran = await brain.store.token_id("sat"), await brain.store.token_id("ran")
    assert set((await brain.store.walker.successors(info.id, ctx))[0]) == {sat, ran}, "read, blocks cached"
    await brain.forget(P, G, "alice")
    assert set((await brain.store.walker.successors(info.id, ctx))[0]) == {ran}


# ------------------------------------------------------------------ deletes and edits by id (recent_messages)


class Clock:
    """An injectable clock (unix seconds) the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def keyed(*message_ids: str) -> list[int]:
    """The keys of messages of platform P (bot.core.messagekeys), sorted."""
    return sorted(message_key(P, m) for m in message_ids)


async def test_a_delete_after_a_restart_is_unlearned_exactly(
    databases: Databases | None, tmp_path: Path
) -> None:
    async with places(tmp_path, databases, 2) as (first, never):
        messages = [msg("alice", "1", "the cat sat on the mat"), msg("bob", "2", "the dog sat on the log")]
        brain = await open_brain(first, tmp_path)
        await learn_all(brain, messages)
        await brain.close()
        brain = await open_brain(first, tmp_path)  # a restart: nothing of the text is in memory
        try:
            assert await brain.unlearn_id(P, "1") is UnlearnStatus.UNLEARNED
            assert await brain.unlearn_id(P, "1") is UnlearnStatus.NOT_LEARNED
        finally:
            await brain.close()
        other = await open_brain(never, tmp_path)
        await learn_all(other, messages[1:])
        await other.close()
        assert await dump_of(first, FINGERPRINT_KEY) == await dump_of(never, FINGERPRINT_KEY)
        assert await recent_keys(first) == keyed("2")


async def test_an_edit_after_a_restart_replaces_the_learned_version(
    databases: Databases | None, tmp_path: Path
) -> None:
    async with places(tmp_path, databases, 2) as (first, never):
        await edit_after_a_restart(first, never, tmp_path)


async def edit_after_a_restart(first: Where, never: Where, tmp_path: Path) -> None:
    brain = await open_brain(first, tmp_path)
    await learn_all(brain, [msg("alice", "1", "the cat sat"), msg("bob", "2", "a dog ran")])
    await brain.close()
    brain = await open_brain(first, tmp_path)
    try:
        # Only the member who wrote it can edit it (Matrix does not check who sends an edit).
        refused = await brain.edit(None, msg("bob", "1", "bob rewrites alice"))
        assert refused.status is LearnStatus.ALREADY_LEARNED
        result = await brain.edit(None, msg("alice", "1", "the dog ran far"))
        assert result.status is LearnStatus.QUEUED
    finally:
        await brain.close()
    other = await open_brain(never, tmp_path)
    await learn_all(other, [msg("alice", "1", "the dog ran far"), msg("bob", "2", "a dog ran")])
    await other.close()
    assert await dump_of(first, FINGERPRINT_KEY) == await dump_of(never, FINGERPRINT_KEY)


async def assert_unlearning_refused(brain: Brain, where: Where, message_id: str) -> None:
    """Unlearning the message by id is refused as not matching, and changes nothing."""
    before = await dump_of(where, FINGERPRINT_KEY)
    assert await brain.unlearn_id(P, message_id) is UnlearnStatus.TEXT_MISMATCH
    assert await brain.is_learned(P, message_id)
    assert await dump_of(where, FINGERPRINT_KEY) == before


async def sealed_rows(where: Where) -> dict[int, bytes]:
    """The recent rows' sealed token ids, by message key."""
    return {int(k): bytes(x) for k, x in await rows_of(where, "SELECT id, token_ids FROM recent_messages")}


async def test_a_recent_row_that_does_not_match_the_fingerprint_unlearns_nothing(
    where: Where, tmp_path: Path
) -> None:
    brain = await open_brain(where, tmp_path)
    try:
        await learn_all(brain, [msg("alice", "1", "the cat sat"), msg("alice", "2", "the sat cat")])
        sealer = Sealer(FINGERPRINT_KEY)
        rows = {key: sealer.open(key, sealed) for key, sealed in (await sealed_rows(where)).items()}
        for mid, other in (("1", "2"), ("2", "1")):  # each row sealed anew with the other's tokens
            key = message_key(P, mid)
            await set_recent(where, key, brain.store.sealer.seal(key, rows[message_key(P, other)] or b""))
        await assert_unlearning_refused(brain, where, "1")
    finally:
        await brain.close()


async def test_recent_rows_are_sealed_so_the_database_alone_does_not_give_them_back(
    where: Where, tmp_path: Path
) -> None:
    brain = await open_brain(where, tmp_path)
    try:
        await learn_all(brain, [msg("alice", "1", "the cat sat"), msg("alice", "2", "the sat cat")])
        ids = {str(t): int(i) for i, t in await rows_of(where, "SELECT id, text FROM tokens")}
        blobs = await sealed_rows(where)
        one, two = message_key(P, "1"), message_key(P, "2")
        assert chainmod.pack([ids[w] for w in ("the", "cat", "sat")]) not in blobs[one]
        assert Sealer(FINGERPRINT_KEY).open(one, blobs[one])  # the key opens it
        assert not Sealer(b"another key 0123").open(one, blobs[one])  # another key opens nothing
        # A sealed row moved to another message does not open: refused, nothing changes.
        await set_recent(where, one, blobs[two])
        await assert_unlearning_refused(brain, where, "1")
    finally:
        await brain.close()


async def test_a_window_of_zero_keeps_no_rows_and_drops_those_kept_before(
    where: Where, tmp_path: Path
) -> None:
    brain = await open_brain(where, tmp_path)
    await learn_all(brain, [msg("alice", "1", "the cat sat")])
    await brain.close()
    assert await recent_keys(where) == keyed("1")
    clock = Clock()  # stands still: the prune at the first flush is the only one
    brain = await open_brain(where, tmp_path, flush_interval=60, edit_window_days=0, clock=clock)
    try:
        assert not brain.keeps_recent
        await brain.flush()
        assert await recent_keys(where) == keyed()  # dropped at the first flush
        await learn_all(brain, [msg("alice", "2", "the dog ran")])
        assert await recent_keys(where) == keyed()  # and none written
        assert await brain.unlearn_id(P, "1") is UnlearnStatus.NOT_KEPT
        assert await brain.unlearn(msg("alice", "1", "the cat sat")) is UnlearnStatus.UNLEARNED
    finally:
        await brain.close()


async def test_rows_older_than_the_window_are_pruned_in_bounded_steps(
    where: Where, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PRUNE_ROWS", 2)
    clock = Clock()
    brain = await open_brain(where, tmp_path, flush_interval=60, edit_window_days=7, clock=clock)
    try:
        await learn_all(brain, [msg("alice", str(i), f"old message {i}") for i in range(5)])
        clock.now += 3 * 86_400
        await learn_all(brain, [msg("alice", "new", "a newer message")])
        clock.now += 4 * 86_400 - 1  # the first five are 7 days old less a second: kept
        await brain.flush()
        assert len(await recent_keys(where)) == 6
        clock.now += 2
        await brain.flush()
        assert len(await recent_keys(where)) == 6  # past the window, but the last prune was 2 s ago
        clock.now += PRUNE_SECONDS
        await brain.flush()  # two at a time, and again at the next flush while some are left
        assert len(await recent_keys(where)) == 4
        await brain.flush()
        await brain.flush()
        assert await recent_keys(where) == keyed("new")
        clock.now += 1
        await brain.flush()
        assert await recent_keys(where) == keyed("new")
        assert await brain.unlearn_id(P, "0") is UnlearnStatus.NOT_KEPT  # learned, kept as before
        assert await brain.is_learned(P, "0")
        assert await brain.unlearn_id(P, "new") is UnlearnStatus.UNLEARNED
    finally:
        await brain.close()


async def test_a_forgotten_members_queued_message_is_pending_no_more(where: Where, tmp_path: Path) -> None:
    """A forget does not wait for the queue: from its commit on, the member's queued message is not
    named pending (nor learned), and the flush that comes to it drops it."""
    brain = await open_brain(where, tmp_path, flush_interval=3600)
    try:
        for member in ("alice", "bob"):
            await brain.opt_in(P, G, member)
        await brain.set_channel(P, G, "c1", True)
        assert (await brain.learn(msg("alice", "1", "alice waits here"))).queued
        assert (await brain.learn(msg("bob", "2", "bob waits here"))).queued
        assert await brain.is_learned(P, "1") and await brain.is_learned(P, "2")  # queued: pending
        await brain.forget(P, G, "alice")
        assert not await brain.is_learned(P, "1")
        assert await brain.is_learned(P, "2")
        await brain.flush()
        assert not await brain.is_learned(P, "1")
        assert await brain.is_learned(P, "2")
        assert (await brain.counts(ChainKey(P, G, "c1")))["messages_seen"] == 1
    finally:
        await brain.close()


async def test_forget_and_reset_drop_the_members_and_the_chains_rows(where: Where, tmp_path: Path) -> None:
    brain = await open_brain(where, tmp_path)
    try:
        await learn_all(
            brain,
            [
                msg("alice", "1", "alice in one"),
                msg("bob", "2", "bob in one"),
                msg("alice", "3", "alice in two", channel="c2"),
                msg("bob", "4", "bob in two", channel="c2"),
            ],
        )
        await brain.forget(P, G, "alice")
        assert await recent_keys(where) == keyed("2", "4")
        await brain.reset(ChainKey(P, G, "c2"))
        assert await recent_keys(where) == keyed("2")
    finally:
        await brain.close()


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("unlearn"), st.integers(0, 24)),
        st.tuples(st.just("forget"), st.sampled_from(["alice", "bob", "carol"])),
        st.tuples(st.just("reset"), st.sampled_from(["c1", "c2"])),
        st.tuples(st.just("restart"), st.just("")),
    ),
    max_size=8,
)


def test_unlearn_by_id_forget_and_reset_in_any_order_equal_never_having_learned(
    databases: Databases | None,
) -> None:
    @settings(
        max_examples=examples(databases, 30), deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(messages_strategy, st.integers(1, 3), OPS)
    def check(raw: list[tuple[str, str, str]], order: int, ops: list[tuple[str, object]]) -> None:
        in_any_order(databases, raw, order, ops)

    check()


def in_any_order(
    databases: Databases | None, raw: list[tuple[str, str, str]], order: int, ops: list[tuple[str, object]]
) -> None:
    messages = as_messages(raw)
    kept = dict(enumerate(messages))
    for op, arg in ops:  # what should be left
        if op == "unlearn":
            kept.pop(int(arg) % len(messages), None)  # type: ignore[call-overload]
        elif op == "forget":
            kept = {i: m for i, m in kept.items() if m.author != arg}
        elif op == "reset":
            kept = {i: m for i, m in kept.items() if m.channel != arg}

    async def go() -> tuple[object, object, list[int], list[tuple[int, bytes]]]:
        with tempfile.TemporaryDirectory() as tmp:
            async with places(Path(tmp), databases, 2) as (first, second):
                a = await open_brain(first, Path(tmp), hub_rows=1)
                try:
                    await a.update_settings(P, G, order=order, run_length=3)
                    await learn_all(a, messages)
                    for op, arg in ops:
                        if op == "unlearn":
                            mid = str(int(arg) % len(messages))  # type: ignore[call-overload]
                            learned = await a.is_learned(P, mid)
                            status = await a.unlearn_id(P, mid)
                            assert status is (
                                UnlearnStatus.UNLEARNED if learned else UnlearnStatus.NOT_LEARNED
                            )
                        elif op == "forget":
                            await a.forget(P, G, str(arg))
                        elif op == "reset":
                            await a.reset(ChainKey(P, G, str(arg)))
                        else:
                            await a.close()
                            a = await open_brain(first, Path(tmp), hub_rows=1)
                finally:
                    await a.close()
                b = await open_brain(second, Path(tmp))
                try:
                    await b.update_settings(P, G, order=order, run_length=3)
                    await learn_all(b, [kept[i] for i in sorted(kept)])
                finally:
                    await b.close()
                return (
                    await dump_of(first, FINGERPRINT_KEY),
                    await dump_of(second, FINGERPRINT_KEY),
                    await orphan_recent_tokens(first, FINGERPRINT_KEY),
                    hub_errors(first) if isinstance(first, Path) else [],  # hubs: SQLite's only
                )

    after, never, orphans, hubs = run(go())  # type: ignore[misc]
    assert orphans == [] and hubs == []
    assert counts_without_rows(after) == []  # what lets a forget skip a member's other channels
    assert after == never


# Below: the bytes of SQLite's file and its log on disk (secure_delete, the WAL): SQLite only.


async def test_a_forgotten_member_s_id_and_own_words_are_not_left_in_the_file(db_path: Path) -> None:
    member, word = "member-7d1f3a", "zyxwvutsrqzq"  # an id and a word only this member ever used
    others = [msg("bob", str(n), "the cat sat") for n in range(2, 40)]
    brain = await open_brain(db_path, db_path.parent)
    try:
        await learn_all(brain, [msg(member, "1", f"the {word} sat on the mat"), *others])
        await brain.generate(ChainKey(P, G, "c1"))  # the walker reads the file meanwhile, as in the bot
        await brain.forget(P, G, member)
        files = sorted(p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name))
        assert len(files) >= 2, files  # the database and its log, the bot still running
        for path in files:
            data = path.read_bytes()
            assert member.encode() not in data and word.encode() not in data, path.name
    finally:
        await brain.close()
