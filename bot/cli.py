"""The `markovbot` command: run | matrix | console | import | generate | stats | chains | migrate.

Every run ends in one of two ways: done (exit 0), or one line on stderr saying what was wrong
and what to do (exit 1; 2 for a usage error), with a traceback only under `-v`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import random
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from bot import errors, replies, shards
from bot.config import DEFAULT_DB, ConfigError, Settings
from bot.core import engines
from bot.core.brain import Brain
from bot.core.models import ChainKey, GenerateStatus
from bot.core.preparing import PreparerDied
from bot.core.schema import DatabaseBusy
from bot.core.store import SchemaTooNew, StoreError
from bot.core.walkerhost import WalkerDied
from bot.runtime import settle_heap
from bot.startup import database_errors

log = logging.getLogger(__name__)

T = TypeVar("T")
LOCAL = "local"
DB_OPTION = click.Path(dir_okay=False, path_type=Path)


def local_chain(name: str) -> ChainKey:
    """The chain a CLI/console name refers to."""
    return ChainKey(LOCAL, LOCAL, name)


def setup_logging(level: int) -> None:
    """Log to stderr in one line per record (a process whose logging is set up already is left alone)."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("discord.gateway").setLevel(max(logging.INFO, level))
    if level > logging.DEBUG:
        logging.getLogger("matplotlib").setLevel(logging.ERROR)  # its font cache chatter


@dataclasses.dataclass
class Global:
    """Options given before or after the subcommand, and the settings made from them."""

    db: Path | None = None
    verbose: int = 0

    def settings(self, *, daemon: bool, opens: bool = True) -> Settings:
        """Settings from the environment and the options; logging set up to match.

        opens=False: the command does not open the database MARKOV_DATABASE_URL selects (migrate reads a
        SQLite file it names itself), so PostgreSQL there is no error and no folder is made or checked.
        """
        try:
            settings = Settings.from_env()
        except ConfigError as exc:
            raise errors.UserError(str(exc)) from None
        if self.db is not None:  # --db names a SQLite file, whatever the environment selects
            settings = dataclasses.replace(settings, db_path=self.db, postgres=None)
        # Only the default folder (data/) is created; a mistyped path must not grow a tree.
        sqlite = settings.postgres is None
        if opens and sqlite and settings.db_path != Path(DEFAULT_DB) and not settings.db_path.parent.is_dir():
            raise errors.UserError(errors.db_folder_missing(settings.db_path))
        if self.verbose:
            level = logging.INFO if self.verbose == 1 else logging.DEBUG
        else:
            level = getattr(logging, settings.log_level) if daemon else logging.WARNING
        setup_logging(level)
        return settings


