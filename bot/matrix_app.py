"""The Matrix adapter (matrix-nio): a room is a channel; its space (or the homeserver) is the guild.

Commands are messages (`!markov generate`, ...) answered through bot.textcommands; every reply
goes through `MatrixBot.send`, which renders it (bot.replies.render) and sends it as m.notice
with an empty m.mentions, so it never pings.

Redactions and edits are applied by event id, also after a restart: the Brain keeps each message
learned within the edit window (MARKOV_EDIT_WINDOW_DAYS) as token ids. An edit's new body is
learned under the original event's id, so a later redaction of the original unlearns it. Only with
a window of 0 are texts kept, in memory, for messages seen since the bot started. An edit of a
message learned before the window is applied from the original's text fetched from the homeserver
(a redacted message's text is gone from the server: such a redaction is not honoured).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import random
import signal
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    JoinError,
    LoginError,
    MatrixRoom,
    MegolmEvent,
    RedactionEvent,
    RoomMessageText,
    SyncError,
    SyncResponse,
    UploadResponse,
)

from bot import replies
from bot.config import Settings
from bot.cooldowns import Cooldowns
from bot.core.brain import Brain
from bot.core.models import LearnStatus, Message
from bot.core.schema import StoreError
from bot.startup import StartupError, open_brain, quiet_libraries, say
from bot.stats_text import stats_reply
from bot.textcommands import Context, Reply, TextCommands

log = logging.getLogger(__name__)
PLATFORM = "matrix"
PREFIX = "!markov"
MODERATOR_LEVEL = 50
CREATOR_LEVEL = 2**53  # room v12+: creators outrank any power level
TEXT_CACHE = 10_000  # with an edit window of 0 only: message texts kept in memory since the start
SYNC_TOKEN_KEY = "matrix.next_batch:{user}"
DEVICE_KEY = "matrix.device_id:{user}"
TOLD_ENCRYPTED_KEY = "matrix.told_encrypted:{room}"
# How long an edit or a redaction holds up the events after it: unlearning one takes milliseconds,
# unless the database is held by another process (an import), when it waits its turn beside them.
INLINE_SECONDS = 10.0


def strip_reply_fallback(body: str) -> str:
    """Drop the quoted '> <@user> ...' lines a Matrix reply starts with."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> <"):
        return body
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).lstrip("\n")


E = TypeVar("E")


def _surviving(
    handler: Callable[[MatrixRoom, E], Awaitable[None]],
) -> Callable[[MatrixRoom, E], Awaitable[None]]:
    """An event's handler whose failure is logged in one line: raised, it would end nio's sync loop,
    and the bot with it (the traceback is logged at debug level)."""

    @functools.wraps(handler)
    async def handle(room: MatrixRoom, event: E) -> None:
        try:
            await handler(room, event)
        except Exception as exc:
            log.warning("could not handle a %s in %s: %s", type(event).__name__, room.room_id, exc)
            log.debug("the failure", exc_info=True)

    return handle


