"""A small fake Discord (REST + gateway websocket) on 127.0.0.1 that the real discord.py client talks to."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

ALL = str((1 << 53) - 1)  # every permission
MEMBER = str(
    0x400 | 0x800 | 0x10000 | 0x4000 | 0x8000 | 0x80000000
)  # view, send, history, embed, attach, app commands

_ids = itertools.count(1_100_000_000_000_000_000)


def snowflake() -> str:
    """A fresh id."""
    return str(next(_ids))


def user(uid: str, name: str, *, bot: bool = False) -> dict[str, Any]:
    """A user object."""
    return {
        "id": uid,
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
        "bot": bot,
    }


class FakeDiscord:
    """Just enough of Discord for one bot in one server: login, sync, messages, interactions."""

    def __init__(self) -> None:
        self.app_id = snowflake()
        self.bot = user(self.app_id, "markovbot", bot=True)
        self.guild_id = snowflake()
        self.channel_id = snowflake()
        self.owner = user(snowflake(), "owner")
        self.member = user(snowflake(), "member")
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, json body)
        self._sockets: list[web.WebSocketResponse] = []
        self._seq = 0
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ server

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Close sockets and stop listening."""
        for ws in self._sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def http_base(self) -> str:
        """What discord.http.Route.BASE should be."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        """What DiscordWebSocket.DEFAULT_GATEWAY should be."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ------------------------------------------------------------------ state

    def guild(self) -> dict[str, Any]:
        """The one server: @everyone may read and write; the owner is the owner."""
        joined = "2024-01-01T00:00:00+00:00"
        return {
            "id": self.guild_id,
            "name": "test server",
            "owner_id": self.owner["id"],
            "icon": None,
            "features": [],
            "roles": [
                {
                    "id": self.guild_id,
                    "name": "@everyone",
                    "permissions": MEMBER,
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                }
            ],
            "channels": [
                {
                    "id": self.channel_id,
                    "type": 0,
                    "name": "general",
                    "position": 0,
                    "permission_overwrites": [],
                    "nsfw": False,
                    "guild_id": self.guild_id,
                }
            ],
            "members": [
                {
                    "user": self.bot,
                    "roles": [],
                    "joined_at": joined,
                    "flags": 0,
                    "deaf": False,
                    "mute": False,
                },
                {
                    "user": self.owner,
                    "roles": [],
                    "joined_at": joined,
                    "flags": 0,
                    "deaf": False,
                    "mute": False,
                },
            ],
            "member_count": 3,
            "large": False,
            "unavailable": False,
            "threads": [],
            "emojis": [],
            "stickers": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "joined_at": joined,
        }

    def message(self, author: dict[str, Any], content: str, mid: str | None = None) -> dict[str, Any]:
        """A MESSAGE_CREATE payload in the general channel."""
        return {
            "id": mid or snowflake(),
            "channel_id": self.channel_id,
            "guild_id": self.guild_id,
            "author": author,
            "member": {
                "roles": [],
                "joined_at": "2024-01-01T00:00:00+00:00",
                "flags": 0,
                "deaf": False,
                "mute": False,
            },
            "content": content,
            "timestamp": "2026-01-01T00:00:00+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
        }

    # ------------------------------------------------------------------ gateway

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 30_000}})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            payload = json.loads(msg.data)
            if payload["op"] == 1:
                await ws.send_json({"op": 11})
            elif payload["op"] == 2:
                self.requests.append(("GATEWAY", "IDENTIFY", {"intents": payload["d"].get("intents")}))
                self._changed.set()
                ready = {
                    "v": 10,
                    "user": self.bot,
                    "guilds": [{"id": self.guild_id, "unavailable": True}],
                    "session_id": "fake-session",
                    "resume_gateway_url": self.gateway_url,
                    "application": {"id": self.app_id, "flags": 0},
                }
                await self.dispatch("READY", ready)
                await self.dispatch("GUILD_CREATE", self.guild())
        return ws

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send one gateway event to every connected client."""
        self._seq += 1
        for ws in self._sockets:
            if not ws.closed:
                await ws.send_json({"op": 0, "t": event, "s": self._seq, "d": data})

    async def send_message(self, author: dict[str, Any], content: str) -> str:
        """A member posts in the general channel; returns the message id."""
        payload = self.message(author, content)
        await self.dispatch("MESSAGE_CREATE", payload)
        return str(payload["id"])

    async def send_command(
        self,
        invoker: dict[str, Any],
        subcommand: str,
        options: list[dict[str, Any]],
        *,
        permissions: str = MEMBER,
    ) -> str:
        """A member runs /markov <subcommand>; returns the interaction id."""
        interaction_id = snowflake()
        await self.dispatch(
            "INTERACTION_CREATE",
            {
                "id": interaction_id,
                "application_id": self.app_id,
                "type": 2,
                "token": f"token-{interaction_id}",
                "version": 1,
                "guild_id": self.guild_id,
                "channel_id": self.channel_id,
                "channel": {
                    "id": self.channel_id,
                    "type": 0,
                    "name": "general",
                    "guild_id": self.guild_id,
                    "permission_overwrites": [],
                    "nsfw": False,
                    "position": 0,
                },
                "member": {
                    "user": invoker,
                    "roles": [],
                    "joined_at": "2024-01-01T00:00:00+00:00",
                    "flags": 0,
                    "deaf": False,
                    "mute": False,
                    "permissions": permissions,
                },
                "app_permissions": MEMBER,
                "locale": "en-US",
                "guild_locale": "en-US",
                "entitlements": [],
                "attachment_size_limit": 10_485_760,
                "authorizing_integration_owners": {"0": self.guild_id},
                "context": 0,
                "data": {
                    "id": snowflake(),
                    "name": "markov",
                    "type": 1,
                    "options": [{"name": subcommand, "type": 1, "options": options}],
                },
            },
        )
        return interaction_id

    # ------------------------------------------------------------------ REST

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body: Any = None
        if request.content_type == "application/json" and request.can_read_body:
            body = await request.json()
        elif request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            body = {}
            async for part in reader:
                if part.name == "payload_json":  # type: ignore[union-attr]
                    body = json.loads(await part.text())  # type: ignore[union-attr]
        self.requests.append((request.method, path, body))
        self._changed.set()
        # Exactly "application/json": discord.py reads anything else (even with a charset) as text.
        payload = json.dumps(self._answer(request.method, path, body)).encode()
        return web.Response(body=payload, headers={"Content-Type": "application/json"})

    def _answer(self, method: str, path: str, body: Any) -> Any:
        if path == "/users/@me":
            return self.bot
        if path == "/oauth2/applications/@me":
            return {
                "id": self.app_id,
                "name": "markovbot",
                "icon": None,
                "description": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": 0,
                "owner": self.owner,
                "team": None,
                "summary": "",
            }
        if (
            path.startswith(f"/applications/{self.app_id}/")
            and path.endswith("/commands")
            and method == "PUT"
        ):
            return [
                {**cmd, "id": snowflake(), "application_id": self.app_id, "version": "1"}
                for cmd in body or []
            ]
        if path.startswith("/interactions/"):
            # discord.py asks for the callback's result (with_response): the interaction and what it made.
            interaction_id = path.split("/")[2]
            message = self.message(self.bot, ((body or {}).get("data") or {}).get("content", ""))
            return {
                "interaction": {
                    "id": interaction_id,
                    "type": 2,
                    "response_message_id": message["id"],
                    "response_message_loading": False,
                    "response_message_ephemeral": False,
                },
                "resource": {"type": (body or {}).get("type", 4), "message": message},
            }
        if path.startswith(f"/channels/{self.channel_id}/messages") and method == "POST":
            return self.message(self.bot, (body or {}).get("content", ""))
        if path.startswith("/webhooks/"):
            return self.message(self.bot, (body or {}).get("content", ""))
        log.warning("fake Discord has no answer for %s %s", method, path)
        return {}

    async def wait_for(
        self, predicate: Callable[[tuple[str, str, Any]], bool], seconds: float = 10
    ) -> tuple[str, str, Any]:
        """The first recorded request that matches, waiting for it if needed."""
        try:
            async with asyncio.timeout(seconds):
                while True:
                    for request in self.requests:
                        if predicate(request):
                            return request
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            seen = [(method, path) for method, path, _ in self.requests]
            raise AssertionError(f"no matching request in {seconds} s; saw {seen}") from None
