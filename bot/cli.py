"""The `markovbot` command: run | matrix | console | import | generate | stats."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from bot import replies
from bot.config import ConfigError, Settings
from bot.core.brain import Brain
from bot.core.models import ChainKey
from bot.core.store import SchemaTooNew, StoreError
from bot.runtime import settle_heap

log = logging.getLogger(__name__)

T = TypeVar("T")
LOCAL = "local"


def local_chain(name: str) -> ChainKey:
    """The chain a CLI/console name refers to."""
    return ChainKey(LOCAL, LOCAL, name)


def setup_logging(level: str) -> None:
    """Log to stderr in one line per record."""
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("discord.gateway").setLevel(max(logging.INFO, logging.getLogger().level))


async def with_brain(settings: Settings, work: Callable[[Brain], Awaitable[T]]) -> T:
    """Open the database, run work, and always close it (else aiosqlite's thread keeps the process alive)."""
    brain = await Brain.open(settings.db_path, **settings.store_options)
    settle_heap()
    try:
        return await work(brain)
    finally:
        await brain.close()


def run_async(settings: Settings, work: Callable[[Brain], Awaitable[T]]) -> T:
    """Run work over a Brain, turning storage problems into clear one-line errors."""
    try:
        return asyncio.run(with_brain(settings, work))
    except SchemaTooNew as exc:
        raise click.ClickException(str(exc)) from None
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    except (sqlite3.DatabaseError, OSError) as exc:
        raise click.ClickException(f"cannot use the database {settings.db_path}: {exc}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file (default: MARKOV_DB or data/markov.sqlite3).",
)
@click.pass_context
def cli(ctx: click.Context, db: Path | None) -> None:
    """markovbot: a Markov-chain chat bot that learns only from members who opted in."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if db is not None:
        settings = Settings(**{**settings.__dict__, "db_path": db})
    setup_logging(settings.log_level)
    ctx.obj = settings


@cli.command()
@click.pass_obj
def run(settings: Settings) -> None:
    """Run the Discord bot (needs DISCORD_TOKEN)."""
    from bot.discord_app import run_discord

    code = run_discord(settings)
    if code:
        sys.exit(code)


@cli.command()
@click.pass_obj
def matrix(settings: Settings) -> None:
    """Run the Matrix bot (needs MATRIX_HOMESERVER, MATRIX_USER_ID and a password or token)."""
    from bot.matrix_app import run_matrix

    code = run_matrix(settings)
    if code:
        sys.exit(code)


@cli.command()
@click.option("--chain", default="console", show_default=True, help="Chain (local channel) to talk to.")
@click.pass_obj
def console(settings: Settings, chain: str) -> None:
    """A local terminal channel: lines you type are learned; /markov commands answer like the bot."""
    from bot.console import BANNER, Console

    async def work(brain: Brain) -> None:
        print(BANNER.format(channel=chain, db=settings.db_path))
        await Console(brain, chain, card_dir=settings.db_path.parent).run()

    run_async(settings, work)


@cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--chain", required=True, help="Chain to learn into.")
@click.option(
    "--format", "fmt", type=click.Choice(["auto", "text", "json"]), default="auto", show_default=True
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal)."
)
@click.pass_obj
def import_(settings: Settings, path: Path, chain: str, fmt: str, progress: bool | None) -> None:
    """Learn a file: one message per line, or a DiscordChatExporter JSON export. Resumable."""
    from bot.importer import ImportFormatError, import_file

    show = sys.stderr.isatty() if progress is None else progress

    async def work(brain: Brain) -> Any:
        return await import_file(brain, path, local_chain(chain), fmt=fmt, progress=show)

    try:
        result = run_async(settings, work)
    except ImportFormatError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"read {result.read:,} messages: learned {result.learned:,}, already learned {result.duplicates:,}, "
        f"skipped {result.skipped:,} (empty, bots or system messages)"
    )


@cli.command()
@click.option("--chain", required=True, help="Chain to generate from.")
@click.option("--start", default=None, help="Start word(s); may land mid-message.")
@click.option("--author", default=None, help="Only this author's part of the chain.")
@click.option("--count", type=click.IntRange(1, 100), default=1, show_default=True)
@click.option("--seed", type=int, default=None, help="Seed for reproducible output.")
@click.option(
    "--guard/--no-guard", default=True, show_default=True, help="Refuse copies of learned messages."
)
@click.pass_obj
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
        results = await brain.generate_many(
            local_chain(chain), count, start=start, author=author, rng=rng, guard=guard
        )
        return [(r.ok, replies.generated(r, start=start, member=author)) for r in results]

    lines = run_async(settings, work)
    for ok, text in lines:
        click.echo(text.replace("\n", " "), err=not ok)
    if not any(ok for ok, _ in lines):
        sys.exit(1)


@cli.command()
@click.option("--chain", required=True, help="Chain to report on.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option(
    "--png", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the stats card here."
)
@click.pass_obj
def stats(settings: Settings, chain: str, as_json: bool, png: Path | None) -> None:
    """The retention report: how little of the source the chain keeps."""
    from bot.core.chart import render_card
    from bot.stats_text import as_text

    report = run_async(settings, lambda brain: brain.stats(local_chain(chain)))
    if png is not None:
        png.write_bytes(render_card(report, chain))
    click.echo(json.dumps(report.as_json(), indent=2) if as_json else as_text(report))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (callable in-process with argv)."""
    try:
        cli.main(args=argv, prog_name="markovbot", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
