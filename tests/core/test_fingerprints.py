"""The copy guard on normalised tokens: no copy up to case, compatibility forms or final punctuation gets out."""

from __future__ import annotations

import asyncio
import hashlib
import random
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bot.core import fingerprints, siphash
from bot.core.brain import Brain
from bot.core.fingerprints import Fingerprinter, normalise, trimmed
from bot.core.models import ChainInfo, ChainKey, GenerateStatus, Message, UnlearnStatus
from bot.core.tokens import tokenize
from bot.core.walker import Walker

KEY = b"fingerprint-test"
CHAIN = ChainKey("t", "g", "c")
RUN = 8
LEARNED = [
    "…but I dont know exactly what it means",
    "Café au lait, s'il vous plaît !",
    "the ﬁnal ＲＥＰＯＲＴ is due on Friday.",
    "Straße und Maß",
    "yes",
    "ok ok ok ?!",
    "one two three four five six seven eight nine ten eleven twelve",
    "We shipped it!!! Finally...",
    "<@123> look at this: https://example.org/A/b?c=D",
]
MESSAGES = [tokenize(text) for text in LEARNED]


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


TRANSFORMS: list[Callable[[str], str]] = [str, str.upper, str.lower, str.title, str.swapcase, fullwidth]
PUNCTUATION = [".", "!", "?", "…", "！", "。"]


def vary(data: st.DataObject, tokens: list[str]) -> list[str]:
    """The tokens, each written another way that normalises the same."""
    varied = [data.draw(st.sampled_from(TRANSFORMS))(token) for token in tokens]
    assume(normalise(varied) == normalise(tokens))
    return varied


def learn_all(path: Path, texts: list[str], *, order: int = 2) -> None:
    async def work() -> None:
        brain = await Brain.open(path, key=KEY)
        try:
            await brain.update_settings("t", "g", order=order, run_length=RUN)
            await brain.opt_in("t", "g", "a")
            await brain.set_channel("t", "g", "c", True)
            for i, text in enumerate(texts):
                await brain.learn(Message("t", "g", "c", "a", str(i), text))
            await brain.flush()
        finally:
            await brain.close()

    asyncio.run(work())


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Walker, ChainInfo]]:
    """A walker over a chain that learned LEARNED under the current scheme."""
    path = tmp_path_factory.mktemp("guard") / "markov.sqlite3"
    learn_all(path, LEARNED)
    walker = Walker(path, KEY, 1000)
    yield walker, ChainInfo(1, 2, RUN, fingerprints.CURRENT)
    walker.close()


def test_normalising_folds_case_compatibility_forms_and_only_trailing_punctuation() -> None:
    assert normalise(["But", "ＲＥＰＯＲＴ", "ﬁnal", "Straße", "!"]) == [
        "but",
        "report",
        "final",
        "strasse",
        "!",
    ]
    assert list(trimmed(["¿", "yes", "?", "!", "…"])) == ["¿", "yes"]
    assert list(trimmed(["?", "!"])) == ["?", "!"]  # nothing but punctuation: kept
    fp = Fingerprinter(KEY)
    assert fp.guarded(["A", "b"], 2, fingerprints.EXACT) == (None, fp.windows(["A", "b"], 2))
    assert fp.guarded(["A", "b", "!"], 2, fingerprints.NORMALISED) == (
        fp.message(["a", "b"]),
        fp.windows(["a", "b", "!"], 2),
    )
    assert fp.whole(["A", "b", "!"], fingerprints.EXACT) == fp.message(["A", "b", "!"])
    assert fp.whole(["A", "b", "!"], fingerprints.NORMALISED) == fp.message(["a", "b"])


@given(st.lists(st.text(st.characters(blacklist_characters="\x1f", blacklist_categories=("Cs",)))))
def test_normalising_the_joined_tokens_is_normalising_each(tokens: list[str]) -> None:
    assert normalise(tokens) == [unicodedata.normalize("NFKC", t).casefold() for t in tokens]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_learned_message_gets_through_written_another_way(
    guard: tuple[Walker, ChainInfo], data: st.DataObject
) -> None:
    walker, chain = guard
    tokens = data.draw(st.sampled_from(MESSAGES))
    varied = vary(data, list(trimmed(tokens)))
    varied += data.draw(st.lists(st.sampled_from(PUNCTUATION), max_size=3))
    whole, _ = walker.copies(chain, varied)
    assert whole


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_run_of_a_learned_message_gets_through_written_another_way(
    guard: tuple[Walker, ChainInfo], data: st.DataObject
) -> None:
    walker, chain = guard
    tokens = data.draw(st.sampled_from([m for m in MESSAGES if len(m) >= RUN]))
    start = data.draw(st.integers(0, len(tokens) - RUN))
    other = st.lists(st.sampled_from(["zebra", "Quux", ",", "42", "🙂"]), max_size=4)
    output = data.draw(other) + vary(data, tokens[start : start + RUN]) + data.draw(other)
    _, runs = walker.copies(chain, output)
    assert runs


