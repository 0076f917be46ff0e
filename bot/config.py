"""Settings from the environment (and a local .env in development); fails fast and clearly."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import load_dotenv

from bot import shards as shardmod
from bot.core import engines, keys, store

log = logging.getLogger(__name__)

DEFAULT_DB = str(engines.DEFAULT_SQLITE_PATH)  # defined once, in bot.core.engines


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}.") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}.")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}.") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}.")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}.")


def _database(env: Mapping[str, str]) -> engines.DatabaseUrl:
    """MARKOV_DATABASE_URL, else MARKOV_DB (the older name, a SQLite path), else the default file."""
    raw = env.get(engines.ENV, "").strip()
    legacy = env.get(engines.LEGACY_ENV, "").strip()
    try:
        database = engines.parse(raw or legacy, engines.ENV if raw else engines.LEGACY_ENV)
    except engines.DatabaseUrlError as exc:
        raise ConfigError(str(exc)) from None
    if raw and legacy and database != engines.SqliteUrl(Path(legacy)):
        raise ConfigError(
            f"{engines.ENV} and {engines.LEGACY_ENV} name different databases: "
            f"set only {engines.ENV} ({engines.LEGACY_ENV} is its older name)."
        )
    return database


def _shards(env: Mapping[str, str]) -> shardmod.ShardPlan:
    """MARKOV_SHARDS and MARKOV_SHARD_COUNT, checked together."""
    ids_raw = env.get(shardmod.IDS_ENV, "").strip()
    count_raw = env.get(shardmod.COUNT_ENV, "").strip()
    try:
        ids = shardmod.parse_ids(ids_raw, shardmod.IDS_ENV) if ids_raw else None
        count = shardmod.parse_count(count_raw, shardmod.COUNT_ENV) if count_raw else None
        return shardmod.plan(ids, count, ids_source=shardmod.IDS_ENV, count_source=shardmod.COUNT_ENV)
    except shardmod.ShardError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class Settings:
    """Every setting markovbot reads; .env.example documents each."""

    db_path: Path  # the SQLite file (when postgres is None)
    postgres: engines.PostgresUrl | None = (
        None  # MARKOV_DATABASE_URL=postgresql://... (then db_path names the key file)
    )
    log_level: str = "INFO"
    flush_interval: float = store.FLUSH_INTERVAL
    batch_size: int = store.BATCH_SIZE
    max_pending: int = store.MAX_PENDING
    cache_size: int = store.CACHE_SIZE
    import_memory_mb: int = store.BULK_MEMORY_MB
    import_commit_seconds: float = store.BULK_COMMIT_SECONDS
    walker: str = store.BOT_WALKER
    edit_window_days: int = 7
    cooldown_seconds: float = 5.0
    max_message_chars: int = 4000
    discord_token: str | None = None
    discord_guild_id: int | None = None
    shards: shardmod.ShardPlan = shardmod.UNSHARDED  # MARKOV_SHARDS / MARKOV_SHARD_COUNT (run's options win)
    matrix_homeserver: str | None = None
    matrix_user_id: str | None = None
    matrix_password: str | None = None
    matrix_access_token: str | None = None
    matrix_auto_join: bool = True
    matrix_device_name: str = "markovbot"
    fingerprint_key: bytes | None = None  # None: the key file beside the database (bot.core.keys)

    def __repr__(self) -> str:
        # Never print secrets, even in a traceback or a debug log.
        return f"Settings(database={self.database_label!r}, log_level={self.log_level!r}, ...)"

    @property
    def database(self) -> str | Path:
        """What Store/Brain.open takes: the PostgreSQL URL, or the SQLite file."""
        return self.postgres.dsn if self.postgres else self.db_path

    @property
    def database_label(self) -> str:
        """The database as messages name it (a PostgreSQL URL without its password)."""
        return self.postgres.redacted if self.postgres else str(self.db_path)

    @property
    def store_options(self) -> dict[str, Any]:
        """Keyword arguments for Store/Brain.open."""
        return {
            "flush_interval": self.flush_interval,
            "batch_size": self.batch_size,
            "max_pending": self.max_pending,
            "cache_size": self.cache_size,
            "bulk_memory_mb": self.import_memory_mb,
            "bulk_commit_seconds": self.import_commit_seconds,
            "walker": self.walker,
            "key": self.fingerprint_key,
            "max_message_chars": self.max_message_chars,
            "edit_window_days": self.edit_window_days,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
        """Read settings from env (default: os.environ, after loading ./.env if present)."""
        if env is None:
            if dotenv:
                load_dotenv(Path.cwd() / ".env", override=False)
            env = os.environ
        level = env.get("MARKOV_LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError(f"MARKOV_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}.")
        walker = env.get("MARKOV_WALKER", "").strip().lower() or store.BOT_WALKER
        if walker not in store.WALKERS:
            raise ConfigError(f"MARKOV_WALKER must be process or thread, got {walker!r}.")
        guild_raw = env.get("DISCORD_GUILD_ID", "").strip()
        if guild_raw and not guild_raw.isdigit():
            raise ConfigError(f"DISCORD_GUILD_ID must be a server id (digits only), got {guild_raw!r}.")
        raw_key = env.get(keys.ENV, "").strip()
        try:
            fingerprint_key = keys.parse(raw_key, keys.ENV) if raw_key else None
        except keys.KeyRefused as exc:
            raise ConfigError(str(exc)) from None
        database = _database(env)
        shards = _shards(env)
        return cls(
            db_path=database.path if isinstance(database, engines.SqliteUrl) else Path(DEFAULT_DB),
            postgres=database if isinstance(database, engines.PostgresUrl) else None,
            log_level=level,
            flush_interval=_float(env, "MARKOV_FLUSH_INTERVAL", store.FLUSH_INTERVAL, 0.05, 1.0),
            batch_size=_int(env, "MARKOV_BATCH_SIZE", store.BATCH_SIZE, 1, 100_000),
            max_pending=_int(env, "MARKOV_MAX_PENDING", store.MAX_PENDING, 1, 10_000_000),
            cache_size=_int(env, "MARKOV_CACHE_SIZE", store.CACHE_SIZE, 100, 10_000_000),
            import_memory_mb=_int(env, "MARKOV_IMPORT_MEMORY_MB", store.BULK_MEMORY_MB, 64, 1_000_000),
            import_commit_seconds=_float(
                env, "MARKOV_IMPORT_COMMIT_SECONDS", store.BULK_COMMIT_SECONDS, 0.0, 86_400.0
            ),
            walker=walker,
            edit_window_days=_int(env, "MARKOV_EDIT_WINDOW_DAYS", 7, 0, 3650),
            cooldown_seconds=_float(env, "MARKOV_COOLDOWN_SECONDS", 5.0, 0.0, 3600.0),
            max_message_chars=_int(env, "MARKOV_MAX_MESSAGE_CHARS", 4000, 1, 1_000_000),
            discord_token=env.get("DISCORD_TOKEN", "").strip() or None,
            discord_guild_id=int(guild_raw) if guild_raw else None,
            shards=shards,
            matrix_homeserver=env.get("MATRIX_HOMESERVER", "").strip() or None,
            matrix_user_id=env.get("MATRIX_USER_ID", "").strip() or None,
            matrix_password=env.get("MATRIX_PASSWORD", "") or None,
            matrix_access_token=env.get("MATRIX_ACCESS_TOKEN", "").strip() or None,
            matrix_auto_join=_bool(env, "MATRIX_AUTO_JOIN", True),
            matrix_device_name=env.get("MATRIX_DEVICE_NAME", "").strip() or "markovbot",
            fingerprint_key=fingerprint_key,
        )
