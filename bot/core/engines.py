"""Which database engine a MARKOV_DATABASE_URL names: a SQLite file or a PostgreSQL server, parsed here once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ENV = "MARKOV_DATABASE_URL"
LEGACY_ENV = "MARKOV_DB"  # the older name, a SQLite file's path only
DEFAULT_SQLITE_PATH = Path("data/markov.sqlite3")  # the one default, for the bot and every command
POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})
SQLITE_PREFIX = "sqlite:///"


class DatabaseUrlError(ValueError):
    """The URL names no engine markovbot has, or is malformed; the message says which, in one line."""


@dataclass(frozen=True)
class SqliteUrl:
    """A SQLite file."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class PostgresUrl:
    """A PostgreSQL server and database, as a libpq/asyncpg connection URL."""

    dsn: str

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"PostgresUrl({self.redacted!r})"  # never a password, even in a traceback

    @property
    def redacted(self) -> str:
        """The URL with its password (if any) replaced by ***, for messages and logs."""
        parts = urlsplit(self.dsn)
        if parts.password is None:
            return self.dsn
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


DatabaseUrl = SqliteUrl | PostgresUrl


def parse(raw: str, name: str = ENV) -> DatabaseUrl:
    """A path or sqlite:///path -> SQLite; postgresql://... or postgres://... -> PostgreSQL; else one-line error.

    sqlite:/// follows the usual convention: sqlite:///data/x.db is relative, sqlite:////srv/x.db absolute.
    An empty value is the default SQLite file.
    """
    text = raw.strip()
    if not text:
        return SqliteUrl(DEFAULT_SQLITE_PATH)
    scheme, sep, _ = text.partition("://")
    if not sep:
        return SqliteUrl(Path(text))
    scheme = scheme.lower()
    if scheme == "sqlite":
        if not text.lower().startswith(SQLITE_PREFIX) or not text[len(SQLITE_PREFIX) :]:
            raise DatabaseUrlError(
                f"{name} must give a SQLite file as sqlite:///relative/path or sqlite:////absolute/path."
            )
        return SqliteUrl(Path(text[len(SQLITE_PREFIX) :]))
    if scheme in POSTGRES_SCHEMES:
        return PostgresUrl(_checked_postgres(text, name))
    raise DatabaseUrlError(
        f"{name} must be a SQLite file (a path or sqlite:///path) or a PostgreSQL URL (postgresql://...), "
        f"not a {scheme}:// URL."
    )


def _checked_postgres(text: str, name: str) -> str:
    """The URL if its parts parse (a port that is a number, a database name of one segment)."""
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 -- reading it validates it
    except ValueError:
        raise DatabaseUrlError(f"{name} has a port that is not a number (0 to 65535).") from None
    if parts.path.strip("/").count("/"):
        raise DatabaseUrlError(f"{name} must name one database after the host (postgresql://host/dbname).")
    if not parts.hostname and "host=" not in parts.query:
        raise DatabaseUrlError(f"{name} must name a server: postgresql://user@host:port/dbname.")
    return text