def test_new_outputs_pass_and_old_chains_keep_the_exact_guard(
    guard: tuple[Walker, ChainInfo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    walker, chain = guard
    assert walker.copies(chain, ["but", "I", "dont", "know"]) == (False, False)
    assert walker.copies(chain, ["Yes", "?"]) == (True, False)
    assert walker.copies(chain, ["Yes", "sir"]) == (False, False)
    path = tmp_path / "old.sqlite3"
    with monkeypatch.context() as patch:
        patch.setattr(fingerprints, "CURRENT", fingerprints.EXACT)
        learn_all(path, LEARNED)
    old = Walker(path, KEY, 1000)
    try:
        old_chain = ChainInfo(1, 2, RUN, fingerprints.EXACT)
        assert old.copies(old_chain, tokenize("yes")) == (True, False)
        assert old.copies(old_chain, tokenize("Yes")) == (False, False)  # exact form only, until reset
        assert old.copies(old_chain, tokenize("one two three four five six seven eight")) == (False, True)
        assert old.copies(old_chain, tokenize("One two three four five six seven eight")) == (False, False)
    finally:
        old.close()


# ---------------------------------------------------------------- end to end: brain.generate

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6)


@settings(max_examples=15, deadline=None)
@given(
    words=st.lists(WORD, min_size=2, max_size=RUN - 1, unique=True),
    first=st.sampled_from([str.upper, str.title, fullwidth]),
    seed=st.integers(0, 2**32),
)
def test_a_chain_whose_every_walk_is_a_copy_up_to_case_posts_nothing(
    tmp_path_factory: pytest.TempPathFactory, words: list[str], first: Callable[[str], str], seed: int
) -> None:
    """Order 1, learned `w0 w1 … wn` and `W0 w1`: every walk is one of them up to case, none exactly both."""
    variant = first(words[0])
    assume(variant != words[0] and tokenize(variant) == [variant] and variant not in words)
    path = tmp_path_factory.mktemp("e2e") / "markov.sqlite3"
    learn_all(path, [" ".join(words), f"{variant} {words[1]}"], order=1)

    async def generate() -> list[GenerateStatus]:
        brain = await Brain.open(path, key=KEY)
        try:
            rng = random.Random(seed)
            return [(await brain.generate(CHAIN, rng=rng, tries=12)).status for _ in range(3)]
        finally:
            await brain.close()

    assert asyncio.run(generate()) == [GenerateStatus.COPY_GUARD] * 3


async def test_the_exact_guard_of_an_old_chain_let_the_case_variant_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same chain under the exact scheme (chains learned before): the variant gets out."""
    monkeypatch.setattr(fingerprints, "CURRENT", fingerprints.EXACT)
    path = tmp_path / "markov.sqlite3"
    await asyncio.to_thread(learn_all, path, ["but I dont know exactly", "But I"], order=1)
    brain = await Brain.open(path, key=KEY)
    try:
        rng = random.Random(0)
        texts = {(await brain.generate(CHAIN, rng=rng)).text for _ in range(20)}
    finally:
        await brain.close()
    assert "But I dont know exactly" in texts


async def test_unlearning_still_needs_the_exact_text(brain: Brain) -> None:
    await brain.opt_in("t", "g", "a")
    await brain.set_channel("t", "g", "c", True)
    await brain.learn(Message("t", "g", "c", "a", "1", "Hello there, World"))
    await brain.flush()
    for near in ("hello there, world", "Hello there, World!", "ＨＥＬＬＯ there, World"):
        assert await brain.unlearn(Message("t", "g", "c", "a", "1", near)) is UnlearnStatus.TEXT_MISMATCH
    assert (
        await brain.unlearn(Message("t", "g", "c", "a", "1", "Hello there, World")) is UnlearnStatus.UNLEARNED
    )


@given(
    st.lists(st.text(st.characters(blacklist_characters="\x1f", blacklist_categories=("Cs",)), max_size=5)),
    st.integers(1, 9),
)
def test_a_window_is_the_keyed_hash_of_its_tokens_joined(tokens: list[str], k: int) -> None:
    """Windows are sliced from the tokens joined once: each is still keyed BLAKE2b of its own k tokens."""

    def keyed(run: list[str]) -> int:
        digest = hashlib.blake2b("\x1f".join(run).encode(), digest_size=8, key=KEY).digest()
        return int.from_bytes(digest, "big", signed=True)

    fp = Fingerprinter(KEY)
    assert fp.windows(tokens, k) == [keyed(tokens[i : i + k]) for i in range(len(tokens) - k + 1)]
    assert fp.message(tokens) == keyed(["\x02", *tokens])


@given(st.lists(st.lists(st.text(min_size=1), max_size=5), max_size=8))
def test_messages_fingerprinted_together_are_each_one_s_fingerprint(messages: list[list[str]]) -> None:
    fp = Fingerprinter(KEY)
    assert fp.messages(messages).tolist() == [fp.message(tokens) for tokens in messages]


def test_fingerprints_stored_by_earlier_versions_are_made_again() -> None:
    """Values computed by the code before windows were sliced from one encoding: a chain's rows stay valid."""
    fp = Fingerprinter(KEY)
    tokens = ["Café", "au", "lait", ",", "ok"]
    assert fp.message(tokens) == 2895214584555914506
    assert fp.windows(tokens, 2) == [
        -8505955199739479033,
        642234837866134715,
        -4426365819199586336,
        -1635308179034031189,
    ]
    assert fp.guarded(tokens, 3, fingerprints.NORMALISED) == (
        -1710244099771990441,
        [7616393047043951846, 1689224228576036625, 1345104370852199138],
    )


# ---------------------------------------------------------------- scheme 3: per-token hashes, in batches

PINNED_SCHEME_3 = (
    6643605415646330225,
    [-6066088358077812997, 6556913134969664687, -7332388080772274102, -1404441502142118507],
)
TOKENS = st.lists(
    st.sampled_from(["a", "B", "ﬁx", "Fix", "!", "?", "…", "42", "🙂", "Straße", "x" * 40]), min_size=1
)


def by_definition(tokens: list[str], k: int) -> tuple[int, list[int]]:
    """Scheme 3 as fingerprints.py's docstring defines it, computed from scratch here."""
    mask = (1 << 64) - 1

    def keyed(data: bytes, size: int = 8) -> int:
        return int.from_bytes(hashlib.blake2b(data, digest_size=size, key=KEY).digest(), "little")

    sip = keyed(b"\x04siphash", 16)
    sip_key = (sip & mask, sip >> 64)
    r = keyed(b"\x05multiplier") & ~7 | 3
    forms = [unicodedata.normalize("NFKC", t).casefold() for t in tokens]
    hashes = [keyed(b"\x03" + form.encode()) for form in forms]

    def finish(run: list[int], tag: int) -> int:
        total = (sum(h * pow(r, i + 1, 1 << 64) for i, h in enumerate(run)) + tag) & mask
        value = siphash.one(sip_key, total)
        return value - (1 << 64) if value >> 63 else value

    kept = len(trimmed(forms))
    whole = finish(hashes[:kept], fingerprints.FORM_TAG + kept)
    return whole, [finish(hashes[i : i + k], 0) for i in range(len(tokens) - k + 1)]


@settings(max_examples=200, deadline=None)
@given(st.lists(TOKENS, min_size=1, max_size=6), st.integers(3, 12), st.integers(0, 60))
def test_scheme_3_in_a_batch_one_by_one_and_by_definition_agree(
    messages: list[list[str]], k: int, long: int
) -> None:
    messages = [*messages, ["w"] * long] if long else messages  # long: guarded() takes numpy for it too
    fp = Fingerprinter(KEY)
    expected = [by_definition(tokens, k) for tokens in messages]
    assert fp.guarded_many(messages, k) == expected
    assert [fp.guarded(tokens, k, fingerprints.PER_TOKEN) for tokens in messages] == expected
    assert [fp.whole(tokens, fingerprints.PER_TOKEN) for tokens in messages] == [w for w, _ in expected]


def test_scheme_3_values_stay_what_chains_stored() -> None:
    fp = Fingerprinter(KEY)
    whole, runs = fp.guarded(["Café", "au", "lait", ",", "OK", "!"], 3, fingerprints.PER_TOKEN)
    assert (whole, runs) == PINNED_SCHEME_3
    assert fp.whole(["café", "AU", "lait", ",", "ok"], fingerprints.PER_TOKEN) == whole  # a form
    assert fp.guarded(["au", "lait", ","], 3, fingerprints.PER_TOKEN)[1] == runs[1:2]  # a run anywhere


def test_scheme_3_keeps_forms_runs_and_keys_apart() -> None:
    fp = Fingerprinter(KEY)
    (whole, runs), (three, _) = fp.guarded_many([["a", "b", "c", "d"], ["a", "b", "c"]], 3)
    assert three not in runs and whole not in runs  # a message of K tokens is not its run
    assert (
        fp.guarded(["!", "?"], 2, fingerprints.PER_TOKEN)[0]
        != fp.guarded(["!"], 2, fingerprints.PER_TOKEN)[0]
    )
    other = Fingerprinter(KEY + b"!")
    assert other.guarded(["a", "b", "c", "d"], 3, fingerprints.PER_TOKEN) != (whole, runs)
    with pytest.raises(ValueError, match="without tokens"):
        fp.guarded_many([["a"], []], 3)
    assert fp.guarded_many([], 3) == []