def _set_db(ctx: click.Context, _: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.ensure_object(Global).db = value


def _add_verbose(ctx: click.Context, _: click.Parameter, value: int) -> None:
    ctx.ensure_object(Global).verbose += value


def global_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--db and -v, accepted on the group and on each subcommand."""
    fn = click.option(
        "--db",
        type=DB_OPTION,
        expose_value=False,
        callback=_set_db,
        help="SQLite file (default: MARKOV_DATABASE_URL, MARKOV_DB or data/markov.sqlite3).",
    )(fn)
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_add_verbose,
        help="More log lines (-v INFO, -vv DEBUG) and a traceback on errors.",
    )(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@global_options
def cli() -> None:
    """markovbot: a Markov-chain chat bot that learns only from members who opted in."""


def command(
    name: str | None = None, *, daemon: bool = False, opens: bool = True
) -> Callable[[Callable[..., Any]], Any]:
    """A subcommand whose function receives the Settings first."""

    def wrap(fn: Callable[..., Any]) -> Any:
        @functools.wraps(fn)
        @click.pass_obj
        def callback(state: Global, /, *args: Any, **kwargs: Any) -> Any:
            return fn(state.settings(daemon=daemon, opens=opens), *args, **kwargs)

        return cli.command(name)(global_options(callback))

    return wrap


async def with_brain(settings: Settings, work: Callable[[Brain], Awaitable[T]]) -> T:
    """Open the database, run work, and always close it (else aiosqlite's thread keeps the process alive)."""
    brain = await Brain.open(settings.database, **settings.store_options)
    settle_heap()
    try:
        return await work(brain)
    finally:
        await brain.close()


def run_async(settings: Settings, work: Callable[[Brain], Awaitable[T]]) -> T:
    """Run work over a Brain, turning storage problems into clear one-line errors."""
    try:
        return asyncio.run(with_brain(settings, work))
    except DatabaseBusy as exc:
        raise errors.UserError(errors.database_busy(settings.database_label)) from exc
    except (SchemaTooNew, StoreError) as exc:
        raise errors.UserError(str(exc)) from exc
    except WalkerDied as exc:
        raise errors.UserError(errors.walker_died(exc)) from exc
    except PreparerDied as exc:
        raise errors.UserError(str(exc)) from exc
    except database_errors(settings) as exc:
        raise errors.UserError(errors.db_unusable(settings.database_label, exc)) from exc


def shard_plan(settings: Settings, ids_raw: str | None, count_raw: str | None) -> shards.ShardPlan:
    """The shards of `run`: each option replaces its environment variable, then both are checked together."""
    env = settings.shards
    try:
        ids = shards.parse_ids(ids_raw, shards.IDS_OPTION) if ids_raw is not None else env.ids
        count = shards.parse_count(count_raw, shards.COUNT_OPTION) if count_raw is not None else env.count
        return shards.plan(
            ids,
            count,
            ids_source=shards.IDS_OPTION if ids_raw is not None else shards.IDS_ENV,
            count_source=shards.COUNT_ENV
            if count_raw is None and env.count is not None
            else shards.COUNT_OPTION,
        )
    except shards.ShardError as exc:
        raise errors.UserError(str(exc)) from None


@command(daemon=True)
@click.option(
    "--shards",
    "shard_ids",
    default=None,
    metavar="IDS",
    help="Discord shards this process runs: 0-1, 0,2 or 3 (needs --shard-count; default MARKOV_SHARDS).",
)
@click.option(
    "--shard-count",
    default=None,
    metavar="N",
    help="Shards across all processes (default MARKOV_SHARD_COUNT; without either: one connection).",
)
def run(settings: Settings, shard_ids: str | None, shard_count: str | None) -> None:
    """Run the Discord bot (needs DISCORD_TOKEN)."""
    from bot.discord_app import run_discord

    settings = dataclasses.replace(settings, shards=shard_plan(settings, shard_ids, shard_count))
    code = run_discord(settings)
    if code:
        sys.exit(code)


@command(daemon=True)
def matrix(settings: Settings) -> None:
    """Run the Matrix bot (needs MATRIX_HOMESERVER, MATRIX_USER_ID and a password or token)."""
    from bot.matrix_app import run_matrix

    code = run_matrix(settings)
    if code:
        sys.exit(code)


@command()
@click.option("--chain", default="console", show_default=True, help="Chain (local channel) to talk to.")
def console(settings: Settings, chain: str) -> None:
    """A local terminal channel: lines you type are learned; /markov commands answer like the bot."""
    from bot.console import BANNER, Console

    async def work(brain: Brain) -> None:
        print(BANNER.format(channel=chain, db=settings.database_label))
        await Console(brain, chain, card_dir=settings.db_path.parent).run()

    run_async(settings, work)


@command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--chain", required=True, help="Chain to learn into.")
@click.option(
    "--format", "fmt", type=click.Choice(["auto", "text", "json"]), default="auto", show_default=True
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal)."
)
def import_(settings: Settings, path: Path, chain: str, fmt: str, progress: bool | None) -> None:
    """Learn a file: UTF-8 text (one message per line) or JSON (DiscordChatExporter). Resumable."""
    from bot.importer import learn_source, open_source

    source = open_source(path, fmt=fmt, max_chars=settings.max_message_chars)  # before the database opens
    show = sys.stderr.isatty() if progress is None else progress
    try:
        result = run_async(
            settings,
            lambda brain: learn_source(brain, source, local_chain(chain), progress=show, workers=None),
        )
    except errors.UserError as exc:
        if isinstance(exc.__cause__, StoreError):
            raise errors.UserError(errors.import_stopped(exc)) from exc
        raise
    click.echo(
        errors.import_summary(
            result.read,
            result.learned,
            result.duplicates,
            result.skipped,
            result.too_long,
            result.invalid,
            settings.max_message_chars,
        )
    )


async def _known_chain(brain: Brain, settings: Settings, chain: str) -> ChainKey:
    """The chain's key, or a one-line error when the database has no such chain."""
    key = local_chain(chain)
    if not await brain.has_chain(key):
        raise errors.UserError(errors.unknown_chain(chain, settings.database_label))
    return key


@command()
@click.option("--chain", required=True, help="Chain to generate from.")
@click.option("--start", default=None, help="Start word(s); may land mid-message.")
@click.option("--author", default=None, help="Only this author's part of the chain (an author id).")
@click.option("--count", type=click.IntRange(1, 100), default=1, show_default=True, help="At most 100.")
@click.option("--seed", type=int, default=None, help="Seed for reproducible output.")
@click.option(
    "--guard/--no-guard", default=True, show_default=True, help="Refuse copies of learned messages."
)
def generate(
    settings: Settings,
    chain: str,
    start: str | None,
    author: str | None,
    count: int,
    seed: int | None,
    guard: bool,
) -> None:
    """Generate messages, one per line."""
    rng = random.Random(seed)

    async def work(brain: Brain) -> list[tuple[bool, str]]:
        key = await _known_chain(brain, settings, chain)
        results = await brain.generate_many(key, count, start=start, author=author, rng=rng, guard=guard)
        last = results[-1]
        if author is not None and last.status is GenerateStatus.NO_MEMBER_DATA:
            ids = await brain.author_ids(key, 11)
            raise errors.UserError(errors.unknown_author(author, chain, ids[:10], len(ids) > 10))
        return [(r.ok, replies.generated(r, start=start, member=author)) for r in results]

    lines = run_async(settings, work)
    for ok, text in lines:
        click.echo(text.replace("\n", " "), err=not ok)
    if not any(ok for ok, _ in lines):
        sys.exit(1)


@command()
@click.option("--chain", required=True, help="Chain to report on.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option(
    "--png", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the stats card here."
)
def stats(settings: Settings, chain: str, as_json: bool, png: Path | None) -> None:
    """The retention report: how little of the source the chain keeps."""
    from bot.core.chart import render_card
    from bot.stats_text import as_text

    if png is not None and not png.parent.is_dir():
        raise errors.UserError(errors.png_folder_missing(png))

    async def work(brain: Brain) -> Any:
        return await brain.stats(await _known_chain(brain, settings, chain))

    report = run_async(settings, work)
    if png is not None:
        try:
            png.write_bytes(render_card(report, chain))
        except OSError as exc:
            raise errors.UserError(errors.png_unwritable(png, exc.strerror or exc)) from exc
    click.echo(json.dumps(report.as_json(), indent=2) if as_json else as_text(report))


@command()
def chains(settings: Settings) -> None:
    """List the chains of the database: name, messages and tokens learned, and when it last learned."""
    found = run_async(settings, lambda brain: brain.chains())
    if not found:
        click.echo(errors.no_chains(settings.database_label))
        return
    names = [
        c.key.channel if c.key.platform == LOCAL else "/".join(dataclasses.astuple(c.key)) for c in found
    ]
    width = max(len("chain"), *(len(n) for n in names))
    click.echo(f"{'chain':<{width}}  {'messages':>12}  {'tokens':>14}  last learned (UTC)")
    for name, c in zip(names, found, strict=True):
        when = "-" if c.learned_at is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(c.learned_at))
        click.echo(f"{name:<{width}}  {c.messages:>12,}  {c.tokens:>14,}  {when}")


