"""A small fake Discord (REST + gateway websocket) on 127.0.0.1 that the real discord.py client talks to."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from bot.config import Settings
from bot.core.brain import Brain

log = logging.getLogger(__name__)

ALL = str((1 << 53) - 1)  # every permission
MEMBER = str(
    0x400 | 0x800 | 0x10000 | 0x4000 | 0x8000 | 0x80000000
)  # view, send, history, embed, attach, app commands

_ids = itertools.count(1_100_000_000_000_000_000)
_guild_stamps = itertools.count(2_000_000_000_000_000_000 >> 22)


def snowflake() -> str:
    """A fresh id."""
    return str(next(_ids))


def shard_of(guild_id: str, count: int) -> int:
    """The shard Discord delivers a guild's events to."""
    return (int(guild_id) >> 22) % count


def guild_snowflake(shard: int, count: int) -> str:
    """A fresh id of a guild that lands on this shard (of count); from a range apart from snowflake()'s."""
    while (stamp := next(_guild_stamps)) % count != shard:
        pass
    return str(stamp << 22)


@dataclass(frozen=True)
class Route:
    """Who gets a frame: one session, a guild's shard (or one shard), or everyone."""

    session: str | None = None
    guild: str | None = None
    shard: int | None = None


@dataclass
class Fault:
    """The next `times` requests whose method matches and whose path starts with `path` get this answer."""

    method: str
    path: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int = 1


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
    """Just enough of Discord for a bot: login, sync, messages, interactions; one server per shard.

    With shards=2 there are two servers, one on each shard of two: a client that IDENTIFYs with
    a shard [id, count] gets the events of the servers that shard owns ((guild_id >> 22) % count),
    and one that IDENTIFYs without a shard gets all of them.
    """

    def __init__(self, shards: int = 1) -> None:
        self.app_id = snowflake()
        self.bot = user(self.app_id, "markovbot", bot=True)
        self.shard_count = shards  # what GET /gateway/bot recommends
        self.channels: dict[str, str] = {}  # guild id -> its one channel's id
        for shard in range(shards):
            self.channels[guild_snowflake(shard, shards) if shards > 1 else snowflake()] = snowflake()
        self.guild_id, self.channel_id = next(iter(self.channels.items()))  # the first server (shard 0)
        self.also_deliver: dict[str, set[int]] = {}  # guild id -> more shard ids that get its events
        self.require_sharding = (
            False  # close an IDENTIFY without a shard with 4011, as Discord does for big bots
        )
        self.replies: dict[str, dict[str, Any]] = {}  # interaction id -> the message its response made
        self._guild_of: dict[str, str] = {}  # interaction id -> its server
        self.owner = user(snowflake(), "owner")
        self.member = user(snowflake(), "member")
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, json body)
        self.responses: list[tuple[str, str, int, float]] = []  # (method, path, status, loop time)
        self.faults: list[Fault] = []
        self.session_id: str | None = None  # the latest session
        self._session_shards: dict[str, tuple[int, int] | None] = {}  # resumable sessions and their shard
        self._ws: dict[web.WebSocketResponse, tuple[str, tuple[int, int] | None]] = {}  # session and shard
        self.replay_overlap = 0  # on RESUME, also replay this many events the client had already seen
        self._sessions = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._live: list[web.WebSocketResponse] = []  # sockets that identified or resumed: they get events
        self._held: list[web.WebSocketResponse] = []  # connected, but events are not delivered (hold())
        self._log: list[tuple[dict[str, Any], Route]] = []  # every dispatched frame and its route, for RESUME
        self._seq = 0
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ server

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/api/v10/gateway/bot", self._gateway_bot)
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

    def guild(self, guild_id: str | None = None) -> dict[str, Any]:
        """A server (the first by default): @everyone may read and write; the owner is the owner."""
        joined = "2024-01-01T00:00:00+00:00"
        gid = guild_id or self.guild_id
        channel_id = self.channels[gid]
        return {
            "id": gid,
            "name": "test server",
            "owner_id": self.owner["id"],
            "icon": None,
            "features": [],
            "roles": [
                {
                    "id": gid,
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
                    "id": channel_id,
                    "type": 0,
                    "name": "general",
                    "position": 0,
                    "permission_overwrites": [],
                    "nsfw": False,
                    "guild_id": gid,
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

    def message(
        self, author: dict[str, Any], content: str, mid: str | None = None, *, guild: str | None = None
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE payload in a server's general channel (the first server's by default)."""
        gid = guild or self.guild_id
        return {
            "id": mid or snowflake(),
            "channel_id": self.channels[gid],
            "guild_id": gid,
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
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                payload = json.loads(msg.data)
                if payload["op"] == 1:
                    await ws.send_json({"op": 11})
                elif payload["op"] == 2:
                    await self._identify(ws, payload["d"])
                elif payload["op"] == 6:
                    await self._resume(ws, payload["d"])
        finally:
            for sockets in (self._live, self._held):
                if ws in sockets:
                    sockets.remove(ws)
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        """A new session: READY with the servers of its shard, then each of them."""
        raw = data.get("shard")
        shard = (int(raw[0]), int(raw[1])) if raw else None
        self.requests.append(("GATEWAY", "IDENTIFY", {"intents": data.get("intents"), "shard": raw}))
        self._changed.set()
        if self.require_sharding and not raw:
            await ws.close(code=4011, message=b"Sharding required")
            return
        self._sessions += 1
        self.session_id = session = f"fake-session-{self._sessions}"
        self._session_shards[session] = shard
        self._ws[ws] = (session, shard)
        self._live.append(ws)
        guilds = [gid for gid in self.channels if self._owns(shard, gid)]
        ready = {
            "v": 10,
            "user": self.bot,
            "guilds": [{"id": gid, "unavailable": True} for gid in guilds],
            "session_id": session,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": self.app_id, "flags": 0},
        }
        if raw:
            ready["shard"] = raw
        await self._send("READY", ready, Route(session=session))
        for gid in guilds:
            await self._send("GUILD_CREATE", self.guild(gid), Route(session=session))

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        """Replay what the client missed (and replay_overlap events it had), then RESUMED; or op 9."""
        session, seq = data.get("session_id"), data.get("seq") or 0
        if session is None or session not in self._session_shards:
            self.requests.append(("GATEWAY", "RESUME", {"session_id": session, "seq": seq, "replayed": None}))
            self._changed.set()
            await ws.send_json({"op": 9, "d": False})
            return
        shard = self._session_shards[session]
        self._ws[ws] = (session, shard)
        sent, replayed = max(0, seq - self.replay_overlap), 0
        while missed := [f for f, route in self._log if f["s"] > sent and self._gets(session, shard, route)]:
            for frame in missed:  # events dispatched while this loop awaits are picked up next round
                await ws.send_json(frame)
                sent, replayed = frame["s"], replayed + 1
        self.requests.append(("GATEWAY", "RESUME", {"session_id": session, "seq": seq, "replayed": replayed}))
        self._changed.set()
        self._live.append(ws)
        await self._send("RESUMED", {}, Route(session=session))

    def _owns(self, shard: tuple[int, int] | None, guild_id: str) -> bool:
        """True when a session on this shard gets the guild's events."""
        if shard is None:
            return True
        return shard_of(guild_id, shard[1]) == shard[0] or shard[0] in self.also_deliver.get(guild_id, ())

    def _gets(self, session: str | None, shard: tuple[int, int] | None, route: Route) -> bool:
        """True when a session (on that shard) gets a frame sent on this route."""
        if route.session is not None:
            return route.session == session
        if route.shard is not None:
            return shard is not None and shard[0] == route.shard
        return route.guild is None or self._owns(shard, route.guild)

    @property
    def sequence(self) -> int:
        """The sequence number of the last event dispatched."""
        return self._seq

    def hold(self) -> None:
        """Stop delivering events (a stalled connection): they are only kept, for a RESUME."""
        self._held.extend(self._live)
        self._live = []

    def _take_live(self) -> list[web.WebSocketResponse]:
        """Detach the connected (or held) clients: events from now on are only kept for a RESUME."""
        live = self._held + self._live
        self._held, self._live = [], []
        return live

    async def request_reconnect(self) -> None:
        """Gateway op 7 RECONNECT: the client should close, reconnect and RESUME."""
        for ws in self._take_live():
            await ws.send_json({"op": 7, "d": None})

    async def drop_connection(self, code: int = 4000) -> None:
        """Close the gateway socket (4000: unknown error, which a client may RESUME after)."""
        for ws in self._take_live():
            await ws.close(code=code)

    async def invalidate_session(self, *, resumable: bool) -> None:
        """Gateway op 9 INVALID_SESSION; when not resumable, the session is gone and only IDENTIFY works."""
        if not resumable:
            self.session_id = None
            self._session_shards.clear()
        for ws in self._take_live():
            await ws.send_json({"op": 9, "d": resumable})

    async def dispatch(self, event: str, data: dict[str, Any], *, shard: int | None = None) -> None:
        """Send one gateway event to the sessions that get it: its guild's shard (or `shard`), else every one."""
        await self._send(event, data, Route(guild=data.get("guild_id"), shard=shard))

    async def _send(self, event: str, data: dict[str, Any], route: Route) -> None:
        """Send a frame to the live sessions on its route (and keep it for a RESUME)."""
        self._seq += 1
        frame = {"op": 0, "t": event, "s": self._seq, "d": data}
        self._log.append((frame, route))
        for ws in list(self._live):
            if not ws.closed and ws in self._ws and self._gets(*self._ws[ws], route):
                with contextlib.suppress(ConnectionResetError):
                    await ws.send_json(frame)

    async def send_message(
        self, author: dict[str, Any], content: str, mid: str | None = None, *, guild: str | None = None
    ) -> str:
        """A member posts in a server's general channel (the first server's by default); returns the message id."""
        payload = self.message(author, content, mid, guild=guild)
        await self.dispatch("MESSAGE_CREATE", payload)
        return str(payload["id"])

    def _member(self, invoker: dict[str, Any], permissions: str) -> dict[str, Any]:
        return {
            "user": invoker,
            "roles": [],
            "joined_at": "2024-01-01T00:00:00+00:00",
            "flags": 0,
            "deaf": False,
            "mute": False,
            "permissions": permissions,
        }

    def _interaction(
        self, kind: int, invoker: dict[str, Any], guild: str, permissions: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload in a server's general channel."""
        interaction_id = snowflake()
        channel_id = self.channels[guild]
        self._guild_of[interaction_id] = guild
        return {
            "id": interaction_id,
            "application_id": self.app_id,
            "type": kind,
            "token": f"token-{interaction_id}",
            "version": 1,
            "guild_id": guild,
            "channel_id": channel_id,
            "channel": {
                "id": channel_id,
                "type": 0,
                "name": "general",
                "guild_id": guild,
                "permission_overwrites": [],
                "nsfw": False,
                "position": 0,
            },
            "member": self._member(invoker, permissions),
            "app_permissions": MEMBER,
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10_485_760,
            "authorizing_integration_owners": {"0": guild},
            "context": 0,
            "data": data,
        }

    async def send_command(
        self,
        invoker: dict[str, Any],
        subcommand: str,
        options: list[dict[str, Any]],
        *,
        permissions: str = MEMBER,
        guild: str | None = None,
        shard: int | None = None,
    ) -> str:
        """A member runs /markov <subcommand> (in the first server by default); returns the interaction id."""
        data = {
            "id": snowflake(),
            "name": "markov",
            "type": 1,
            "options": [{"name": subcommand, "type": 1, "options": options}],
        }
        payload = self._interaction(2, invoker, guild or self.guild_id, permissions, data)
        await self.dispatch("INTERACTION_CREATE", payload, shard=shard)
        return str(payload["id"])

    async def press(
        self, invoker: dict[str, Any], interaction_id: str, label: str, *, shard: int | None = None
    ) -> str:
        """A member presses the button labelled `label` on the reply to an interaction; returns the press's id."""
        _, _, body = await self.wait_for(lambda r: r[1].startswith(f"/interactions/{interaction_id}/"))
        buttons = [c for row in body["data"]["components"] for c in row["components"]]
        button = next(b for b in buttons if b.get("label") == label)
        message = self.replies[interaction_id]
        guild = str(message["guild_id"])
        data = {"custom_id": button["custom_id"], "component_type": 2}
        payload = self._interaction(3, invoker, guild, MEMBER, data)
        payload["message"] = {**message, "components": body["data"]["components"], "flags": 64}
        await self.dispatch("INTERACTION_CREATE", payload, shard=shard)
        return str(payload["id"])

    # ------------------------------------------------------------------ REST

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        """GET /gateway/bot: where to connect and how many shards Discord recommends."""
        self.requests.append(("GET", "/gateway/bot", None))
        self._changed.set()
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        body = {"url": self.gateway_url, "shards": self.shard_count, "session_start_limit": limit}
        return web.Response(body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})

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
        fault = self._fault(request.method, path)
        if fault is not None:
            self.responses.append((request.method, path, fault.status, asyncio.get_running_loop().time()))
            return web.Response(
                status=fault.status,
                body=json.dumps(fault.body).encode(),
                headers={"Content-Type": "application/json", **fault.headers},
            )
        self.responses.append((request.method, path, 200, asyncio.get_running_loop().time()))
        # Exactly "application/json": discord.py reads anything else (even with a charset) as text.
        payload = json.dumps(self._answer(request.method, path, body)).encode()
        return web.Response(body=payload, headers={"Content-Type": "application/json"})

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        method: str,
        path: str,
        *,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` matching requests (method, path prefix) with this error."""
        self.faults.append(Fault(method, path, status, body, headers or {}, times))

    def rate_limit(
        self, method: str, path: str, *, retry_after: float = 0.2, is_global: bool = False, times: int = 1
    ) -> None:
        """The next matching requests get 429, as Discord sends it (Cloudflare's Via header included)."""
        headers = {
            "Via": "1.1 google",  # discord.py treats a 429 without it as a Cloudflare ban
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": str(retry_after),
            "X-RateLimit-Bucket": "fake-bucket",
            "X-RateLimit-Scope": "global" if is_global else "user",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
        self.fail_next(method, path, status=429, body=body, headers=headers, times=times)

    def forbid(self, method: str, path: str, *, times: int = 1) -> None:
        """The next matching requests get 403 Missing Permissions."""
        body = {"message": "Missing Permissions", "code": 50013}
        self.fail_next(method, path, status=403, body=body, times=times)

    def _fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and path.startswith(fault.path):
                fault.times -= 1
                return fault
        return None

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
            content = ((body or {}).get("data") or {}).get("content", "")
            message = self.message(self.bot, content, guild=self._guild_of.get(interaction_id))
            self.replies[interaction_id] = message
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
        for guild, channel in self.channels.items():
            if path.startswith(f"/channels/{channel}/messages") and method == "POST":
                return self.message(self.bot, (body or {}).get("content", ""), guild=guild)
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

    async def wait_for_all(
        self, predicate: Callable[[tuple[str, str, Any]], bool], count: int, seconds: float = 10
    ) -> list[tuple[str, str, Any]]:
        """The first `count` recorded requests that match, waiting for them if needed."""
        try:
            async with asyncio.timeout(seconds):
                while True:
                    found = [request for request in self.requests if predicate(request)]
                    if len(found) >= count:
                        return found[:count]
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            seen = [(method, path) for method, path, _ in self.requests]
            raise AssertionError(f"fewer than {count} matching requests in {seconds} s; saw {seen}") from None


def bot_settings(fake: FakeDiscord, db: Path) -> Settings:
    """Settings for a bot logged in to the fake: its own database, quick commits, no cooldown."""
    return Settings.from_env(
        {
            "MARKOV_DB": str(db),
            "DISCORD_TOKEN": "fake.discord.token",
            "DISCORD_GUILD_ID": fake.guild_id,
            "MARKOV_FLUSH_INTERVAL": "0.05",
            "MARKOV_COOLDOWN_SECONDS": "0",
        }
    )


async def shut_down(bot: Any, runner: asyncio.Task[None], brain: Brain) -> None:
    """Log the bot out, wait for its task to end, then close the database (in that order)."""
    await bot.close()
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await runner
    await brain.close()
