"""The fingerprint-guided attack: what someone holding the database file (and perhaps a key) rebuilds.

It walks every chain path of up to `max_tokens` tokens from BEGIN and keeps each candidate whose
whole-message fingerprint, made with the key tried, is among the learned messages' fingerprints.
With the database's key it rebuilds every short learned message; with any other key (the database
alone holds none) it confirms nothing. Bounded by `budget` expanded states.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from bot.core import chain as chainmod
from bot.core import chainrows
from bot.core.fingerprints import Fingerprinter
from bot.core.sql import Q

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 6
DEFAULT_BUDGET = 200_000


@dataclass
class AttackResult:
    """What the attack tried and what the fingerprints confirmed."""

    candidates: int = 0  # complete paths whose fingerprint was checked
    expanded: int = 0  # states whose successors were read
    exhausted: bool = False  # stopped by the budget before every path was walked
    confirmed: set[tuple[str, ...]] = field(default_factory=set)


def fingerprint_attack(
    db_path: str | os.PathLike[str],
    key: bytes,
    chain_id: int,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    budget: int = DEFAULT_BUDGET,
) -> AttackResult:
    """Rebuild a chain's learned messages of up to max_tokens tokens, as far as `key` confirms them."""
    uri = f"{Path(db_path).resolve().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        return _attack(db, key, chain_id, max_tokens, budget)
    finally:
        db.close()


def _attack(db: sqlite3.Connection, key: bytes, chain_id: int, max_tokens: int, budget: int) -> AttackResult:
    """The walk and the checks, over an open connection."""
    row = db.execute(Q["chain_order"], (chain_id,)).fetchone()  # any schema: old databases too
    if row is None:
        return AttackResult()
    order = int(row[0])
    blocked = "transition_blocks" in {name for (name,) in db.execute(Q["table_names"])}
    learned = {int(fp) for (fp,) in db.execute(Q["chain_message_fingerprints"], (chain_id,))}
    fingerprints = Fingerprinter(key)
    texts: dict[int, str] = {}
    result = AttackResult()
    # Depth-first over (context, path of token ids); every path reaching END is a candidate.
    stack: list[tuple[tuple[int, ...], tuple[int, ...]]] = [((chainmod.BEGIN,) * order, ())]
    while stack:
        if result.expanded >= budget:
            result.exhausted = True
            break
        ctx, path = stack.pop()
        result.expanded += 1
        if blocked:
            successors = chainrows.successors(db, chain_id, chainmod.pack(ctx))[0]
        else:  # a file from before blocks: every count is a row of transitions
            successors = [int(n) for n, _ in db.execute(Q["successors"], (chain_id, chainmod.pack(ctx)))]
        missing = [n for n in successors if n > chainmod.END and n not in texts]
        if missing:
            texts.update((int(i), t) for i, t in db.execute(Q["tokens_by_id"], (json.dumps(missing),)))
        for nxt in successors:
            if nxt == chainmod.END:
                tokens = tuple(texts[i] for i in path)
                result.candidates += 1
                if fingerprints.message(tokens) in learned:
                    result.confirmed.add(tokens)
            elif len(path) < max_tokens:
                stack.append(((*ctx, nxt)[-order:], (*path, nxt)))
    return result
