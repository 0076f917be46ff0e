"""The fingerprint key: outside the database, checked, and moved out of databases that held it."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ConfigError, Settings
from bot.core import fingerprints, keys
from bot.core.brain import Brain
from bot.core.models import ChainKey, Message
from bot.core.store import Store, StoreError
from tests.core.dump import downgrade

CHAIN = ChainKey("t", "g", "c")
OLD_KEY = bytes(range(16))


def meta(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT key, value FROM meta"))


def file_bytes(path: Path) -> bytes:
    """The database as files on disk: the main file and whatever its WAL still holds."""
    found = b""
    for suffix in ("", "-wal", "-journal"):
        part = Path(f"{path}{suffix}")
        if part.exists():
            found += part.read_bytes()
    return found


def holds(data: bytes, key: bytes) -> bool:
    return any(form in data for form in (key, key.hex().encode(), key.hex().upper().encode()))


async def learn(brain: Brain, texts: list[str]) -> None:
    await brain.opt_in("t", "g", "a")
    await brain.set_channel("t", "g", "c", True)
    for i, text in enumerate(texts):
        await brain.learn(Message("t", "g", "c", "a", str(i), text))
    await brain.flush()


async def legacy_database(path: Path, monkeypatch: pytest.MonkeyPatch, texts: list[str]) -> None:
    """A database as markovbot wrote it before the key file: schema 2, the salt in meta, exact fingerprints."""
    with monkeypatch.context() as patch:
        patch.setattr(fingerprints, "CURRENT", fingerprints.EXACT)
        brain = await Brain.open(path, key=OLD_KEY)
        try:
            await learn(brain, texts)
        finally:
            await brain.close()
    downgrade(path, LEGACY_VERSION, [("t", str(i)) for i in range(len(texts))])
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta WHERE key = ?", (keys.CHECK_META,))
        db.execute("INSERT INTO meta (key, value) VALUES ('salt', ?)", (OLD_KEY.hex(),))


LEGACY_VERSION = 2  # the schema of databases that kept their key in meta


async def test_a_new_database_gets_a_private_key_file_and_keeps_only_a_check(db_path: Path) -> None:
    brain = await Brain.open(db_path)
    try:
        await learn(brain, ["the key stays outside", "of the database file"])
        key = brain.store.key
    finally:
        await brain.close()
    key_file = keys.key_file(db_path)
    assert key_file.name == "markov.sqlite3.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert keys.read_file(key_file) == key and len(key) == keys.NEW_KEY_BYTES
    assert meta(db_path) == {keys.CHECK_META: keys.check_value(key)}
    assert not holds(file_bytes(db_path), key)
    reopened = await Brain.open(db_path)
    try:
        assert reopened.store.key == key
    finally:
        await reopened.close()


async def test_a_key_file_others_can_read_is_refused(db_path: Path) -> None:
    await (await Brain.open(db_path)).close()
    key_file = keys.key_file(db_path)
    key_file.chmod(0o640)
    with pytest.raises(StoreError, match="chmod 600") as refused:
        await Brain.open(db_path)
    assert "\n" not in str(refused.value)
    assert keys.key_file(db_path).read_text().strip() not in str(refused.value)


async def test_a_wrong_or_missing_key_is_refused_and_changes_nothing(db_path: Path) -> None:
    brain = await Brain.open(db_path)
    await learn(brain, ["something learned"])
    key = brain.store.key
    await brain.close()
    before = meta(db_path)
    with pytest.raises(StoreError, match=r"not the fingerprint key of .*use the key this database"):
        await Brain.open(db_path, key=bytes(32))
    keys.key_file(db_path).rename(db_path.parent / "elsewhere.key")
    with pytest.raises(StoreError, match=r"key of .* is missing: restore"):
        await Brain.open(db_path)
    assert not keys.key_file(db_path).exists()  # no new key made up for a database that has one
    assert meta(db_path) == before
    async with Store(db_path, key=key) as store:  # the right key, given by the environment
        assert store.key == key


def test_the_setting_is_hex_of_16_to_64_bytes() -> None:
    settings = Settings.from_env({"MARKOV_FINGERPRINT_KEY": "ab" * 16}, dotenv=False)
    assert settings.fingerprint_key == b"\xab" * 16
    assert settings.store_options["key"] == b"\xab" * 16
    assert "ab" * 16 not in repr(settings)
    assert Settings.from_env({}, dotenv=False).store_options["key"] is None
    for bad, why in (("xyz", "hexadecimal"), ("ab" * 8 + "a", "hexadecimal"), ("ab" * 15, "16 to 64 bytes")):
        with pytest.raises(ConfigError, match=f"MARKOV_FINGERPRINT_KEY must .*{why}"):
            Settings.from_env({"MARKOV_FINGERPRINT_KEY": bad}, dotenv=False)


async def test_an_old_database_moves_its_salt_into_the_key_file(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await legacy_database(db_path, monkeypatch, ["an old message here", "and another old one"])
    assert holds(file_bytes(db_path), OLD_KEY)
    brain = await Brain.open(db_path)
    try:
        assert brain.store.key == OLD_KEY
        info = await brain.store.find_chain(CHAIN)
        assert info is not None and info.scheme == fingerprints.EXACT  # its fingerprints stay valid
        assert await brain.unlearn(Message("t", "g", "c", "a", "0", "an old message here")) == "unlearned"
    finally:
        await brain.close()
    assert keys.read_file(keys.key_file(db_path)) == OLD_KEY
    assert meta(db_path) == {keys.CHECK_META: keys.check_value(OLD_KEY)}
    assert not holds(file_bytes(db_path), OLD_KEY)  # not even in a freed cell or the WAL


async def test_a_crash_between_the_key_file_and_the_commit_is_completed_on_the_next_open(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await legacy_database(db_path, monkeypatch, ["a message from before"])
    # The state a crash after the key file was written, before the meta transaction, leaves.
    keys.write_file(keys.key_file(db_path), OLD_KEY)
    assert meta(db_path) == {"salt": OLD_KEY.hex()}
    async with Store(db_path) as store:
        assert store.key == OLD_KEY
    assert meta(db_path) == {keys.CHECK_META: keys.check_value(OLD_KEY)}


async def test_an_old_database_refuses_a_key_that_is_not_its_salt(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await legacy_database(db_path, monkeypatch, ["a message from before"])
    with pytest.raises(StoreError, match="still holds its fingerprint key"):
        await Brain.open(db_path, key=bytes(16))
    keys.write_file(keys.key_file(db_path), bytes(16))  # a stray key file
    with pytest.raises(StoreError, match="still holds its fingerprint key"):
        await Brain.open(db_path)
    assert meta(db_path) == {"salt": OLD_KEY.hex()}


def test_the_key_file_is_created_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "db.key"
    keys.temporary(path).write_text("left by a crash")
    keys.write_file(path, OLD_KEY)
    assert keys.read_file(path) == OLD_KEY
    assert list(tmp_path.iterdir()) == [path]
    with pytest.raises(FileExistsError):
        keys.write_file(path, bytes(16))
    assert keys.read_file(path) == OLD_KEY
    os.chmod(path, 0o604)
    with pytest.raises(keys.KeyRefused, match="chmod 600"):
        keys.read_file(path)


OPEN_AND_PRINT_KEY = """
import asyncio, sys
from bot.core.store import Store

