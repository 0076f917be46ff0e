"""The benchmarks' corpora: a seeded, chat-like synthetic one (Zipf word frequencies, short messages,
some punctuation), and real chat from the chitchat-dataset package."""

from __future__ import annotations

import itertools
import json
import logging
import random
from importlib import resources

log = logging.getLogger(__name__)

VOCABULARY = 50_000
PUNCTUATION = [".", "!", "?", ",", "...", ":)", "lol"]


def _word(i: int) -> str:
    """A pronounceable word for rank i (deterministic)."""
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "ba", "do", "fi", "gu", "he", "ja"]
    out = []
    i += 1
    while i:
        i, r = divmod(i, len(syllables))
        out.append(syllables[r])
    return "".join(out)


def messages(n: int, seed: int = 1) -> list[str]:
    """n messages: lengths 1-40 tokens (mean about 10), words drawn by Zipf rank."""
    rng = random.Random(seed)
    words = [_word(i) for i in range(VOCABULARY)]
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(VOCABULARY)))
    phrases = [" ".join(rng.choices(words[:200], k=rng.randint(2, 4))) for _ in range(300)]
    out = []
    for _ in range(n):
        length = min(40, max(1, int(rng.lognormvariate(2.1, 0.6))))
        tokens = rng.choices(words, cum_weights=cumulative, k=length)
        if rng.random() < 0.2:
            tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(phrases))
        if rng.random() < 0.5:
            tokens.append(rng.choice(PUNCTUATION))
        out.append(" ".join(tokens))
    return out


def write_zipf_corpus(path: str, n: int, seed: int = 1, chunk: int = 100_000) -> None:
    """Write n messages to path, one per line, in chunks (memory stays flat at 1,000,000)."""
    with open(path, "w", encoding="utf-8") as f:
        for part in range(0, n, chunk):
            f.write("\n".join(messages(min(chunk, n - part), seed=seed * 1_000_003 + part)) + "\n")


CHITCHAT = "chitchat-dataset 0.9.0 (real chat: 7,168 conversations, 1,315 people)"


def write_chitchat_corpus(path: str) -> int:
    """Write the chitchat-dataset package's messages to path, one per line in its order; how many.

    Real chat between people (the BYU PCC lab's open-domain chitchat): 258,112 messages that are
    not blank, 12.7 MB, the corpus #13 measured its real-text figures on. `pip install -e ".[bench]"`
    installs it.
    """
    try:
        dataset = resources.files("chitchat_dataset").joinpath("dataset.json")
    except ModuleNotFoundError:
        raise SystemExit('the chitchat corpus needs its package: pip install -e ".[bench]"') from None
    conversations = json.loads(dataset.read_text(encoding="utf-8"))
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        for conversation in conversations.values():
            for turn in conversation["messages"]:
                for message in turn:
                    text = message["text"].replace("\r", " ").replace("\n", " ")
                    if text.strip():
                        f.write(text + "\n")
                        written += 1
    return written
