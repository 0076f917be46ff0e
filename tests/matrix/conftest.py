"""Fixtures: one real Synapse per test session, fresh users per test, and the bot running against it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nio import AsyncClient, RoomMessage

from bot.config import Settings
from bot.cooldowns import Cooldowns
from bot.core.brain import Brain
from bot.matrix_app import MatrixBot, login
from tests.matrix.synapse import SynapseServer


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """A real homeserver on 127.0.0.1, started once and stopped by its pid at the end."""
    server = SynapseServer(tmp_path_factory.mktemp("synapse"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Human:
    """A person's Matrix client that records the messages it sees."""

    client: AsyncClient
    seen: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (room, sender, content)

    @property
    def user_id(self) -> str:
        return str(self.client.user_id)

    async def say(self, room_id: str, text: str) -> str:
        """Send a text message; returns its event id."""
        response = await self.client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})
        return str(response.event_id)

    async def wait_for(
        self, predicate: Callable[[list[tuple[str, str, dict[str, Any]]]], bool], seconds: float = 20.0
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """Sync until predicate(seen) holds."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not predicate(self.seen):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out; saw {[c.get('body') for _, _, c in self.seen][-10:]}")
            await self.client.sync(timeout=500)
        return self.seen

    def from_user(self, user_id: str, room_id: str) -> list[dict[str, Any]]:
        """Contents of the messages a user sent in a room, oldest first."""
        return [c for r, s, c in self.seen if r == room_id and s == user_id]


async def make_human(synapse: SynapseServer, name: str) -> Human:
    user_id, token = synapse.register(f"{name}-{uuid.uuid4().hex[:8]}", "password-" + name)
    client = AsyncClient(synapse.base_url, user_id)
    client.access_token, client.user_id, client.device_id = token, user_id, "TEST"
    human = Human(client)

    async def record(room: Any, event: RoomMessage) -> None:
        human.seen.append((room.room_id, event.sender, event.source.get("content", {})))

    await client.sync(timeout=0)
    client.add_event_callback(record, RoomMessage)
    return human


@pytest.fixture
async def people(synapse: SynapseServer) -> AsyncIterator[tuple[Human, Human]]:
    """Two people, alice and bob."""
    alice, bob = await make_human(synapse, "alice"), await make_human(synapse, "bob")
    try:
        yield alice, bob
    finally:
        await alice.client.close()
        await bob.client.close()


@dataclass
class RunningBot:
    """The bot, its Brain and its settings, running sync_forever in a task."""

    bot: MatrixBot
    brain: Brain
    settings: Settings
    task: asyncio.Task[None]
    stopped: bool = False

    @property
    def user_id(self) -> str:
        return self.bot.user_id


BotFactory = Callable[[], Awaitable[RunningBot]]


@pytest.fixture
async def start_bot(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[BotFactory]:
    """Starts the bot (logging in with its password, as `markovbot matrix` does); restartable."""
    name = f"markovbot-{uuid.uuid4().hex[:8]}"
    user_id, _ = synapse.register(name, "bot-password")
    settings = Settings.from_env(
        {
            "MARKOV_DB": str(tmp_path / "bot.sqlite3"),
            "MATRIX_HOMESERVER": synapse.base_url,
            "MATRIX_USER_ID": user_id,
            "MATRIX_PASSWORD": "bot-password",
            "MARKOV_FLUSH_INTERVAL": "0.05",
        }
    )
    running: list[RunningBot] = []

    async def start() -> RunningBot:
        brain = await Brain.open(settings.db_path, **settings.store_options)
        client = AsyncClient(settings.matrix_homeserver or "", settings.matrix_user_id or "")
        assert await login(client, brain, settings) is None
        bot = MatrixBot(brain, client, auto_join=True, cooldowns=Cooldowns(settings.cooldown_seconds))
        task = asyncio.create_task(bot.sync_forever())
        running.append(RunningBot(bot, brain, settings, task))
        return running[-1]

    yield start
    for r in running:
        await stop_bot(r)


async def stop_bot(r: RunningBot) -> None:
    """Stop a running bot and close its database."""
    if r.stopped:
        return
    r.stopped = True
    if not r.task.done():
        r.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await r.task
    await r.bot.stop_answering()
    await r.bot.client.close()
    await r.brain.close()
