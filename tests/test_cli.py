"""The markovbot command, run in-process against real database files."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import main
from bot.core import retention, schema
from bot.core.messagekeys import message_key
from tests.lockholder import holding_the_database_now

CORPUS = (
    "the cat sat on the mat\nthe dog sat on the log\n\nhello world, how are you?\nthe cat likes the dog\n"
)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


def run(db: Path, *args: str) -> int:
    return main(["--db", str(db), *args])


def test_import_is_resumable_and_learns_nothing_twice(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "m.db"
    assert run(db, "import", str(corpus), "--chain", "c") == 0
    assert "learned 4" in capsys.readouterr().out
    assert run(db, "import", str(corpus), "--chain", "c") == 0
    assert "learned 0, already learned 4" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT messages_seen FROM chains").fetchone() == (4,)
        # No platform deletes a line of a file: nothing is kept for the edit window.
        assert conn.execute("SELECT count(*) FROM recent_messages").fetchone() == (0,)


def test_discord_chat_exporter_json_learns_per_author_and_skips_bots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = {
        "guild": {"id": "1"},
        "channel": {"id": "2"},
        "messages": [
            {
                "id": "10",
                "type": "Default",
                "content": "hello from alice",
                "author": {"id": "100", "isBot": False},
            },
            {"id": "11", "type": "Default", "content": "beep boop", "author": {"id": "200", "isBot": True}},
            {
                "id": "12",
                "type": "ChannelPinnedMessage",
                "content": "pinned",
                "author": {"id": "100", "isBot": False},
            },
            {
                "id": "13",
                "type": "Reply",
                "content": "hi alice, bob here",
                "author": {"id": "101", "isBot": False},
            },
        ],
    }
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export), encoding="utf-8")
    db = tmp_path / "m.db"
    assert run(db, "import", str(path), "--chain", "c") == 0
    assert "learned 2" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:
        learned = sorted(r[0] for r in conn.execute("SELECT id FROM messages"))
        assert learned == sorted(message_key("local", i) for i in ("10", "13"))
        assert conn.execute("SELECT count(*) FROM tokens WHERE text IN ('beep', 'pinned')").fetchone() == (0,)


def test_broken_json_gets_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"messages": [', encoding="utf-8")
    assert run(tmp_path / "m.db", "import", str(path), "--chain", "c") == 1
    assert "does not parse" in capsys.readouterr().err


def test_generate_is_reproducible_with_a_seed(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "m.db"
    run(db, "import", str(corpus), "--chain", "c")
    capsys.readouterr()
    outputs = []
    for _ in range(2):
        assert run(db, "generate", "--chain", "c", "--count", "3", "--seed", "7", "--no-guard") == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert len(outputs[0].splitlines()) == 3


def test_reading_runs_while_another_process_writes_and_a_change_says_busy_in_one_line(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)  # an import holds the file for minutes
    db = tmp_path / "m.db"
    run(db, "import", str(corpus), "--chain", "c")
    capsys.readouterr()
    with holding_the_database_now(db):  # an import beside, say: the file opens, only read
        assert run(db, "generate", "--chain", "c", "--count", "2", "--seed", "7", "--no-guard") == 0
        assert len(capsys.readouterr().out.splitlines()) == 2
        assert run(db, "chains") == 0
        assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["c", "4"]
        assert run(db, "console") == 1  # it opts the console in first: a write
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is busy: another process" in err and "nothing was changed" in err


def test_generate_explains_failures_and_exits_non_zero(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "m.db"
    assert run(db, "generate", "--chain", "nothing") == 1
    assert "there is no chain 'nothing'" in capsys.readouterr().err
    run(db, "import", str(corpus), "--chain", "c")
    assert run(db, "generate", "--chain", "c", "--start", "zebra") == 1
    assert "don't know the word 'zebra'" in capsys.readouterr().err


def test_out_of_range_options_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path / "m.db", "generate", "--chain", "c", "--count", "0") == 2
    assert "--count" in capsys.readouterr().err
    assert not (tmp_path / "m.db").exists()


def test_stats_json_and_card(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "m.db"
    run(db, "import", str(corpus), "--chain", "c")
    capsys.readouterr()
    card = tmp_path / "card.png"
    assert run(db, "stats", "--chain", "c", "--json", "--png", str(card)) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data)[: len(retention.JSON_KEYS)] == list(retention.JSON_KEYS)
    assert data["messages_seen"] == 4
    assert card.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_newer_schema_is_refused_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "m.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    assert run(db, "stats", "--chain", "c") == 1
    assert "schema version 99" in capsys.readouterr().err


def test_not_a_database_is_refused_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "m.db"
    db.write_bytes(b"this is not sqlite" * 100)
    assert run(db, "stats", "--chain", "c") == 1
    assert "cannot use the database" in capsys.readouterr().err


def test_bad_settings_in_the_environment_fail_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MARKOV_BATCH_SIZE", "lots")
    assert run(tmp_path / "m.db", "stats", "--chain", "c") == 1
    assert "MARKOV_BATCH_SIZE must be a whole number" in capsys.readouterr().err


def test_a_command_settles_the_start_up_heap_once_the_database_is_open(tmp_path: Path, corpus: Path) -> None:
    gc.unfreeze()
    try:
        assert run(tmp_path / "m.db", "import", str(corpus), "--chain", "c") == 0
        assert gc.get_freeze_count() > 0, "start-up objects left for every full collection to re-scan"
    finally:
        gc.unfreeze()


def test_db_and_verbose_work_after_the_subcommand_too(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "m.db"
    assert main(["import", str(corpus), "--chain", "c", "--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["stats", "--db", str(db), "--chain", "c", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["messages_seen"] == 4
    assert main(["stats", "--chain", "nope", "--db", str(db), "-v"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("Error: there is no chain 'nope'")
    assert main(["--db", str(db), "stats", "--chain", "nope"]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_chains_lists_every_chain_with_its_counts(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "m.db"
    assert run(db, "chains") == 0
    assert "has no chains yet" in capsys.readouterr().out
    run(db, "import", str(corpus), "--chain", "cats")
    second = corpus.with_name("second.txt")
    second.write_text(CORPUS, encoding="utf-8")
    run(db, "import", str(second), "--chain", "a-second-one")
    capsys.readouterr()
    before = time.time()
    assert run(db, "chains") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["chain", "messages", "tokens", "last", "learned", "(UTC)"]
    rows = [line.split() for line in lines[1:]]
    assert [row[:3] for row in rows] == [["a-second-one", "4", "24"], ["cats", "4", "24"]]
    for row in rows:  # learned within the last minutes, shown to the minute
        learned = datetime.strptime(" ".join(row[3:]), "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()
        assert before - 600 <= learned <= before


def test_the_import_progress_bar_counts_bytes_to_a_total(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path / "m.db", "import", str(corpus), "--chain", "c", "--progress") == 0
    bar = capsys.readouterr().err
    assert "100%" in bar and f"{len(CORPUS)}.0/{len(CORPUS)}.0" in bar


def test_cli_logs_warnings_only_unless_asked(tmp_path: Path, corpus: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "MARKOV_WALKER": "process"}
    env.pop("MARKOV_LOG_LEVEL", None)
    base = [
        sys.executable,
        "-m",
        "bot",
        "import",
        str(corpus),
        "--chain",
        "c",
        "--db",
        str(tmp_path / "m.db"),
    ]
    quiet = subprocess.run(base, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = subprocess.run([*base, "-v"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert loud.returncode == 0
    assert "INFO bot.core.walkerhost: walker process" in loud.stderr
    assert "DEBUG" not in loud.stderr


def test_a_db_in_a_missing_folder_is_refused_and_no_folder_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "no" / "such" / "x.sqlite3"
    assert main(["chains", "--db", str(db)]) == 1
    assert f"{db.parent} does not exist; create the folder first" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
