"""Settings: MARKOV_EDIT_WINDOW_DAYS and the database reach the store, and a bad value gets one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings
from bot.core.brain import Brain
from bot.core.engines import PostgresUrl

ROOT = Path(__file__).resolve().parents[1]


def test_the_edit_window_defaults_to_7_days_and_reaches_the_store() -> None:
    assert Settings.from_env({}, dotenv=False).store_options["edit_window_days"] == 7
    zero = Settings.from_env({"MARKOV_EDIT_WINDOW_DAYS": "0"}, dotenv=False)
    assert zero.store_options["edit_window_days"] == 0


@pytest.mark.parametrize("raw", ["-1", "a week", "3651"])
def test_a_bad_edit_window_is_refused_in_one_line(raw: str) -> None:
    with pytest.raises(ConfigError, match="MARKOV_EDIT_WINDOW_DAYS must be") as caught:
        Settings.from_env({"MARKOV_EDIT_WINDOW_DAYS": raw}, dotenv=False)
    assert "\n" not in str(caught.value)


async def test_a_brain_opened_with_the_settings_keeps_recent_messages_or_not(tmp_path: Path) -> None:
    for raw, keeps in (("7", True), ("0", False)):
        settings = Settings.from_env({"MARKOV_EDIT_WINDOW_DAYS": raw}, dotenv=False)
        brain = await Brain.open(tmp_path / f"w{raw}.db", **{**settings.store_options, "walker": "thread"})
        try:
            assert brain.keeps_recent is keeps
        finally:
            await brain.close()


def test_the_database_is_the_default_file_a_path_or_a_url() -> None:
    assert Settings.from_env({}, dotenv=False).db_path == Path("data/markov.sqlite3")
    for env in ({"MARKOV_DATABASE_URL": "sqlite:///x/m.db"}, {"MARKOV_DB": "x/m.db"}):
        settings = Settings.from_env(env, dotenv=False)
        assert (settings.db_path, settings.postgres) == (Path("x/m.db"), None)
    same = {"MARKOV_DATABASE_URL": "sqlite:///x/m.db", "MARKOV_DB": "x/m.db"}
    assert Settings.from_env(same, dotenv=False).db_path == Path("x/m.db")
    pg = Settings.from_env({"MARKOV_DATABASE_URL": "postgresql://bot:pw@db/markov"}, dotenv=False)
    assert pg.postgres == PostgresUrl("postgresql://bot:pw@db/markov")
    assert "pw" not in repr(pg)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"MARKOV_DATABASE_URL": "mysql://db/markov"}, "MARKOV_DATABASE_URL must be a SQLite file"),
        ({"MARKOV_DATABASE_URL": "a.db", "MARKOV_DB": "b.db"}, "name different databases"),
        ({"MARKOV_DB": "redis://cache"}, "MARKOV_DB must be a SQLite file"),
    ],
)
def test_a_database_setting_that_cannot_work_is_one_line(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        Settings.from_env(env, dotenv=False)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("args", [["run"], ["matrix"], ["stats", "--chain", "c"], ["console"], ["chains"]])
def test_a_postgresql_server_that_cannot_be_reached_is_one_line_without_its_password(
    tmp_path: Path, args: list[str]
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MARKOV_DATABASE_URL": "postgresql://bot:s3cret@127.0.0.1:1/markov",  # nothing listens on port 1
        "DISCORD_TOKEN": "x",
        "MATRIX_HOMESERVER": "http://127.0.0.1:1",
        "MATRIX_USER_ID": "@bot:localhost",
        "MATRIX_ACCESS_TOKEN": "x",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "cannot use the PostgreSQL database postgresql://bot:***@127.0.0.1:1/markov" in lines[0]
    assert "s3cret" not in done.stderr
    assert not list(tmp_path.glob("**/*.sqlite3"))  # no SQLite file was made instead


def test_the_cli_runs_on_the_postgresql_database_the_environment_selects(pg_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MARKOV_DATABASE_URL": pg_url}
    (tmp_path / "lines.txt").write_text("the cat sat on the mat\nthe dog ran far away\n", encoding="utf-8")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    imported = cli("import", "lines.txt", "--chain", "pg")
    assert imported.returncode == 0, imported.stderr
    listed = cli("chains")
    assert listed.returncode == 0, listed.stderr
    assert "pg" in listed.stdout and "2" in listed.stdout
    assert not list(tmp_path.glob("**/*.sqlite3"))  # learned in PostgreSQL, not in a file
    assert (tmp_path / "data" / "markov.sqlite3.key").exists()  # its key file, named as the default file's