@command(opens=False)
@click.option(
    "--to", "to", required=True, metavar="URL", help="The PostgreSQL database: postgresql://user@host/db."
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal)."
)
def migrate(settings: Settings, to: str, progress: bool | None) -> None:
    """Copy the SQLite database (--db) whole into an empty PostgreSQL database. Safe to run again."""
    from tqdm import tqdm

    from bot.core.postgres import migrate as mg

    try:
        url = engines.parse(to, "--to")
    except engines.DatabaseUrlError as exc:
        raise errors.UserError(str(exc)) from None
    if not isinstance(url, engines.PostgresUrl):
        raise errors.UserError(errors.migrate_not_postgres(to))
    if settings.postgres is not None:
        raise errors.UserError(errors.migrate_no_source())
    bar = tqdm(
        desc="copying",
        unit=" rows",
        disable=not (sys.stderr.isatty() if progress is None else progress),
        mininterval=0.5,
    )

    def advance(rows: int, total: int) -> None:
        if bar.total != total:
            bar.reset(total=total)
        bar.update(rows)

    try:
        outcome = asyncio.run(
            mg.migrate(settings.db_path, url, key=settings.fingerprint_key, progress=advance)
        )
    except mg.MigrateRefused as exc:
        raise errors.UserError(errors.migrate_refused(exc)) from exc
    finally:
        bar.close()
    click.echo(errors.migrate_summary(outcome))


def _fail(message: str, code: int, state: Global) -> int:
    """Print one error line (after the traceback under -v) and return the exit code."""
    if state.verbose:
        traceback.print_exc()
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (callable in-process with argv)."""
    state = Global()
    try:
        cli.main(args=argv, prog_name="markovbot", standalone_mode=False, obj=state)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return exc.exit_code
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "markovbot"
        return _fail(errors.usage(exc.format_message(), where), 2, Global())
    except click.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code, state)
    except errors.UserError as exc:
        return _fail(str(exc), exc.exit_code, state)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("aborted", err=True)
        return 130
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except Exception as exc:
        return _fail(errors.unexpected(exc), 1, state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