class MatrixBot:
    """Learns from opted-in members in enabled rooms and answers !markov commands."""

    def __init__(
        self,
        brain: Brain,
        client: AsyncClient,
        *,
        auto_join: bool = True,
        rng: random.Random | None = None,
        cooldowns: Cooldowns | None = None,
    ) -> None:
        self.brain = brain
        self.client = client
        self.auto_join = auto_join
        self.commands = TextCommands(
            brain, prefix=PREFIX, stats=stats_reply, rng=rng, cooldowns=cooldowns or Cooldowns(0)
        )
        self.started_ms = int(time.time() * 1000)
        self._texts: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._guilds: dict[str, str] = {}
        self._told_encrypted: set[str] = set()
        # Work done beside the event stream: commands that only answer, each member's in order, and
        # edits and redactions, each message's in order (they may wait for the database); the last
        # task of each key here for the next to follow; all of them, to stop.
        self._last_task: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._beside_tasks: set[asyncio.Task[None]] = set()
        client.add_event_callback(_surviving(self.handle_text), RoomMessageText)
        client.add_event_callback(_surviving(self._on_redaction), RedactionEvent)
        client.add_event_callback(_surviving(self._on_encrypted), MegolmEvent)
        client.add_event_callback(_surviving(self._on_invite), InviteMemberEvent)
        client.add_response_callback(self._on_sync, SyncResponse)

    @property
    def user_id(self) -> str:
        """The bot's own Matrix id."""
        return str(self.client.user_id)

    @property
    def server_name(self) -> str:
        """The bot's homeserver name: the guild of rooms outside any space."""
        return self.user_id.split(":", 1)[1]

    # ------------------------------------------------------------------ state

    async def restore_sync_token(self) -> str | None:
        """The sync token saved by the last run, so old events are neither learned nor answered."""
        return await self.brain.get_state(SYNC_TOKEN_KEY.format(user=self.user_id))

    async def _on_sync(self, response: SyncResponse) -> None:
        try:
            await self.brain.set_state(SYNC_TOKEN_KEY.format(user=self.user_id), response.next_batch)
            # A room's encryption is in its state: say we cannot work there as soon as it shows,
            # on joining or when encryption is turned on, not only once someone posts.
            for room_id in response.rooms.join:
                room = self.client.rooms.get(room_id)
                if room is not None and room.encrypted:
                    await self._tell_encrypted(room)
        except Exception as exc:  # raised, it would end the sync loop, and the bot with it
            log.warning("could not save the sync position (a restart handles these events again): %s", exc)
            log.debug("the failure", exc_info=True)

    async def guild_of(self, room: MatrixRoom) -> str:
        """The room's space (from its m.space.parent state), else the homeserver."""
        if room.room_id not in self._guilds:
            guild = self.server_name
            response = await self.client.room_get_state(room.room_id)
            for event in getattr(response, "events", []):
                if event.get("type") == "m.space.parent" and event.get("content", {}).get("via"):
                    guild = str(event["state_key"])
                    break
            self._guilds[room.room_id] = guild
        return self._guilds[room.room_id]

    def _remember(self, event_id: str, sender: str, text: str) -> None:
        """Keep a message's text in memory, only when the database keeps no recent messages."""
        if self.brain.keeps_recent:
            return
        self._texts[event_id] = (sender, text)
        if len(self._texts) > TEXT_CACHE:
            self._texts.popitem(last=False)

    # ------------------------------------------------------------------ events

    async def handle_text(self, room: MatrixRoom, event: RoomMessageText) -> None:
        """Learn a message, answer a command, or apply an edit."""
        if event.sender == self.user_id:
            return
        if room.encrypted:
            await self._tell_encrypted(room)
            return
        guild = await self.guild_of(room)
        relates = event.source.get("content", {}).get("m.relates_to") or {}
        if relates.get("rel_type") == "m.replace":
            original = str(relates.get("event_id", ""))
            edit = functools.partial(self._on_edit, room, guild, event, original)
            what = f"apply the edit of message {original}, so its old version is still learned,"
            await self._in_order((room.room_id, original), edit, what)
            return
        body = strip_reply_fallback(event.body or "")
        self._remember(event.event_id, event.sender, body)
        if self.commands.is_command(body):
            if event.server_timestamp < self.started_ms - 60_000:
                return
            answer = functools.partial(self._command, room, guild, event.sender, body)
            if self.commands.answers_only(body):  # a report may take seconds: the other rooms go on
                self._beside((guild, event.sender), answer, "answer a command")
            else:  # consent, settings, chains: done before the events after it are handled
                await answer()
            return
        message = Message(PLATFORM, guild, room.room_id, event.sender, event.event_id, body)
        learn = functools.partial(self._learn, message)
        await self._in_order((room.room_id, event.event_id), learn, f"learn message {event.event_id}")

    async def _learn(self, message: Message) -> None:
        """Learn a message (a first one waits its turn while the file is busy, see Brain.learn)."""
        result = await self.brain.learn(message)
        log.debug("message %s in %s: %s", message.id, message.channel, result.status.value)

    async def _on_edit(self, room: MatrixRoom, guild: str, event: RoomMessageText, original: str) -> None:
        """Unlearn the original's learned version and learn the new body under the original's id.

        The homeserver does not check who sends an edit: the Brain unlearns the old version only
        for the member it was learned from.
        """
        if not original:
            return
        new_content = event.source.get("content", {}).get("m.new_content") or {}
        new_text = str(new_content.get("body", ""))
        if self.commands.is_command(new_text):
            new_text = ""  # edited into a command: only unlearn
        known = self._texts.get(original)
        before = None
        if known is not None and known[0] == event.sender:
            before = Message(PLATFORM, guild, room.room_id, event.sender, original, known[1])
            self._remember(original, event.sender, new_text)
        after = Message(PLATFORM, guild, room.room_id, event.sender, original, new_text)
        result = await self.brain.edit(before, after)
        if result.status is LearnStatus.ALREADY_LEARNED and before is None:
            # Learned before the edit window: the homeserver still has the original's text.
            text = await self._original_text(room.room_id, original, event.sender)
            if text is not None:
                before = Message(PLATFORM, guild, room.room_id, event.sender, original, text)
                result = await self.brain.edit(before, after)
        log.info("edit of %s in %s: %s", original, room.room_id, result.status.value)

    async def _original_text(self, room_id: str, event_id: str, sender: str) -> str | None:
        """The text of a message as the homeserver has it, when sender wrote it; else None."""
        response = await self.client.room_get_event(room_id, event_id)
        event = getattr(response, "event", None)
        if not isinstance(event, RoomMessageText) or event.sender != sender:
            log.debug("edit of %s: the original is not available from the homeserver", event_id)
            return None
        return strip_reply_fallback(event.body or "")

    async def _on_redaction(self, room: MatrixRoom, event: RedactionEvent) -> None:
        redaction = functools.partial(self._unlearn_redacted, room, event)
        what = f"unlearn redacted message {event.redacts}, so it is still learned,"
        await self._in_order((room.room_id, event.redacts), redaction, what)

    async def _unlearn_redacted(self, room: MatrixRoom, event: RedactionEvent) -> None:
        """Unlearn a redacted message by its event id (from its text, when only that is known)."""
        known = self._texts.get(event.redacts)
        cached = None
        if known is not None:
            guild = await self.guild_of(room)
            cached = Message(PLATFORM, guild, room.room_id, known[0], event.redacts, known[1])
        status = await self.brain.delete(PLATFORM, event.redacts, cached)
        self._texts.pop(event.redacts, None)
        log.info("redaction of %s in %s: %s", event.redacts, room.room_id, status.value)

    async def _on_encrypted(self, room: MatrixRoom, event: MegolmEvent) -> None:
        await self._tell_encrypted(room)

    async def _tell_encrypted(self, room: MatrixRoom) -> None:
        if room.room_id in self._told_encrypted:
            return
        self._told_encrypted.add(room.room_id)
        key = TOLD_ENCRYPTED_KEY.format(room=room.room_id)
        if await self.brain.get_state(key):
            return
        await self.brain.set_state(key, "1")
        await self.send(room.room_id, Reply(replies.ENCRYPTED_ROOM))

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if not self.auto_join or event.state_key != self.user_id or event.membership != "invite":
            return
        response = await self.client.join(room.room_id)
        if isinstance(response, JoinError):
            log.warning("could not join %s: %s", room.room_id, response.message)
        else:
            log.info("joined %s", room.room_id)

    # ------------------------------------------------------------------ commands and replies

    async def power_level(self, room_id: str, user_id: str) -> int:
        """A member's power level, read from the server (the client's cached state can lag).

        From room version 12 on, the room's creators outrank everyone and are not listed in
        m.room.power_levels, so they count as moderators.
        """
        response = await self.client.room_get_state(room_id)
        events = getattr(response, "events", None)
        if not isinstance(events, list):
            log.warning("could not read the state of %s: %s", room_id, getattr(response, "message", response))
            return 0
        by_type = {event.get("type"): event for event in events if event.get("state_key") == ""}
        create = by_type.get("m.room.create", {})
        version = str(create.get("content", {}).get("room_version", "1"))
        creators = {create.get("sender"), *create.get("content", {}).get("additional_creators", [])}
        if version.isdigit() and int(version) >= 12 and user_id in creators:
            return CREATOR_LEVEL
        levels = by_type.get("m.room.power_levels", {}).get("content", {})
        return int((levels.get("users") or {}).get(user_id, levels.get("users_default", 0)))

    async def _in_order(self, key: tuple[str, str], work: Callable[[], Awaitable[None]], what: str) -> None:
        """Do work before the events after it, unless it waits on the database for longer than
        INLINE_SECONDS (another process holds the file, say): then it goes on beside them."""
        task = self._beside(key, work, what)
        await asyncio.wait({task}, timeout=INLINE_SECONDS)

    def _beside(
        self, key: tuple[str, str], work: Callable[[], Awaitable[None]], what: str
    ) -> asyncio.Task[None]:
        """Do work in a task of its own, after the work of the same key before it (what: for the log
        line a failure gives, "could not {what} in {room}: {why}")."""
        before = self._last_task.get(key)

        async def run() -> None:
            if before is not None:
                await asyncio.wait({before})
            try:
                await work()
            except Exception as exc:
                log.warning("could not %s in %s: %s", what, key[0], exc)
                log.debug("the failure", exc_info=True)

        task = asyncio.create_task(run())
        self._last_task[key] = task
        self._beside_tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._beside_tasks.discard(task)
            if self._last_task.get(key) is task:
                del self._last_task[key]

        task.add_done_callback(done)
        return task

    async def stop_answering(self) -> None:
        """Cancel the work still being done beside the event stream, and wait for it."""
        tasks = list(self._beside_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _command(self, room: MatrixRoom, guild: str, sender: str, body: str) -> None:
        level = await self.power_level(room.room_id, sender)
        ctx = Context(
            PLATFORM,
            guild,
            room.room_id,
            sender,
            is_moderator=level >= MODERATOR_LEVEL,
            channel_name=room.display_name,
        )
        for reply in await self.commands.handle(ctx, body):
            await self.send(room.room_id, reply)

    async def send(self, room_id: str, reply: Reply) -> None:
        """Send a reply, rendered for Matrix, as m.notice (never pinging), and its image if any."""
        content = {
            "msgtype": "m.notice",
            "body": replies.render(reply.text, replies.MATRIX),
            "m.mentions": {},
        }
        response = await self.client.room_send(room_id, "m.room.message", content)
        if not hasattr(response, "event_id"):
            log.warning("could not send to %s: %s", room_id, getattr(response, "message", response))
            return
        if reply.image:
            await self._send_image(room_id, reply.image, reply.image_name, reply.image_alt)

    async def _send_image(self, room_id: str, data: bytes, name: str, alt: str) -> None:
        uploaded, _ = await self.client.upload(
            io.BytesIO(data), content_type="image/png", filename=name, filesize=len(data)
        )
        if not isinstance(uploaded, UploadResponse):
            log.warning("could not upload the stats card: %s", getattr(uploaded, "message", uploaded))
            return
        content = {
            "msgtype": "m.image",
            "body": replies.render(alt, replies.MATRIX) if alt else name,
            "filename": name,
            "url": uploaded.content_uri,
            "info": {"mimetype": "image/png", "size": len(data)},
            "m.mentions": {},
        }
        await self.client.room_send(room_id, "m.room.message", content)

    # ------------------------------------------------------------------ running

    async def sync_forever(self) -> None:
        """Sync from the saved token (or skip history on a first start) and handle events until stopped."""
        since = await self.restore_sync_token()
        if since is None:
            # First start: take the current position without handling the past.
            first = await self.client.sync(timeout=0, full_state=True)
            if isinstance(first, SyncError):
                raise RuntimeError(f"sync failed: {first.message}")
            since = first.next_batch
        self.client.next_batch = since
        await self.client.sync_forever(timeout=30_000, since=since, full_state=True)


async def login(client: AsyncClient, brain: Brain, settings: Settings) -> str | None:
    """Log in with the token or password; returns an error line, or None on success."""
    key = DEVICE_KEY.format(user=settings.matrix_user_id)
    if settings.matrix_access_token:
        client.access_token = settings.matrix_access_token
        client.user_id = settings.matrix_user_id
        client.device_id = await brain.get_state(key) or ""
        who = await client.whoami()
        if not hasattr(who, "user_id"):
            return f"the homeserver rejected MATRIX_ACCESS_TOKEN: {getattr(who, 'message', who)}"
        return None
    client.device_id = await brain.get_state(key)
    response = await client.login(password=settings.matrix_password, device_name=settings.matrix_device_name)
    if isinstance(response, LoginError):
        return f"the homeserver rejected the login for {settings.matrix_user_id}: {response.message}"
    try:
        await brain.set_state(key, response.device_id)
    except StoreError as exc:  # busy, full: logged in all the same
        log.warning("could not save the device id (the next login makes a new device): %s", exc)
    return None


def missing_settings(settings: Settings) -> str | None:
    """A one-line explanation of what is missing, or None."""
    if not settings.matrix_homeserver or not settings.matrix_user_id:
        return "set MATRIX_HOMESERVER and MATRIX_USER_ID (see .env.example) to run the Matrix bot."
    if not settings.matrix_password and not settings.matrix_access_token:
        return "set MATRIX_PASSWORD or MATRIX_ACCESS_TOKEN (see .env.example) to run the Matrix bot."
    return None


async def serve(settings: Settings) -> int:
    """Run the Matrix bot until SIGINT/SIGTERM; returns the exit code."""
    quiet_libraries(settings)
    try:
        brain = await open_brain(settings)
    except StartupError as exc:
        say(str(exc))
        return 1
    client = AsyncClient(
        settings.matrix_homeserver or "",
        settings.matrix_user_id or "",
        config=AsyncClientConfig(store_sync_tokens=False, encryption_enabled=False),
    )
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    bot: MatrixBot | None = None
    try:
        error = await login(client, brain, settings)
        if error:
            say(error)
            return 1
        bot = MatrixBot(
            brain, client, auto_join=settings.matrix_auto_join, cooldowns=Cooldowns(settings.cooldown_seconds)
        )
        task = asyncio.create_task(bot.sync_forever())
        for sig in signals:
            loop.add_signal_handler(sig, task.cancel)
        log.info("matrix bot running as %s", settings.matrix_user_id)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return 0
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        if bot is not None:
            await bot.stop_answering()
        await client.close()
        await brain.close()


def run_matrix(settings: Settings) -> int:
    """Entry point of `markovbot matrix`."""
    problem = missing_settings(settings)
    if problem:
        say(problem)
        return 2
    try:
        return asyncio.run(serve(settings))
    except OSError as exc:
        say(f"cannot reach {settings.matrix_homeserver}: {exc}")
        return 1
