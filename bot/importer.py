"""Importing a corpus file into a chain: plain text (one message per line) or DiscordChatExporter JSON."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.core.brain import Brain
from bot.core.models import ChainKey, Message

log = logging.getLogger(__name__)

LOCAL_AUTHOR = "import"
LEARNABLE_TYPES = {"Default", "Reply", "0", "19"}


class ImportFormatError(ValueError):
    """The file is neither plain text nor DiscordChatExporter JSON."""


@dataclass
class ImportResult:
    """How an import went."""

    read: int = 0
    queued: int = 0
    skipped: int = 0
    learned: int = 0
    duplicates: int = 0


def detect_format(path: Path) -> str:
    """'json' for a DiscordChatExporter export, else 'text'."""
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    if head.startswith(b"{") and b'"messages"' in head + b'"messages"':
        return "json"
    return "text"


def _text_messages(path: Path) -> Iterator[tuple[str, str, str]]:
    """(message id, author, text) per non-empty line; ids from file name, line number and content."""
    stem = path.name
    with path.open("r", encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            text = line.rstrip("\r\n")
            if text.strip():
                digest = hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=6).hexdigest()
                yield f"{stem}:{number}:{digest}", LOCAL_AUTHOR, text


def _json_messages(path: Path) -> Iterator[tuple[str, str, str] | None]:
    """(message id, author id, text) per learnable message; None for each skipped one."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"{path} looks like JSON but does not parse: {exc}") from None
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list):
        raise ImportFormatError(f"{path} is JSON but not a DiscordChatExporter export (no 'messages' list).")
    for item in messages:
        author = item.get("author") or {}
        if author.get("isBot") or str(item.get("type", "Default")) not in LEARNABLE_TYPES:
            yield None
            continue
        content = item.get("content") or ""
        if not content.strip() or "id" not in item or "id" not in author:
            yield None
            continue
        yield str(item["id"]), str(author["id"]), str(content)


async def import_file(
    brain: Brain, path: Path, chain: ChainKey, *, fmt: str = "auto", progress: bool = True
) -> ImportResult:
    """Learn every message of a file into a chain; re-running learns nothing twice."""
    if fmt == "auto":
        fmt = detect_format(path)
    result = ImportResult()
    source = _json_messages(path) if fmt == "json" else _text_messages(path)
    from tqdm import tqdm

    committed, duplicates = brain.store.committed, brain.store.duplicates
    bar = tqdm(desc=f"importing {path.name}", unit=" msg", disable=not progress, mininterval=0.5)
    try:
        for entry in source:
            result.read += 1
            bar.update(1)
            if entry is None:
                result.skipped += 1
                continue
            message_id, author, text = entry
            learned = await brain.learn(
                Message(chain.platform, chain.guild, chain.channel, author, message_id, text),
                require_consent=False,
            )
            if learned.queued:
                result.queued += 1
            else:
                result.skipped += 1
        await brain.flush()
    finally:
        bar.close()
    result.learned = brain.store.committed - committed
    result.duplicates = brain.store.duplicates - duplicates
    return result
