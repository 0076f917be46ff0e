"""MARKOV_DATABASE_URL: which engine a value selects, and a clear line for one that selects none."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core import engines
from bot.core.engines import DatabaseUrlError, PostgresUrl, SqliteUrl


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", SqliteUrl(Path("data/markov.sqlite3"))),
        ("  ", SqliteUrl(engines.DEFAULT_SQLITE_PATH)),
        ("data/other.db", SqliteUrl(Path("data/other.db"))),
        ("/srv/markov/m.db", SqliteUrl(Path("/srv/markov/m.db"))),
        ("sqlite:///data/m.db", SqliteUrl(Path("data/m.db"))),
        ("sqlite:////srv/m.db", SqliteUrl(Path("/srv/m.db"))),
        ("SQLite:///m.db", SqliteUrl(Path("m.db"))),
        ("postgresql://bot@db.example:5432/markov", PostgresUrl("postgresql://bot@db.example:5432/markov")),
        ("postgres://bot:pw@127.0.0.1/markov", PostgresUrl("postgres://bot:pw@127.0.0.1/markov")),
        (
            "postgresql:///markov?host=/run/postgresql",
            PostgresUrl("postgresql:///markov?host=/run/postgresql"),
        ),
    ],
)
def test_a_value_selects_its_engine(raw: str, expected: engines.DatabaseUrl) -> None:
    assert engines.parse(raw) == expected


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("mysql://root:hunter2@db/markov", "not a mysql:// URL"),
        ("http://example.org/db", "not a http:// URL"),
        ("sqlite://", "sqlite:///relative/path"),
        ("sqlite://host/m.db", "sqlite:///relative/path"),
        ("postgresql://db:port/markov", "port that is not a number"),
        ("postgresql://db:99999/markov", "port that is not a number"),
        ("postgresql://db/markov/extra", "name one database"),
        ("postgresql:///markov", "must name a server"),
    ],
)
def test_a_value_that_selects_no_engine_is_one_clear_line(raw: str, says: str) -> None:
    with pytest.raises(DatabaseUrlError, match=says) as caught:
        engines.parse(raw)
    message = str(caught.value)
    assert message.startswith(engines.ENV)
    assert "\n" not in message
    assert "hunter2" not in message


def test_a_password_never_shows() -> None:
    url = PostgresUrl("postgresql://bot:s3cret@db.example:5432/markov")
    for shown in (str(url), repr(url), url.redacted):
        assert "s3cret" not in shown
        assert "bot:***@db.example:5432/markov" in shown
    assert PostgresUrl("postgresql://bot@db/markov").redacted == "postgresql://bot@db/markov"