async def main():
    async with Store(sys.argv[1]) as store:
        print(store.key.hex())

asyncio.run(main())
"""


def test_processes_opening_a_new_database_at_once_agree_on_its_key(db_path: Path) -> None:
    # A database with its schema but no key yet (the schema race itself is not the key's).
    async def make_schema() -> None:
        async with Store(db_path, key=OLD_KEY):
            pass

    asyncio.run(make_schema())
    with sqlite3.connect(db_path) as db:
        db.execute("DELETE FROM meta")
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_PRINT_KEY, str(db_path)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    printed = {process.communicate(timeout=60)[0].strip() for process in starts}
    assert all(process.returncode == 0 for process in starts)
    key = keys.read_file(keys.key_file(db_path))
    assert key is not None and printed == {key.hex()}
    assert meta(db_path) == {keys.CHECK_META: keys.check_value(key)}


def test_the_command_says_what_to_do_in_one_line(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--db", str(db_path), "chains"]) == 0  # creates the key file
    capsys.readouterr()
    monkeypatch.setenv(keys.ENV, "00" * 32)
    assert main(["--db", str(db_path), "chains"]) == 1
    error = capsys.readouterr().err.strip()
    assert (
        error.startswith("Error: MARKOV_FINGERPRINT_KEY is not the fingerprint key of") and "\n" not in error
    )
    monkeypatch.setenv(keys.ENV, "not hex")
    assert main(["--db", str(db_path), "chains"]) == 1
    assert capsys.readouterr().err.strip() == (
        "Error: MARKOV_FINGERPRINT_KEY must be hexadecimal (e.g. from `openssl rand -hex 32`)."
    )


async def test_a_key_given_by_the_caller_touches_no_file(db_path: Path) -> None:
    brain = await Brain.open(db_path, key=OLD_KEY)
    try:
        await learn(brain, ["given, not filed"])
    finally:
        await brain.close()
    assert not keys.key_file(db_path).exists()
    assert meta(db_path) == {keys.CHECK_META: keys.check_value(OLD_KEY)}
    assert not holds(file_bytes(db_path), OLD_KEY)
