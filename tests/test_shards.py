"""Shard options: `markovbot run --shards/--shard-count` and MARKOV_SHARDS/MARKOV_SHARD_COUNT, and every bad value in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot import cli
from bot.config import ConfigError, Settings
from bot.discord_app import MarkovBot, ShardedMarkovBot, make_bot
from bot.shards import ShardError, ShardPlan, format_ids, parse_count, parse_ids, plan


@pytest.mark.parametrize(
    ("raw", "ids"),
    [("0", (0,)), ("0-1", (0, 1)), ("0,2", (0, 2)), (" 5-7, 1 ", (1, 5, 6, 7)), ("3-3", (3,))],
)
def test_shard_ids_are_a_range_a_list_or_one_id(raw: str, ids: tuple[int, ...]) -> None:
    assert parse_ids(raw, "--shards") == ids


def test_a_plan_checks_ids_against_the_count() -> None:
    assert plan((0, 1), 4) == ShardPlan((0, 1), 4)
    assert plan(None, 4) == ShardPlan(None, 4)  # every shard in this process
    assert plan(None, None) == ShardPlan()  # one connection, unsharded: today's bot
    assert [p.syncs_commands for p in (ShardPlan(), ShardPlan(None, 2), ShardPlan((0,), 2))] == [True] * 3
    assert not ShardPlan((1, 2), 4).syncs_commands
    assert format_ids((0, 1, 2, 5, 7, 8)) == "0-2,5,7-8"
    assert ShardPlan((0, 1), 4).describe() == "shard(s) 0-1 of 4"


@pytest.mark.parametrize(
    ("ids", "count", "says"),
    [
        ("", "4", "--shards must be shard ids like 0-1"),
        ("a", "4", "--shards must be shard ids like 0-1"),
        ("-1", "4", "--shards must be shard ids like 0-1"),
        ("0-", "4", "--shards must be shard ids like 0-1"),
        ("0,,1", "4", "--shards must be shard ids like 0-1"),
        ("3-1", "4", "runs backwards (3-1)"),
        ("0,0-1", "4", "names a shard twice"),
        ("4", "4", "names shard 4, but with --shard-count 4 the shards are 0 to 3"),
        ("0-999999999", "4", "past the largest count"),
        ("0", "0", "--shard-count must be between 1 and"),
        ("0", "two", "--shard-count must be a whole number of shards"),
        ("0", "-2", "--shard-count must be a whole number of shards"),
        ("0", "1000001", "--shard-count must be between 1 and"),
    ],
)
def test_a_bad_shard_option_is_one_line(ids: str, count: str, says: str) -> None:
    with pytest.raises(ShardError) as caught:
        plan(parse_ids(ids, "--shards"), parse_count(count, "--shard-count"))
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_shards_without_a_count_are_refused() -> None:
    with pytest.raises(ShardError, match="--shards needs --shard-count: the total number of shards"):
        plan((0, 1), None)


def test_the_environment_gives_the_same_settings() -> None:
    env = {"MARKOV_SHARDS": "0-1", "MARKOV_SHARD_COUNT": "4"}
    assert Settings.from_env(env, dotenv=False).shards == ShardPlan((0, 1), 4)
    assert Settings.from_env({}, dotenv=False).shards == ShardPlan()


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"MARKOV_SHARDS": "0-1"}, "MARKOV_SHARDS needs MARKOV_SHARD_COUNT"),
        (
            {"MARKOV_SHARDS": "4", "MARKOV_SHARD_COUNT": "4"},
            "with MARKOV_SHARD_COUNT 4 the shards are 0 to 3",
        ),
        ({"MARKOV_SHARDS": "x", "MARKOV_SHARD_COUNT": "4"}, "MARKOV_SHARDS must be shard ids"),
        ({"MARKOV_SHARD_COUNT": "0"}, "MARKOV_SHARD_COUNT must be between 1 and"),
    ],
)
def test_a_bad_shard_setting_is_one_line(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env, dotenv=False)
    assert says in str(caught.value) and "\n" not in str(caught.value)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Settings]:
    """The settings `markovbot run` would start the bot with (the bot itself is not started)."""
    seen: list[Settings] = []

    def fake_run(settings: Settings) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr("bot.discord_app.run_discord", fake_run)
    monkeypatch.chdir(tmp_path)
    for name in ("MARKOV_SHARDS", "MARKOV_SHARD_COUNT", "MARKOV_DATABASE_URL", "MARKOV_DB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MARKOV_DATABASE_URL", str(tmp_path / "m.sqlite3"))
    return seen


def test_run_takes_shards_from_its_options_or_the_environment(
    started: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli.main(["run", "--shards", "0,2", "--shard-count", "3"]) == 0
    assert cli.main(["run"]) == 0
    monkeypatch.setenv("MARKOV_SHARDS", "1")
    monkeypatch.setenv("MARKOV_SHARD_COUNT", "2")
    assert cli.main(["run"]) == 0
    assert cli.main(["run", "--shards", "2-3", "--shard-count", "4"]) == 0  # the options win
    assert cli.main(["run", "--shard-count", "3"]) == 0  # MARKOV_SHARDS=1 checked against it
    plans = [s.shards for s in started]
    assert plans == [
        ShardPlan((0, 2), 3),
        ShardPlan(),
        ShardPlan((1,), 2),
        ShardPlan((2, 3), 4),
        ShardPlan((1,), 3),
    ]


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--shards", "0-1"], {}, "--shards needs --shard-count"),
        (["--shards", "0-4", "--shard-count", "4"], {}, "names shard 4, but with --shard-count 4"),
        (["--shards", "x", "--shard-count", "4"], {}, "--shards must be shard ids like 0-1"),
        (["--shard-count", "0"], {}, "--shard-count must be between 1 and"),
        (
            ["--shard-count", "1"],
            {"MARKOV_SHARDS": "1", "MARKOV_SHARD_COUNT": "2"},
            "MARKOV_SHARDS names shard 1, but with --shard-count 1",
        ),
        (
            ["--shard-count", "2"],
            {"MARKOV_SHARDS": "1"},
            "MARKOV_SHARDS needs MARKOV_SHARD_COUNT",
        ),  # read together
        (
            ["--shards", "3"],
            {"MARKOV_SHARD_COUNT": "2"},
            "--shards names shard 3, but with MARKOV_SHARD_COUNT 2",
        ),
        ([], {"MARKOV_SHARDS": "0"}, "MARKOV_SHARDS needs MARKOV_SHARD_COUNT"),
    ],
)
def test_a_bad_shard_option_stops_run_in_one_line(
    started: list[Settings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
    says: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["run", *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("Error: ") and says in err, err
    assert "Traceback" not in err and started == []


def test_the_bot_is_sharded_only_when_a_count_is_given(tmp_path: Path) -> None:
    brain: Any = object()  # the bot only keeps it until it starts
    plain = make_bot(brain, Settings(db_path=tmp_path / "m.db"))
    assert type(plain) is MarkovBot
    some = make_bot(brain, Settings(db_path=tmp_path / "m.db", shards=ShardPlan((1, 3), 4)))
    assert isinstance(some, ShardedMarkovBot)
    assert (some.shard_ids, some.shard_count) == ([1, 3], 4)
    every = make_bot(brain, Settings(db_path=tmp_path / "m.db", shards=ShardPlan(None, 2)))
    assert isinstance(every, ShardedMarkovBot)
    assert (every.shard_ids, every.shard_count) == (None, 2)
