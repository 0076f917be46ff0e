"""The importer: format detection, bounded reading, and what a file becomes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import importer
from bot.core.brain import Brain
from bot.core.models import ChainKey, FlushResult, Message, PendingMessage
from bot.importer import NOT_UTF8, TOO_LONG, Entry, ImportFormatError, detect_format, import_file, open_source

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b'{"messages": []}', "json"),
        (b'\xef\xbb\xbf  \n{\n  "guild": {}', "json"),
        (b"{}", "json"),
        (b'[{"content": "hi"}]', "json"),
        (b"[]", "json"),
        (b"[[[[", "json"),
        (b"{hello} world\n", "text"),  # the old check called this JSON and refused it
        (b"{ not json\n", "text"),
        (b"[1] a footnote\n", "text"),
        (b"[citation needed]\n", "text"),
        (b"plain text\n", "text"),
        (b"x", "text"),
    ],
)
def test_detection_reads_the_start_of_the_file(head: bytes, fmt: str) -> None:
    assert detect_format(head) == fmt


def test_format_when_given_wins(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text('{"messages": []}\n', encoding="utf-8")
    assert open_source(path).fmt == "json"
    assert open_source(path, fmt="text").fmt == "text"
    text = tmp_path / "t.txt"
    text.write_text("hello\n", encoding="utf-8")
    with pytest.raises(ImportFormatError, match="does not parse"):
        open_source(text, fmt="json")


def test_a_line_is_read_with_a_cap_and_a_long_one_skipped_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "CHUNK", 64)  # the long line spans several reads
    path = tmp_path / "c.txt"
    data = b"short\n" + b"x" * 1000 + b"\nafter\r\n" + b"y" * 60 + b"\nlast"
    path.write_bytes(data)
    parts = list(importer._text_parts(path, max_chars=12))  # a cap of 50 bytes
    assert [e.text for _, entries, _ in parts for e in entries] == ["short", "after", "last"]
    assert [e.id for _, entries, _ in parts for e in entries] == ["c.txt:1", "c.txt:3", "c.txt:5"]
    assert sum(skipped.get(TOO_LONG, 0) for _, _, skipped in parts) == 2
    assert sum(read for read, _, _ in parts) == len(data)


@given(
    st.lists(
        st.sampled_from(
            [b"a", b"bc ", b" ", b"\xc3\xa9", b"\xf0\x9f\x98\x80", b"\xff", b"\r", b"\n", b"\n\n"]
        ),
        max_size=40,
    ),
    st.integers(1, 12),
)
def test_a_block_of_lines_reads_as_its_lines_one_by_one(pieces: list[bytes], cap: int) -> None:
    data = b"".join(pieces)
    at_once, one_by_one = importer._Lines("f", cap), importer._Lines("f", cap)
    at_once.number = one_by_one.number = 7  # numbered on from an earlier part
    assert at_once.read_block(data) == one_by_one.read(data.split(b"\n"))
    assert at_once.number == one_by_one.number


def test_text_lines_become_messages_with_ids_of_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_bytes(b"\xef\xbb\xbfone\r\n\ntwo\rthree\n" + b"y" * 20 + b"\n\xff\xfe\n \nfour")
    parts = list(open_source(path, max_chars=4).parts())
    assert [e for _, entries, _ in parts for e in entries] == [
        Entry("c.txt:1", "import", "one"),
        Entry("c.txt:3", "import", "two"),
        Entry("c.txt:4", "import", "three"),
        Entry("c.txt:8", "import", "four"),
    ]
    skipped = [why for _, _, by_why in parts for why, n in by_why.items() for _ in range(n)]
    assert sorted(skipped) == sorted([TOO_LONG, NOT_UTF8])  # over 4 * 4 + 2 bytes: skipped unread


def test_a_50_mb_line_is_skipped_quickly_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "one-line.txt"
    with path.open("wb") as f:
        f.write(b"first message\n")
        chunk = b"lorem ipsum dolor sit amet " * 40_000
        while f.tell() < 50 * 2**20:
            f.write(chunk)
        f.write(b"\nlast message\n")
    # A parent of its own, so that the peak RSS measured is markovbot's alone.
    measure = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MARKOV_WALKER": "thread"}
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            measure,
            sys.executable,
            "-m",
            "bot",
            "--db",
            str(tmp_path / "m.db"),
            "import",
            str(path),
            "--chain",
            "c",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    summary, peak_kib = done.stdout.splitlines()
    assert "read 3 messages: learned 2," in summary and "too long (over 4,000 characters) 1" in summary
    assert int(peak_kib) < 300 * 1024, f"peak RSS {int(peak_kib) // 1024} MiB"
    assert elapsed < 20, f"{elapsed:.1f} s"
    print(f"50 MiB line: {elapsed:.2f} s, peak RSS {int(peak_kib) // 1024} MiB")


async def test_an_import_commits_few_large_transactions_and_restores_the_live_batch_size(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"line {i} of the corpus\n" for i in range(5000)), encoding="utf-8")
    brain = await Brain.open(tmp_path / "m.db", walker="thread", batch_size=500, bulk_memory_mb=64)
    try:
        sizes: list[int] = []
        commit = brain.store._writes.commit

        async def counted(batch: Sequence[PendingMessage]) -> FlushResult:
            sizes.append(len(batch))
            return await commit(batch)

        brain.store._writes.commit = counted  # type: ignore[method-assign]
        statements: list[str] = []
        await brain.store.w.set_trace_callback(statements.append)
        result = await import_file(brain, corpus, ChainKey("local", "local", "c"), progress=False)
        assert result.learned == 5000
        # 64 MB: an eighth for a batch at 3 KiB a message, 2,730 messages; both in one transaction
        # (a quarter of the budget, 16 MB, holds far more than their staged counts).
        assert sizes == [2730, 2270]
        assert statements.count("COMMIT") == 1  # the chain, its author and both batches
        assert (brain.store.batch_size, brain.store.max_pending) == (500, 20_000)
        await brain.learn(Message("local", "local", "c", "a", "live", "one more line"), require_consent=False)
        await brain.flush()
        assert sizes == [2730, 2270, 1]
    finally:
        await brain.store.w.set_trace_callback(None)
        await brain.close()
